package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"aigrid"
)

var _ aigrid.LedgerService = (*DB)(nil)

// snapshotEvery is how many entries past an account's last snapshot a
// balance read sums before it writes a new snapshot.
const snapshotEvery = 1000

// CommitTxs writes the transactions in one database transaction, with a few
// multi-row statements per group rather than a statement per row: the
// group commit's cost is mostly SQLite's per-statement work.
//
// Usage transactions are posted the way a sales journal posts to a general
// ledger: each call is a usage row, keyed by its call ID, and the calls of
// one tenant in one minute are posted together as one balanced ledger
// transaction whose entries sum theirs. A call then costs one row and its
// indexes instead of a transaction row, two entry rows and five indexes.
// Minutes are whole in every time zone, so a balance at a month's start in
// any zone counts exactly the calls before it.
func (db *DB) CommitTxs(ctx context.Context, txs []*aigrid.LedgerTx) ([]bool, error) {
	applied := make([]bool, len(txs))
	for _, t := range txs {
		if !t.Balanced() {
			return nil, fmt.Errorf("sqlite: commit ledger: transaction %s does not balance", t.Key)
		}
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var calls, others []int
		for i, t := range txs {
			if t.Kind == aigrid.TxUsage && t.Usage != nil {
				calls = append(calls, i)
			} else {
				others = append(others, i)
			}
		}
		if err := db.commitTxRows(ctx, tx, txs, others, applied); err != nil {
			return err
		}
		return db.commitUsage(ctx, tx, txs, calls, applied)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: commit ledger: %w", err)
	}
	return applied, nil
}

// commitTxRows writes the transactions txs[i] for i in which, each with its
// entries. Those whose key exists already (or comes twice in the group) are
// not applied: a replay changes nothing.
func (db *DB) commitTxRows(ctx context.Context, tx *sql.Tx, txs []*aigrid.LedgerTx, which []int, applied []bool) error {
	fresh := make([]int, 0, len(which))
	seen := make(map[string]bool, len(which))
	for _, i := range which {
		if !seen[txs[i].Key] {
			seen[txs[i].Key] = true
			fresh = append(fresh, i)
		}
	}
	ids := make(map[string]int64, len(fresh))
	err := db.insertRows(ctx, tx, &insertTxs, len(fresh),
		func(j int, args []any) []any {
			t := txs[fresh[j]]
			return append(args, t.Key, t.Kind, nullID(t.TenantID), toNanos(t.At), t.Memo, t.Actor)
		},
		func(rows *sql.Rows) error {
			var id int64
			var key string
			if err := rows.Scan(&id, &key); err != nil {
				return err
			}
			ids[key] = id
			return nil
		})
	if err != nil {
		return err
	}
	var entries []entryRow
	for _, i := range fresh {
		t := txs[i]
		id, ok := ids[t.Key]
		if !ok {
			continue
		}
		t.ID, applied[i] = id, true
		for _, e := range t.Entries {
			entries = append(entries, entryRow{id, e})
		}
	}
	err = db.insertRows(ctx, tx, &insertEntries, len(entries),
		func(j int, args []any) []any {
			return append(args, entries[j].txID, entries[j].Account, int64(entries[j].Amount))
		}, nil)
	return err
}

// commitUsage writes the usage transactions txs[i] for i in calls: a usage
// row for each call not recorded before, and one posting per tenant and
// minute. A call is recorded before only when a crash left its settlement
// in the meter's journal after it was applied, so the calls are first
// written as if none were, and only when the ledger refuses one as a
// repeat are they written again without those it holds: looking every
// call up first cost about a tenth of the apply.
func (db *DB) commitUsage(ctx context.Context, tx *sql.Tx, txs []*aigrid.LedgerTx, calls []int, applied []bool) error {
	if len(calls) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT usage"); err != nil {
		return err
	}
	written, err := db.postUsage(ctx, tx, txs, calls, applied)
	if err != nil {
		return err
	}
	if !written {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO usage"); err != nil {
			return err
		}
		for _, i := range calls {
			txs[i].ID = 0 // the posting's, rolled back; postUsage marked none applied
		}
		fresh, err := unrecorded(ctx, tx, txs, calls)
		if err != nil {
			return err
		}
		if written, err = db.postUsage(ctx, tx, txs, fresh, applied); err != nil {
			return err
		}
		if !written {
			return errors.New("usage rows of calls not recorded before were refused as repeats")
		}
	}
	_, err = tx.ExecContext(ctx, "RELEASE usage")
	return err
}

