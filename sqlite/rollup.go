package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"time"

	"aigrid"
	"aigrid/internal/usagepack"
)

// The rollup, usage_slots, sums a tenant's calls by 15-minute slot,
// service model, provider and block, updated by the apply that writes the
// packs, in the same transaction. Every UTC offset in use is a multiple of
// 15 minutes, so a month or a day in the grid's zone is whole slots; the
// readers still take any period, the calls of its partial slots at either
// end read from the packs. Reading a month costs its slots, not its calls:
// a few thousand rows for a busy tenant, against millions of calls.

// slotSpan is the rollup's slot: 15 minutes, whole in every time zone in
// use, and a whole number of a pack's minutes, so that a pack lies in one.
const slotSpan = int64(15 * time.Minute)

// slotOf is the start of the slot of t, in Unix nanoseconds.
func slotOf(at int64) int64 { return at - ((at%slotSpan)+slotSpan)%slotSpan }

// wholeSlots is the slots [lo, hi) that lie whole in [from, to); ok is
// false when there are none.
func wholeSlots(from, to time.Time) (lo, hi int64, ok bool) {
	f, t := boundNanos(from), boundNanos(to)
	if f > math.MaxInt64-slotSpan || t < math.MinInt64+slotSpan {
		return 0, 0, false
	}
	// No slot starts before the first whole one Unix nanoseconds count.
	lo = slotOf(max(f, math.MinInt64+slotSpan))
	if lo < f {
		lo += slotSpan
	}
	hi = slotOf(t)
	return lo, hi, lo < hi
}

// slotKey is a row of usage_slots.
type slotKey struct {
	tenant, slot      int64
	service, provider string
	block             int
}

// slotSums are a slot row's sums. A call counts a line in each of its
// blocks (a call with no blocks, in block 0, with its tokens), as the
// statement's lines count; its own sums (one call, its tokens, charge and
// cost) count on its first line's row, so that a provider's rows count
// each call once.
type slotSums struct {
	lines, input, output, amount, exact int64
	calls, tokens, charge, cost         int64
}

// rollup sums calls by slot row, in the order their rows came.
type rollup struct {
	index map[slotKey]int
	keys  []slotKey
	sums  []slotSums
	last  int // the row of the line before: calls in a row share theirs
}

// row is the sums of key, added when new.
func (r *rollup) row(k slotKey) *slotSums {
	if r.last < len(r.keys) && r.keys[r.last] == k {
		return &r.sums[r.last]
	}
	i, ok := r.index[k]
	if !ok {
		if r.index == nil {
			r.index = map[slotKey]int{}
		}
		i = len(r.keys)
		r.index[k] = i
		r.keys = append(r.keys, k)
		r.sums = append(r.sums, slotSums{})
	}
	r.last = i
	return &r.sums[i]
}

// add sums the call u of tenant.
func (r *rollup) add(tenant int64, u *aigrid.UsageRecord) {
	k := slotKey{tenant, slotOf(toNanos(u.At)), u.Service, u.Provider, 0}
	lines := u.Charge.Blocks
	if len(lines) == 0 {
		lines = []aigrid.BlockCharge{{Input: u.PromptTokens, Output: u.CompletionTokens}}
	}
	for j, b := range lines {
		k.block = b.Block
		s := r.row(k)
		s.lines++
		s.input += b.Input
		s.output += b.Output
		s.amount += int64(b.Amount)
		s.exact += b.Exact
		if j == 0 {
			s.calls++
			s.tokens += u.PromptTokens + u.CompletionTokens
			s.charge += int64(u.Charge.Total)
			s.cost += int64(u.Cost)
		}
	}
}

// reset empties r for the next sums, keeping its memory.
func (r *rollup) reset() {
	clear(r.index)
	r.keys, r.sums, r.last = r.keys[:0], r.sums[:0], 0
}

// upsertSlots adds rows' sums to those usage_slots holds.
var upsertSlots = insert{`INSERT INTO usage_slots (tenant_id, slot, service, provider, block,
	lines, input, output, amount, exact, calls, tokens, charge, cost) VALUES `, 14,
	` ON CONFLICT(tenant_id, slot, service, provider, block) DO UPDATE SET lines = lines + excluded.lines,
	input = input + excluded.input, output = output + excluded.output, amount = amount + excluded.amount,
	exact = exact + excluded.exact, calls = calls + excluded.calls, tokens = tokens + excluded.tokens,
	charge = charge + excluded.charge, cost = cost + excluded.cost`}

// writeSlots adds r's sums to the rollup.
func (db *DB) writeSlots(ctx context.Context, tx *sql.Tx, r *rollup) error {
	return db.insertRows(ctx, tx, &upsertSlots, len(r.keys), func(j int, args []any) []any {
		k, s := &r.keys[j], &r.sums[j]
		return append(args, k.tenant, k.slot, k.service, k.provider, k.block,
			s.lines, s.input, s.output, s.amount, s.exact, s.calls, s.tokens, s.charge, s.cost)
	}, nil)
}

