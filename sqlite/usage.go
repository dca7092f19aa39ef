package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"aigrid"
	"aigrid/internal/usagepack"
)

// Metered calls are stored packed: the calls of one usage posting (a
// tenant's calls in one minute of one apply of the meter's journal) are one
// row of usage_packs, keyed by the posting's transaction, their fields in
// usagepack's binary form. A SQLite row costs a few microseconds to write
// whatever it holds; a call in a pack costs its encoding, a fraction of one.
// The pack's row carries the totals and time span that the queries filter
// on; the readers decode only the packs whose minute overlaps the period
// asked for.
//
// The readers that sum (statements, the meter's carry and token counters
// at a start, revenue) read the rollup's whole slots instead, and the packs
// only at a period's ends (see rollup.go).
//
// Packs cannot be looked up by call ID. A replay of the journal is
// recognised instead by the journal position that each apply records with
// what it applied (journal_applied); calls with no position, and calls
// applied while the position applied so far is unknown (a ledger upgraded
// from one row a call, whose journal may hold calls applied by ID), are
// looked up by ID in the packs of their minutes.

// packSpan is the time a pack's calls lie in: one minute, whole in every
// time zone, so that a balance at any month's start counts exactly the
// calls before it.
const packSpan = int64(time.Minute)

// minuteOf is the start of the minute of t, in Unix nanoseconds.
func minuteOf(at int64) int64 { return at - ((at%packSpan)+packSpan)%packSpan }

// errPostedBefore is commitUsage's report of a posting whose key exists: a
// call applied before that neither its journal position nor a lookup
// caught (a call settled twice, the second time first in its posting).
// CommitTxs then writes everything again, every call looked up by ID.
var errPostedBefore = errors.New("a call's posting exists already")

// commitUsage writes the usage transactions txs[i] for i in calls that the
// ledger does not hold yet (see LedgerService.CommitTxs): one posting and
// one pack per tenant and minute, and the journal position of the last. It
// looks up by ID the calls with no position, all of them while the
// position applied is unknown, and all when lookup is set.
func (db *DB) commitUsage(ctx context.Context, tx *sql.Tx, txs []*aigrid.LedgerTx, calls []int, applied []bool, lookup bool) error {
	if len(calls) == 0 {
		return nil
	}
	for _, i := range calls {
		if u := txs[i].Usage; !u.At.Equal(txs[i].At) || u.TenantID != txs[i].TenantID {
			return fmt.Errorf("usage transaction %s: its call's time or tenant is not the transaction's", txs[i].Key)
		}
	}
	mark, known, err := journalMark(tx.StmtContext(ctx, db.markRead).QueryRowContext(ctx))
	if err != nil {
		return err
	}
	// Calls after the mark, in the journal's order; the others were applied.
	last := mark
	after := make([]int, 0, len(calls))
	for _, i := range calls {
		if p := txs[i].Journal; p != (aigrid.JournalPos{}) {
			if known && !mark.Before(p) {
				continue
			}
			if !last.Before(p) {
				return fmt.Errorf("usage transaction %s: journal position %d:%d is not after %d:%d", txs[i].Key, p.Segment, p.Offset, last.Segment, last.Offset)
			}
			last = p
		}
		after = append(after, i)
	}
	if len(after) == 0 {
		return nil
	}
	fresh, err := unrecorded(ctx, tx, txs, after, func(t *aigrid.LedgerTx) bool {
		return lookup || !known || t.Journal == (aigrid.JournalPos{})
	})
	if err != nil {
		return err
	}
	written, err := db.postUsage(ctx, tx, txs, fresh, applied)
	switch {
	case err != nil:
		return err
	case !written && lookup:
		return errors.New("a posting of calls not recorded before was refused as a repeat")
	case !written:
		return errPostedBefore
	case last == mark:
		return nil
	}
	_, err = tx.StmtContext(ctx, db.markWrite).ExecContext(ctx, int64(last.Segment), last.Offset)
	return err
}