// unrecorded returns those of calls whose call ID the ledger does not hold
// yet, each once.
func unrecorded(ctx context.Context, tx *sql.Tx, txs []*aigrid.LedgerTx, calls []int) ([]int, error) {
	ids := make([]string, len(calls))
	for j, i := range calls {
		ids[j] = txs[i].Usage.ID
	}
	list, _ := json.Marshal(ids)
	rows, err := tx.QueryContext(ctx, `SELECT u.id FROM json_each(?) j JOIN usage u ON u.id = j.value`, string(list))
	if err != nil {
		return nil, err
	}
	recorded := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		recorded[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var fresh []int
	for _, i := range calls {
		if id := txs[i].Usage.ID; !recorded[id] {
			recorded[id] = true // a second copy in this batch is a replay too
			fresh = append(fresh, i)
		}
	}
	return fresh, nil
}

// postUsage writes a usage row for each of calls and one posting per tenant
// and minute, and marks them applied. It reports false, having written
// part of them, when a call's row or a posting is refused as a repeat (the
// usage insert fails on the call ID's uniqueness: an upsert that skipped
// the repeat would look every call up again).
func (db *DB) postUsage(ctx context.Context, tx *sql.Tx, txs []*aigrid.LedgerTx, calls []int, applied []bool) (bool, error) {
	type minute struct {
		tenant int64
		at     int64 // Unix nanoseconds at the minute's start
	}
	var order []minute
	groups := map[minute][]int{}
	for _, i := range calls {
		at := toNanos(txs[i].At)
		m := minute{txs[i].TenantID, at - ((at%int64(time.Minute))+int64(time.Minute))%int64(time.Minute)}
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
	fresh := make([]int, 0, len(calls))
	for k, m := range order {
		if !posted[k] {
			return false, nil
		}
		for _, i := range groups[m] {
			txs[i].ID = postings[k].ID
			fresh = append(fresh, i)
		}
	}
	var blocks []byte
	err := db.insertRows(ctx, tx, &insertUsage, len(fresh),
		func(j int, args []any) []any {
			t := txs[fresh[j]]
			u := t.Usage
			blocks = appendBlocksJSON(blocks[:0], u.Charge.Blocks)
			return append(args, u.ID, t.ID, u.TenantID, u.KeyID, toNanos(u.At), u.Service, u.Provider, u.Model,
				u.PromptTokens, u.CompletionTokens, int64(u.Charge.Total), string(blocks), u.Charge.OffPeak, int64(u.Cost), u.Estimated)
		}, nil)
	if isUniqueViolation(err) { // the usage table's one unique key: the call ID
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, i := range fresh {
		applied[i] = true
	}
	return true, nil
}

// appendBlocksJSON appends a call's blocks as encoding/json writes them
// (the statement's queries read them with json_extract), without its
// reflection, for every call applied; a free call's list is empty.
func appendBlocksJSON(buf []byte, blocks []aigrid.BlockCharge) []byte {
	buf = append(buf, '[')
	for i, b := range blocks {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"block":`...)
		buf = strconv.AppendInt(buf, int64(b.Block), 10)
		buf = append(buf, `,"input_tokens":`...)
		buf = strconv.AppendInt(buf, b.Input, 10)
		buf = append(buf, `,"output_tokens":`...)
		buf = strconv.AppendInt(buf, b.Output, 10)
		buf = append(buf, `,"amount":`...)
		buf = strconv.AppendInt(buf, int64(b.Amount), 10)
		buf = append(buf, `,"exact_micro":`...)
		buf = strconv.AppendInt(buf, b.Exact, 10)
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

type entryRow struct {
	txID int64
	aigrid.Entry
}

// An insert is a statement that writes rows of width parameters: head,
// then "(?, ...), (?, ...)", then tail.
type insert struct {
	head  string
	width int
	tail  string
}

var (
	insertTxs     = insert{"INSERT INTO ledger_tx (key, kind, tenant_id, at, memo, actor) VALUES ", 6, " ON CONFLICT(key) DO NOTHING RETURNING id, key"}
	insertEntries = insert{"INSERT INTO ledger_entries (tx_id, account, amount) VALUES ", 3, ""}
	insertUsage   = insert{`INSERT INTO usage (id, tx_id, tenant_id, key_id, at, service, provider, model,
		prompt_tokens, completion_tokens, charge, blocks, off_peak, cost, estimated) VALUES `, 15, ""}
)

// insertChunks are the row counts of the statements insertRows runs,
// largest first: a group of any size is written with few statements, whose
// texts are few enough to be prepared once, when the store opens, rather
// than parsed again for every group.
var insertChunks = []int{256, 64, 16, 4, 1}

type chunkKey struct {
	insert *insert
	rows   int
}

// prepareInserts prepares every insert in every chunk size.
func (db *DB) prepareInserts(ctx context.Context) error {
	db.inserts = map[chunkKey]*sql.Stmt{}
	for _, in := range []*insert{&insertTxs, &insertEntries, &insertUsage} {
		one := "(" + strings.Repeat("?, ", in.width-1) + "?)"
		for _, n := range insertChunks {
			text := in.head + strings.Repeat(one+", ", n-1) + one + in.tail
			st, err := db.write.PrepareContext(ctx, text)
			if err != nil {
				return fmt.Errorf("sqlite: prepare: %w", err)
			}
			db.inserts[chunkKey{in, n}] = st
		}
	}
	return nil
}

// insertRows inserts n rows in chunks of the sizes in insertChunks. row
// appends the parameters of row j; scan, when set, reads the rows a
// RETURNING tail gives back.
func (db *DB) insertRows(ctx context.Context, tx *sql.Tx, in *insert, n int,
	row func(j int, args []any) []any, scan func(*sql.Rows) error) error {
	args := make([]any, 0, min(n, insertChunks[0])*in.width)
	for lo := 0; lo < n; {
		size := 1
		for _, c := range insertChunks {
			if c <= n-lo {
				size = c
				break
			}
		}
		stmt := tx.StmtContext(ctx, db.inserts[chunkKey{in, size}])
		args = args[:0]
		for j := lo; j < lo+size; j++ {
			args = row(j, args)
		}
		lo += size
		if scan == nil {
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return err
			}
			continue
		}
		rows, err := stmt.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// AccountBalance sums an account's entries. For the live balance it starts
// from the latest snapshot, and leaves a new one when it summed many entries.
func (db *DB) AccountBalance(ctx context.Context, account string, before time.Time) (aigrid.Money, error) {
	if !before.IsZero() {
		var sum int64
		err := db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e JOIN ledger_tx t ON t.id = e.tx_id
			WHERE e.account = ? AND t.at < ?`, account, toNanos(before)).Scan(&sum)
		if err != nil {
			return 0, fmt.Errorf("sqlite: balance: %w", err)
		}
		return aigrid.Money(sum), nil
	}
	var snapTx, snapBalance int64
	err := db.read.QueryRowContext(ctx, `SELECT tx_id, balance FROM balance_snapshots WHERE account = ? ORDER BY tx_id DESC LIMIT 1`, account).Scan(&snapTx, &snapBalance)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlite: balance snapshot: %w", err)
	}
	var sum, count, last int64
	err = db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount), 0), COUNT(*), COALESCE(MAX(tx_id), 0) FROM ledger_entries WHERE account = ? AND tx_id > ?`,
		account, snapTx).Scan(&sum, &count, &last)
	if err != nil {
		return 0, fmt.Errorf("sqlite: balance: %w", err)
	}
	balance := snapBalance + sum
	if count >= snapshotEvery {
		if _, err := db.write.ExecContext(ctx, `INSERT OR IGNORE INTO balance_snapshots (account, tx_id, balance) VALUES (?, ?, ?)`, account, last, balance); err != nil {
			return 0, fmt.Errorf("sqlite: write balance snapshot: %w", err)
		}
	}
	return aigrid.Money(balance), nil
}

// TokensSince sums a tenant's tokens at or after t.
func (db *DB) TokensSince(ctx context.Context, tenantID int64, t time.Time) (int64, error) {
	var n int64
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage WHERE tenant_id = ? AND at >= ?`,
		tenantID, toNanos(t)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: tokens: %w", err)
	}
	return n, nil
}