// rollUpPacks sums into the rollup the packs written before it, a
// tenant's at a time, so that memory holds one tenant's rows.
func rollUpPacks(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT tenant_id FROM usage_packs ORDER BY tenant_id`)
	if err != nil {
		return err
	}
	var tenants []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		tenants = append(tenants, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO usage_slots (tenant_id, slot, service, provider, block,
		lines, input, output, amount, exact, calls, tokens, charge, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	var sums rollup
	var u aigrid.UsageRecord
	for _, tenant := range tenants {
		sums.reset()
		err := readPacks(ctx, tx, `SELECT tx_id, body FROM usage_packs WHERE tenant_id = ?`, []any{tenant},
			func(_ int64, p *usagepack.Pack) {
				for p.Next(&u) {
					sums.add(tenant, &u)
				}
			})
		if err != nil {
			return err
		}
		for j, k := range sums.keys {
			s := &sums.sums[j]
			_, err := ins.ExecContext(ctx, k.tenant, k.slot, k.service, k.provider, k.block, s.lines, s.input, s.output, s.amount, s.exact, s.calls, s.tokens, s.charge, s.cost)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// readTx begins a read of one snapshot, so that a reader's parts (whole
// slots from the rollup, partial ones from the packs) agree with each other
// while applies go on.
func (db *DB) readTx(ctx context.Context) (*sql.Tx, error) {
	return db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
}

// A slotSum is how a reader sums the rollup's rows: the columns it groups
// by, and what sumPeriod selects, in the order of a slotKey's service,
// provider and block and of slotSums' fields, with zeros for what the
// reader does not read (each sum costs SQLite a step a row).
type slotSum struct{ columns, group string }

var (
	sumByBlock = slotSum{`service, '', block, SUM(lines), SUM(input), SUM(output), SUM(amount), SUM(exact), 0, 0, 0, 0`,
		`service, block`}
	sumByProvider = slotSum{`'', provider, 0, 0, 0, 0, 0, 0, SUM(calls), SUM(tokens), SUM(charge), SUM(cost)`,
		`provider`}
)

// sumPeriod gives fn the sums of the calls in [from, to) of the tenants
// that where selects (a condition on tenant_id, whose parameters are args),
// in parts: the rollup's rows of the period's whole slots summed as by
// says, and the sums of the calls of its partial slots at either end, read
// from the packs, by service model, provider and block. fn reads only the
// fields of a part that by sums and groups by.
func sumPeriod(ctx context.Context, tx *sql.Tx, from, to time.Time, where string, args []any, by slotSum, fn func(*slotKey, *slotSums)) error {
	var partial rollup
	var u aigrid.UsageRecord
	calls := func(from, to time.Time) error {
		if !from.Before(to) {
			return nil
		}
		return readPacks(ctx, tx, `SELECT tx_id, body FROM usage_packs WHERE `+where+overlapping, slices.Concat(args, overlapArgs(from, to)),
			func(_ int64, p *usagepack.Pack) {
				for p.Next(&u) {
					if !u.At.Before(from) && u.At.Before(to) {
						partial.add(0, &u) // the tenant is not read
					}
				}
			})
	}
	lo, hi, ok := wholeSlots(from, to)
	if !ok {
		if err := calls(from, to); err != nil {
			return err
		}
	} else {
		if err := calls(from, fromNanos(lo)); err != nil {
			return err
		}
		if err := calls(fromNanos(hi), to); err != nil {
			return err
		}
	}
	for j := range partial.keys {
		fn(&partial.keys[j], &partial.sums[j])
	}
	if !ok {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+by.columns+` FROM usage_slots WHERE `+where+` AND slot >= ? AND slot < ? GROUP BY `+by.group,
		slices.Concat(args, []any{lo, hi})...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k slotKey
		var s slotSums
		if err := rows.Scan(&k.service, &k.provider, &k.block,
			&s.lines, &s.input, &s.output, &s.amount, &s.exact, &s.calls, &s.tokens, &s.charge, &s.cost); err != nil {
			return err
		}
		fn(&k, &s)
	}
	return rows.Err()
}

// checkSlots compares tenant's rows of the rollup with want, the sums of
// its calls, and appends to bad one report of the rows that differ, if any.
func checkSlots(ctx context.Context, tx *sql.Tx, tenant int64, want *rollup, bad []string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT slot, service, provider, block, lines, input, output, amount, exact, calls, tokens, charge, cost
		FROM usage_slots WHERE tenant_id = ?`, tenant)
	if err != nil {
		return bad, err
	}
	defer rows.Close()
	seen := make([]bool, len(want.keys))
	differ, first := 0, ""
	report := func(k slotKey, held, calls slotSums) {
		if differ++; differ == 1 {
			first = fmt.Sprintf("the slot from %s, %q on %q, block %d: it holds %+v, its calls sum to %+v",
				fromNanos(k.slot).Format(time.RFC3339), k.service, k.provider, k.block, held, calls)
		}
	}
	for rows.Next() {
		k := slotKey{tenant: tenant}
		var s slotSums
		if err := rows.Scan(&k.slot, &k.service, &k.provider, &k.block,
			&s.lines, &s.input, &s.output, &s.amount, &s.exact, &s.calls, &s.tokens, &s.charge, &s.cost); err != nil {
			return bad, err
		}
		i, ok := want.index[k]
		switch {
		case !ok:
			report(k, s, slotSums{})
		case want.sums[i] != s:
			seen[i] = true
			report(k, s, want.sums[i])
		default:
			seen[i] = true
		}
	}
	if err := rows.Err(); err != nil {
		return bad, err
	}
	for i, k := range want.keys {
		if !seen[i] {
			report(k, slotSums{}, want.sums[i])
		}
	}
	if differ > 0 {
		bad = append(bad, fmt.Sprintf("the usage rollup of tenant %d: %d rows differ from its calls' sums; %s", tenant, differ, first))
	}
	return bad, nil
}