// The journal position applied: one row, missing while it is unknown (a
// ledger upgraded from one row a call that has applied no position since).
const (
	markRead  = `SELECT segment, byte_offset FROM journal_applied WHERE id = 1`
	markWrite = `INSERT INTO journal_applied (id, segment, byte_offset) VALUES (1, ?, ?)
		ON CONFLICT(id) DO UPDATE SET segment = excluded.segment, byte_offset = excluded.byte_offset`
)

// journalMark reads the journal position from row, a result of markRead.
func journalMark(row *sql.Row) (mark aigrid.JournalPos, known bool, err error) {
	var seg int64
	err = row.Scan(&seg, &mark.Offset)
	if errors.Is(err, sql.ErrNoRows) {
		return aigrid.JournalPos{}, false, nil
	}
	mark.Segment = uint64(seg)
	return mark, err == nil, err
}

// JournalApplied is the journal position applied so far.
func (db *DB) JournalApplied(ctx context.Context) (aigrid.JournalPos, error) {
	mark, _, err := journalMark(db.read.QueryRowContext(ctx, markRead))
	if err != nil {
		return mark, fmt.Errorf("sqlite: journal position: %w", err)
	}
	return mark, nil
}

// unrecorded returns those of calls that come first with their call ID and,
// for those that lookup selects, whose ID the packs of their minute do not
// hold.
func unrecorded(ctx context.Context, tx *sql.Tx, txs []*aigrid.LedgerTx, calls []int, lookup func(*aigrid.LedgerTx) bool) ([]int, error) {
	type minute struct{ tenant, at int64 }
	var minutes []minute
	for _, i := range calls {
		if t := txs[i]; lookup(t) {
			if m := (minute{t.TenantID, minuteOf(toNanos(t.At))}); !slices.Contains(minutes, m) {
				minutes = append(minutes, m)
			}
		}
	}
	seen := make(map[string]bool, len(calls))
	var u aigrid.UsageRecord
	for _, m := range minutes {
		err := readPacks(ctx, tx, `SELECT tx_id, body FROM usage_packs WHERE tenant_id = ? AND first_at >= ? AND first_at < ?`,
			[]any{m.tenant, m.at, m.at + packSpan}, func(_ int64, p *usagepack.Pack) {
				for p.Next(&u) {
					seen[u.ID] = true
				}
			})
		if err != nil {
			return nil, err
		}
	}
	fresh := make([]int, 0, len(calls))
	for _, i := range calls {
		if id := txs[i].Usage.ID; !seen[id] {
			seen[id] = true // a second copy in this batch is a replay too
			fresh = append(fresh, i)
		}
	}
	return fresh, nil
}

// readPacks runs query, whose rows are a pack's transaction ID and body,
// and gives each pack to fn; a pack that does not decode whole is an error.
func readPacks(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args []any, fn func(txID int64, p *usagepack.Pack)) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var body []byte
	for rows.Next() {
		var txID int64
		if err := rows.Scan(&txID, &body); err != nil {
			return err
		}
		p, err := usagepack.OpenPack(body)
		if err != nil {
			return fmt.Errorf("the calls of transaction %d: %w", txID, err)
		}
		fn(txID, p)
		if err := p.Err(); err != nil {
			return fmt.Errorf("the calls of transaction %d: %w", txID, err)
		}
	}
	return rows.Err()
}