const usageColumns = `id, tenant_id, key_id, at, service, provider, model, prompt_tokens, completion_tokens, charge, blocks, off_peak, cost, estimated`

// ListUsage returns a tenant's calls in [from, to).
func (db *DB) ListUsage(ctx context.Context, tenantID int64, from, to time.Time, limit int) ([]*aigrid.UsageRecord, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage WHERE tenant_id = ? AND at >= ? AND at < ? ORDER BY at, id LIMIT ?`,
		tenantID, toNanos(from), toNanos(to), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list usage: %w", err)
	}
	defer rows.Close()
	var out []*aigrid.UsageRecord
	for rows.Next() {
		var u aigrid.UsageRecord
		var at, charge, cost int64
		var blocks string
		if err := rows.Scan(&u.ID, &u.TenantID, &u.KeyID, &at, &u.Service, &u.Provider, &u.Model, &u.PromptTokens, &u.CompletionTokens,
			&charge, &blocks, &u.Charge.OffPeak, &cost, &u.Estimated); err != nil {
			return nil, fmt.Errorf("sqlite: list usage: %w", err)
		}
		if err := json.Unmarshal([]byte(blocks), &u.Charge.Blocks); err != nil {
			return nil, fmt.Errorf("sqlite: usage %s: blocks: %w", u.ID, err)
		}
		u.At, u.Charge.Total, u.Cost = fromNanos(at), aigrid.Money(charge), aigrid.Money(cost)
		out = append(out, &u)
	}
	return out, rows.Err()
}

// UsageByBlock sums a tenant's usage by service model and block.
func (db *DB) UsageByBlock(ctx context.Context, tenantID int64, from, to time.Time) ([]aigrid.UsageLine, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT u.service, json_extract(b.value, '$.block'), COUNT(*),
		SUM(json_extract(b.value, '$.input_tokens')), SUM(json_extract(b.value, '$.output_tokens')), SUM(json_extract(b.value, '$.amount')),
		COALESCE(SUM(json_extract(b.value, '$.exact_micro')), 0)
		FROM usage u, json_each(u.blocks) b WHERE u.tenant_id = ? AND u.at >= ? AND u.at < ? AND b.type = 'object'
		GROUP BY 1, 2
		UNION ALL
		SELECT service, 0, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), 0, 0
		FROM usage WHERE tenant_id = ? AND at >= ? AND at < ? AND (json_type(blocks) != 'array' OR json_array_length(blocks) = 0)
		GROUP BY 1
		ORDER BY 1, 2`, tenantID, toNanos(from), toNanos(to), tenantID, toNanos(from), toNanos(to))
	if err != nil {
		return nil, fmt.Errorf("sqlite: usage by block: %w", err)
	}
	defer rows.Close()
	var out []aigrid.UsageLine
	for rows.Next() {
		var l aigrid.UsageLine
		var amount int64
		if err := rows.Scan(&l.Service, &l.Block, &l.Calls, &l.InputTokens, &l.OutputTokens, &amount, &l.Exact); err != nil {
			return nil, fmt.Errorf("sqlite: usage by block: %w", err)
		}
		l.Amount = aigrid.Money(amount)
		out = append(out, l)
	}
	return out, rows.Err()
}

// ListTxs returns the non-usage transactions touching an account in [from, to).
func (db *DB) ListTxs(ctx context.Context, account string, from, to time.Time) ([]*aigrid.LedgerTx, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT t.id, t.key, t.kind, COALESCE(t.tenant_id, 0), t.at, t.memo, t.actor, e.account, e.amount
		FROM ledger_tx t JOIN ledger_entries e ON e.tx_id = t.id
		WHERE t.kind != 'usage' AND t.at >= ? AND t.at < ? AND t.id IN (SELECT tx_id FROM ledger_entries WHERE account = ?)
		ORDER BY t.at, t.id`, toNanos(from), toNanos(to), account)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list transactions: %w", err)
	}
	defer rows.Close()
	var out []*aigrid.LedgerTx
	for rows.Next() {
		var t aigrid.LedgerTx
		var at, amount int64
		var e aigrid.Entry
		if err := rows.Scan(&t.ID, &t.Key, &t.Kind, &t.TenantID, &at, &t.Memo, &t.Actor, &e.Account, &amount); err != nil {
			return nil, fmt.Errorf("sqlite: list transactions: %w", err)
		}
		e.Amount = aigrid.Money(amount)
		if n := len(out); n > 0 && out[n-1].ID == t.ID {
			out[n-1].Entries = append(out[n-1].Entries, e)
			continue
		}
		t.At, t.Entries = fromNanos(at), []aigrid.Entry{e}
		out = append(out, &t)
	}
	return out, rows.Err()
}

// Revenue sums usage by provider in [from, to).
func (db *DB) Revenue(ctx context.Context, from, to time.Time) ([]aigrid.RevenueLine, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT provider, COUNT(*), SUM(prompt_tokens + completion_tokens), SUM(charge), SUM(cost)
		FROM usage WHERE tenant_id IN (SELECT id FROM tenants) AND at >= ? AND at < ? GROUP BY provider ORDER BY provider`, toNanos(from), toNanos(to))
	if err != nil {
		return nil, fmt.Errorf("sqlite: revenue: %w", err)
	}
	defer rows.Close()
	var out []aigrid.RevenueLine
	for rows.Next() {
		var l aigrid.RevenueLine
		var revenue, cost int64
		if err := rows.Scan(&l.Provider, &l.Calls, &l.Tokens, &revenue, &cost); err != nil {
			return nil, fmt.Errorf("sqlite: revenue: %w", err)
		}
		l.Revenue, l.Cost, l.Margin = aigrid.Money(revenue), aigrid.Money(cost), aigrid.Money(revenue-cost)
		out = append(out, l)
	}
	return out, rows.Err()
}