// postUsage writes one posting and one pack per tenant and minute of calls,
// and marks the calls applied. It reports false, having written part of
// them, when a posting's key exists already.
func (db *DB) postUsage(ctx context.Context, tx *sql.Tx, txs []*aigrid.LedgerTx, calls []int, applied []bool) (bool, error) {
	type minute struct{ tenant, at int64 }
	var order []minute
	groups := map[minute][]int{}
	for _, i := range calls {
		m := minute{txs[i].TenantID, minuteOf(toNanos(txs[i].At))}
		if groups[m] == nil {
			order = append(order, m)
		}
		groups[m] = append(groups[m], i)
	}
	postings := make([]*aigrid.LedgerTx, len(order))
	for k, m := range order {
		group := groups[m]
		sums := map[string]aigrid.Money{}
		var accounts []string
		for _, i := range group {
			for _, e := range txs[i].Entries {
				if _, ok := sums[e.Account]; !ok {
					accounts = append(accounts, e.Account)
				}
				sums[e.Account] += e.Amount
			}
		}
		p := &aigrid.LedgerTx{Key: "usage-posting:" + txs[group[0]].Usage.ID, Kind: aigrid.TxUsage, TenantID: m.tenant,
			At: fromNanos(m.at), Memo: fmt.Sprintf("%d calls", len(group))}
		for _, a := range accounts {
			p.Entries = append(p.Entries, aigrid.Entry{Account: a, Amount: sums[a]})
		}
		postings[k] = p
	}
	posted := make([]bool, len(postings))
	all := make([]int, len(postings))
	for k := range all {
		all[k] = k
	}
	if err := db.commitTxRows(ctx, tx, postings, all, posted); err != nil {
		return false, err
	}
	if slices.Contains(posted, false) {
		return false, nil
	}
	packs := make([]packRow, len(order))
	var packer usagepack.Packer
	var list []*aigrid.UsageRecord
	var sums rollup
	for k, m := range order {
		list = list[:0]
		for _, i := range groups[m] {
			txs[i].ID = postings[k].ID
			list = append(list, txs[i].Usage)
			sums.add(m.tenant, txs[i].Usage)
		}
		packs[k] = newPackRow(&packer, postings[k].ID, m.tenant, list)
	}
	err := db.insertRows(ctx, tx, &insertPacks, len(packs),
		func(j int, args []any) []any {
			p := &packs[j]
			return append(args, p.txID, p.tenant, p.first, p.last, p.calls, p.tokens, int64(p.charge), p.body)
		}, nil)
	if err != nil {
		return false, err
	}
	for _, i := range calls {
		applied[i] = true
	}
	return true, db.writeSlots(ctx, tx, &sums)
}

// packRow is a row of usage_packs.
type packRow struct {
	txID, tenant, first, last int64
	calls, tokens             int64
	charge                    aigrid.Money
	body                      []byte
}

// newPackRow packs a posting's calls, ordered by time and ID as the
// readers list them (list is sorted in place).
func newPackRow(packer *usagepack.Packer, txID, tenant int64, list []*aigrid.UsageRecord) packRow {
	slices.SortFunc(list, compareCalls)
	p := packRow{txID: txID, tenant: tenant, first: toNanos(list[0].At), last: toNanos(list[len(list)-1].At), calls: int64(len(list))}
	for _, u := range list {
		p.tokens += u.PromptTokens + u.CompletionTokens
		p.charge += u.Charge.Total
	}
	p.body = packer.Append(nil, list)
	return p
}

// compareCalls orders calls by time, then ID, as SQLite orders at, id.
func compareCalls(a, b *aigrid.UsageRecord) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

var insertPacks = insert{`INSERT INTO usage_packs (tx_id, tenant_id, first_at, last_at, calls, tokens, charge, body) VALUES `, 8, ""}

// overlapping selects, after the tenant's or the tenants' condition, the
// packs with a call that may lie in [from, to): those whose minute starts
// within a minute before from, or after it.
const overlapping = ` AND first_at > ? AND first_at < ? AND last_at >= ?`

func overlapArgs(from, to time.Time) []any {
	return []any{boundNanos(from) - packSpan, boundNanos(to), boundNanos(from)}
}