// CheckLedger reports transactions whose entries do not sum to zero, and
// usage rows whose charge differs from their transaction's.
func (db *DB) CheckLedger(ctx context.Context) ([]string, error) {
	var bad []string
	rows, err := db.read.QueryContext(ctx, `SELECT t.key, COALESCE(SUM(e.amount), 0), COUNT(e.tx_id) FROM ledger_tx t LEFT JOIN ledger_entries e ON e.tx_id = t.id
		GROUP BY t.id HAVING COALESCE(SUM(e.amount), 0) != 0 OR COUNT(e.tx_id) = 0`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: check ledger: %w", err)
	}
	for rows.Next() {
		var key string
		var sum, n int64
		if err := rows.Scan(&key, &sum, &n); err != nil {
			rows.Close()
			return nil, err
		}
		bad = append(bad, fmt.Sprintf("transaction %s: %d entries summing to %d", key, n, sum))
	}
	rows.Close()
	// Each usage transaction posts its calls' charges to revenue: the sum of
	// their usage rows must be what it posted.
	rows, err = db.read.QueryContext(ctx, `SELECT t.key, u.calls, u.charged, COALESCE(r.amount, 0)
		FROM (SELECT tx_id, COUNT(*) AS calls, SUM(charge) AS charged FROM usage GROUP BY tx_id) u
		JOIN ledger_tx t ON t.id = u.tx_id
		LEFT JOIN (SELECT tx_id, SUM(amount) AS amount FROM ledger_entries WHERE account = 'revenue' GROUP BY tx_id) r ON r.tx_id = u.tx_id
		WHERE u.charged != COALESCE(r.amount, 0)`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: check ledger: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var calls, charged, amount int64
		if err := rows.Scan(&key, &calls, &charged, &amount); err != nil {
			return nil, err
		}
		bad = append(bad, fmt.Sprintf("usage transaction %s: its %d calls were charged %d, and it posted %d to revenue", key, calls, charged, amount))
	}
	return bad, rows.Err()
}