// boundNanos is t in Unix nanoseconds, held within what they can count
// (the years 1678 to 2262, less a minute at the start for overlapping's
// margin): a period's far ends, such as the zero time, still bound it.
func boundNanos(t time.Time) int64 {
	lo, hi := time.Unix(0, math.MinInt64+packSpan), time.Unix(0, math.MaxInt64)
	switch {
	case t.Before(lo):
		return math.MinInt64 + packSpan
	case t.After(hi):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// TokensSince sums a tenant's tokens at or after t: the rollup's from the
// first whole slot on, the packs' totals before it, and the calls of the
// packs that straddle t.
func (db *DB) TokensSince(ctx context.Context, tenantID int64, t time.Time) (int64, error) {
	at := boundNanos(t)
	lo, _, ok := wholeSlots(t, time.Unix(0, math.MaxInt64))
	if !ok {
		lo = math.MaxInt64
	}
	tx, err := db.readTx(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite: tokens: %w", err)
	}
	defer tx.Rollback()
	var n int64
	err = tx.QueryRowContext(ctx, `SELECT (SELECT COALESCE(SUM(tokens), 0) FROM usage_slots WHERE tenant_id = ?1 AND slot >= ?3)
		+ (SELECT COALESCE(SUM(tokens), 0) FROM usage_packs WHERE tenant_id = ?1 AND first_at >= ?2 AND first_at < ?3)`,
		tenantID, at, lo).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: tokens: %w", err)
	}
	var u aigrid.UsageRecord
	err = readPacks(ctx, tx, `SELECT tx_id, body FROM usage_packs WHERE tenant_id = ? AND first_at > ? AND first_at < ? AND last_at >= ?`,
		[]any{tenantID, at - packSpan, at, at}, func(_ int64, p *usagepack.Pack) {
			for p.Next(&u) {
				if !u.At.Before(t) {
					n += u.PromptTokens + u.CompletionTokens
				}
			}
		})
	if err != nil {
		return 0, fmt.Errorf("sqlite: tokens: %w", err)
	}
	return n, nil
}

// ListUsage returns up to limit of a tenant's calls in [from, to), by time
// and ID. It reads the packs in the order of their first call, and stops at
// the first that starts after the limit-th call found so far.
func (db *DB) ListUsage(ctx context.Context, tenantID int64, from, to time.Time, limit int) ([]*aigrid.UsageRecord, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.read.QueryContext(ctx, `SELECT tx_id, first_at, body FROM usage_packs WHERE tenant_id = ?`+overlapping+` ORDER BY first_at`,
		append([]any{tenantID}, overlapArgs(from, to)...)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list usage: %w", err)
	}
	defer rows.Close()
	var out, pack, merged []*aigrid.UsageRecord
	var body []byte
	for rows.Next() {
		var txID, first int64
		if err := rows.Scan(&txID, &first, &body); err != nil {
			return nil, fmt.Errorf("sqlite: list usage: %w", err)
		}
		if len(out) == limit && first > toNanos(out[limit-1].At) {
			break
		}
		p, err := usagepack.OpenPack(body)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list usage: the calls of transaction %d: %w", txID, err)
		}
		pack = pack[:0]
		for {
			u := &aigrid.UsageRecord{TenantID: tenantID}
			if !p.Next(u) {
				break
			}
			if !u.At.Before(from) && u.At.Before(to) {
				pack = append(pack, u)
			}
		}
		if err := p.Err(); err != nil {
			return nil, fmt.Errorf("sqlite: list usage: the calls of transaction %d: %w", txID, err)
		}
		// Packs are written sorted; sorting again costs a pass and keeps
		// the merge right whatever a pack holds.
		slices.SortFunc(pack, compareCalls)
		merged = mergeCalls(merged[:0], out, pack, limit)
		out, merged = merged, out
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list usage: %w", err)
	}
	return out, nil
}

// mergeCalls appends to dst the first limit calls of a and b, both sorted.
func mergeCalls(dst, a, b []*aigrid.UsageRecord, limit int) []*aigrid.UsageRecord {
	for len(dst) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || len(a) > 0 && compareCalls(a[0], b[0]) <= 0 {
			dst, a = append(dst, a[0]), a[1:]
		} else {
			dst, b = append(dst, b[0]), b[1:]
		}
	}
	return dst
}