// GetAccount returns a tenant's account; ENotFound if it has none.
func (db *DB) GetAccount(ctx context.Context, tenantID int64) (*aigrid.Account, error) {
	a, err := scanAccount(db.read.QueryRowContext(ctx, `SELECT tenant_id, type, credit_limit, tariff, limits FROM accounts WHERE tenant_id = ?`, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, aigrid.Errorf(aigrid.ENotFound, "tenant %d has no account", tenantID)
	}
	return a, err
}

func scanAccount(row interface{ Scan(...any) error }) (*aigrid.Account, error) {
	var a aigrid.Account
	var limits string
	var credit int64
	if err := row.Scan(&a.TenantID, &a.Type, &credit, &a.Tariff, &limits); err != nil {
		return nil, err
	}
	a.CreditLimit = aigrid.Money(credit)
	if err := json.Unmarshal([]byte(limits), &a.Limits); err != nil {
		return nil, fmt.Errorf("sqlite: account %d: limits: %w", a.TenantID, err)
	}
	return &a, nil
}

// PutAccount creates or replaces a tenant's account.
func (db *DB) PutAccount(ctx context.Context, a *aigrid.Account) error {
	limits, _ := json.Marshal(a.Limits)
	_, err := db.write.ExecContext(ctx, `INSERT INTO accounts (tenant_id, type, credit_limit, tariff, limits) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(tenant_id) DO UPDATE SET type = excluded.type, credit_limit = excluded.credit_limit, tariff = excluded.tariff, limits = excluded.limits`,
		a.TenantID, string(a.Type), int64(a.CreditLimit), a.Tariff, string(limits))
	if err != nil {
		if strings.Contains(err.Error(), "FOREIGN KEY") {
			return aigrid.Errorf(aigrid.ENotFound, "tenant %d not found", a.TenantID)
		}
		return fmt.Errorf("sqlite: put account: %w", err)
	}
	return nil
}

// ListAccounts returns every account.
func (db *DB) ListAccounts(ctx context.Context) ([]*aigrid.Account, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT tenant_id, type, credit_limit, tariff, limits FROM accounts ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list accounts: %w", err)
	}
	defer rows.Close()
	var out []*aigrid.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// PutTariff stores a tariff version, replacing the one of the same name and date.
func (db *DB) PutTariff(ctx context.Context, t *aigrid.Tariff) error {
	spec, _ := json.Marshal(t)
	_, err := db.write.ExecContext(ctx, `INSERT INTO tariffs (name, effective, spec) VALUES (?, ?, ?)
		ON CONFLICT(name, effective) DO UPDATE SET spec = excluded.spec`, t.Name, toNanos(t.Effective), string(spec))
	if err != nil {
		return fmt.Errorf("sqlite: put tariff: %w", err)
	}
	return nil
}

// ListTariffs returns every tariff version, by name and date.
func (db *DB) ListTariffs(ctx context.Context) ([]*aigrid.Tariff, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT spec FROM tariffs ORDER BY name, effective`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tariffs: %w", err)
	}
	defer rows.Close()
	var out []*aigrid.Tariff
	for rows.Next() {
		var spec string
		if err := rows.Scan(&spec); err != nil {
			return nil, err
		}
		var t aigrid.Tariff
		if err := json.Unmarshal([]byte(spec), &t); err != nil {
			return nil, fmt.Errorf("sqlite: tariff: %w", err)
		}
		out = append(out, &t)
	}
	return out, rows.Err()
}

// CreateVouchers stores minted vouchers with their transaction.
func (db *DB) CreateVouchers(ctx context.Context, vs []*aigrid.Voucher, t *aigrid.LedgerTx) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO vouchers (hash, batch, value, expires_at, created_at) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, v := range vs {
			if _, err := ins.ExecContext(ctx, v.Hash, v.Batch, int64(v.Value), nullTime(v.ExpiresAt), toNanos(v.CreatedAt)); err != nil {
				return fmt.Errorf("sqlite: create voucher: %w", err)
			}
		}
		return insertTx(ctx, tx, t)
	})
}

// insertTx writes one transaction inside tx; a repeated key is a conflict.
func insertTx(ctx context.Context, tx *sql.Tx, t *aigrid.LedgerTx) error {
	if !t.Balanced() {
		return fmt.Errorf("sqlite: transaction %s does not balance", t.Key)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO ledger_tx (key, kind, tenant_id, at, memo, actor) VALUES (?, ?, ?, ?, ?, ?)`,
		t.Key, t.Kind, nullID(t.TenantID), toNanos(t.At), t.Memo, t.Actor)
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return aigrid.Errorf(aigrid.EConflict, "transaction %s is already recorded", t.Key)
		}
		return fmt.Errorf("sqlite: write transaction: %w", err)
	}
	id, _ := res.LastInsertId()
	t.ID = id
	for _, e := range t.Entries {
		if _, err := tx.ExecContext(ctx, `INSERT INTO ledger_entries (tx_id, account, amount) VALUES (?, ?, ?)`, id, e.Account, int64(e.Amount)); err != nil {
			return fmt.Errorf("sqlite: write entry: %w", err)
		}
	}
	return nil
}

// RedeemVoucher spends a voucher for a tenant, in one transaction with its ledger entries.
func (db *DB) RedeemVoucher(ctx context.Context, hash string, tenantID int64, at time.Time, t *aigrid.LedgerTx) (aigrid.Money, error) {
	var value aigrid.Money
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var v int64
		var expires, redeemed sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT value, expires_at, redeemed_at FROM vouchers WHERE hash = ?`, hash).Scan(&v, &expires, &redeemed)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return &aigrid.Error{Code: aigrid.ENotFound, Param: "code", Message: "No voucher has this code. Check it with the seller."}
		case err != nil:
			return fmt.Errorf("sqlite: find voucher: %w", err)
		case redeemed.Valid:
			return &aigrid.Error{Code: aigrid.EConflict, Param: "code", Message: "This voucher was already redeemed on " + fromNanos(redeemed.Int64).Format("2006-01-02") + "."}
		case expires.Valid && !at.Before(fromNanos(expires.Int64)):
			return &aigrid.Error{Code: aigrid.EInvalid, Param: "code", Message: "This voucher expired on " + fromNanos(expires.Int64).Format("2006-01-02") + "."}
		}
		value = aigrid.Money(v)
		if _, err := tx.ExecContext(ctx, `UPDATE vouchers SET redeemed_at = ?, redeemed_by = ? WHERE hash = ? AND redeemed_at IS NULL`,
			toNanos(at), tenantID, hash); err != nil {
			return fmt.Errorf("sqlite: redeem voucher: %w", err)
		}
		t.Entries = []aigrid.Entry{{Account: aigrid.AccountVoucherFloat, Amount: -value}, {Account: aigrid.TenantAccount(tenantID), Amount: value}}
		return insertTx(ctx, tx, t)
	})
	return value, err
}