// UsageByBlock sums a tenant's usage by service model and block; a call
// with no blocks (a free call, with no tariff) counts in block 0.
func (db *DB) UsageByBlock(ctx context.Context, tenantID int64, from, to time.Time) ([]aigrid.UsageLine, error) {
	type line struct {
		service string
		block   int
	}
	sums := map[line]*aigrid.UsageLine{}
	add := func(service string, block int) *aigrid.UsageLine {
		l := sums[line{service, block}]
		if l == nil {
			l = &aigrid.UsageLine{Service: service, Block: block}
			sums[line{service, block}] = l
		}
		return l
	}
	tx, err := db.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: usage by block: %w", err)
	}
	defer tx.Rollback()
	err = sumPeriod(ctx, tx, from, to, `tenant_id = ?`, []any{tenantID}, sumByBlock, func(k *slotKey, s *slotSums) {
		l := add(k.service, k.block)
		l.Calls += s.lines
		l.InputTokens += s.input
		l.OutputTokens += s.output
		l.Amount += aigrid.Money(s.amount)
		l.Exact += s.exact
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: usage by block: %w", err)
	}
	var out []aigrid.UsageLine
	for _, l := range sums {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b aigrid.UsageLine) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), cmp.Compare(a.Block, b.Block))
	})
	return out, nil
}

// Revenue sums usage by provider in [from, to), reading the period's slots
// and packs tenant by tenant through their indexes.
func (db *DB) Revenue(ctx context.Context, from, to time.Time) ([]aigrid.RevenueLine, error) {
	sums := map[string]*aigrid.RevenueLine{}
	add := func(provider string) *aigrid.RevenueLine {
		l := sums[provider]
		if l == nil {
			l = &aigrid.RevenueLine{Provider: provider}
			sums[provider] = l
		}
		return l
	}
	tx, err := db.readTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: revenue: %w", err)
	}
	defer tx.Rollback()
	err = sumPeriod(ctx, tx, from, to, `tenant_id IN (SELECT id FROM tenants)`, nil, sumByProvider, func(k *slotKey, s *slotSums) {
		l := add(k.provider)
		l.Calls += s.calls
		l.Tokens += s.tokens
		l.Revenue += aigrid.Money(s.charge)
		l.Cost += aigrid.Money(s.cost)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: revenue: %w", err)
	}
	var out []aigrid.RevenueLine
	for _, l := range sums {
		l.Margin = l.Revenue - l.Cost
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b aigrid.RevenueLine) int { return strings.Compare(a.Provider, b.Provider) })
	return out, nil
}

// checkPacks reports each usage posting whose calls' charges differ from
// what it posted to revenue, each pack whose totals differ from its
// calls', and each tenant whose rollup differs from its calls' sums. It
// reads the packs a tenant at a time, in one snapshot.
func (db *DB) checkPacks(ctx context.Context) ([]string, error) {
	tx, err := db.readTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT p.tenant_id, t.key, p.calls, p.tokens, p.charge, p.body,
		COALESCE((SELECT SUM(e.amount) FROM ledger_entries e WHERE e.tx_id = p.tx_id AND e.account = 'revenue'), 0)
		FROM usage_packs p JOIN ledger_tx t ON t.id = p.tx_id ORDER BY p.tenant_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var bad []string
	var body []byte
	var u aigrid.UsageRecord
	var sums rollup
	tenant, started := int64(0), false
	for rows.Next() {
		var tn int64
		var key string
		var calls, tokens, charge, posted int64
		if err := rows.Scan(&tn, &key, &calls, &tokens, &charge, &body, &posted); err != nil {
			return nil, err
		}
		if started && tn != tenant {
			if bad, err = checkSlots(ctx, tx, tenant, &sums, bad); err != nil {
				return nil, err
			}
			sums.reset()
		}
		tenant, started = tn, true
		p, err := usagepack.OpenPack(body)
		if err != nil {
			bad = append(bad, fmt.Sprintf("usage transaction %s: %v", key, err))
			continue
		}
		var n, sumTokens int64
		var sum aigrid.Money
		for p.Next(&u) {
			n++
			sumTokens += u.PromptTokens + u.CompletionTokens
			sum += u.Charge.Total
			sums.add(tn, &u)
		}
		switch {
		case p.Err() != nil:
			bad = append(bad, fmt.Sprintf("usage transaction %s: %v", key, p.Err()))
		case int64(sum) != posted:
			bad = append(bad, fmt.Sprintf("usage transaction %s: its %d calls were charged %d, and it posted %d to revenue", key, n, sum, posted))
		case n != calls || sumTokens != tokens || int64(sum) != charge:
			bad = append(bad, fmt.Sprintf("usage transaction %s: its calls total %d calls, %d tokens and %d charged; its pack says %d, %d and %d",
				key, n, sumTokens, sum, calls, tokens, charge))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if started {
		if bad, err = checkSlots(ctx, tx, tenant, &sums, bad); err != nil {
			return nil, err
		}
	}
	// The rollup of tenants with no packs at all.
	var orphans []int64
	err = func() error {
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT tenant_id FROM usage_slots WHERE tenant_id NOT IN (SELECT tenant_id FROM usage_packs)`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tn int64
			if err := rows.Scan(&tn); err != nil {
				return err
			}
			orphans = append(orphans, tn)
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, err
	}
	for _, tn := range orphans {
		sums.reset()
		if bad, err = checkSlots(ctx, tx, tn, &sums, bad); err != nil {
			return nil, err
		}
	}
	return bad, nil
}

// packUsageRows moves the usage rows of a ledger from before packs into
// packs, a posting's rows a pack, and drops their table. When there were
// none, the journal position applied is known: nothing was applied.
func packUsageRows(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT tx_id, tenant_id, id, key_id, at, service, provider, model, prompt_tokens, completion_tokens,
		charge, blocks, off_peak, cost, estimated FROM usage ORDER BY tx_id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	packs := 0
	var packer usagepack.Packer
	var list []*aigrid.UsageRecord
	var txID int64 = -1
	// Each pack is written as its rows are read: a large ledger's calls
	// need not all be held in memory.
	flush := func() error {
		if len(list) == 0 {
			return nil
		}
		first := list[0]
		for _, u := range list {
			if u.TenantID != first.TenantID || minuteOf(toNanos(u.At)) != minuteOf(toNanos(first.At)) {
				return fmt.Errorf("the usage rows of transaction %d are of several tenants or minutes", txID)
			}
		}
		p := newPackRow(&packer, txID, first.TenantID, list)
		list = list[:0]
		packs++
		_, err := tx.ExecContext(ctx, `INSERT INTO usage_packs (tx_id, tenant_id, first_at, last_at, calls, tokens, charge, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			p.txID, p.tenant, p.first, p.last, p.calls, p.tokens, int64(p.charge), p.body)
		return err
	}
	for rows.Next() {
		u := &aigrid.UsageRecord{}
		var id, at, charge, cost int64
		var blocks string
		if err := rows.Scan(&id, &u.TenantID, &u.ID, &u.KeyID, &at, &u.Service, &u.Provider, &u.Model, &u.PromptTokens, &u.CompletionTokens,
			&charge, &blocks, &u.Charge.OffPeak, &cost, &u.Estimated); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(blocks), &u.Charge.Blocks); err != nil {
			return fmt.Errorf("usage %s: blocks: %w", u.ID, err)
		}
		u.At, u.Charge.Total, u.Cost = fromNanos(at), aigrid.Money(charge), aigrid.Money(cost)
		if id != txID {
			if err := flush(); err != nil {
				return err
			}
			txID = id
		}
		list = append(list, u)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	rows.Close()
	if packs == 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO journal_applied (id, segment, byte_offset) VALUES (1, 0, 0)`); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE usage`)
	return err
}
