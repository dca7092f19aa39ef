package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"aigrid"
)

// randomUsage commits n random calls of the tenants between start and end,
// in batches of random calls as the meter's applier writes them, with a
// busy stretch of many calls a minute (packs of many calls, several packs
// a minute), and returns them.
func randomUsage(t *testing.T, db *DB, rng *rand.Rand, tenants []*aigrid.Tenant, start, end time.Time, n int) []*aigrid.UsageRecord {
	t.Helper()
	var all []*aigrid.UsageRecord
	busy := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
	var offset int64
	for len(all) < n {
		var txs []*aigrid.LedgerTx
		for range 1 + rng.IntN(100) {
			tn := tenants[rng.IntN(len(tenants))]
			at := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
			if rng.IntN(3) == 0 {
				at = busy.Add(time.Duration(rng.Int64N(int64(20 * time.Minute))))
			}
			var blocks []aigrid.BlockCharge
			charge := aigrid.Money(rng.IntN(5))
			switch rng.IntN(3) {
			case 1:
				blocks = []aigrid.BlockCharge{{Block: 1 + rng.IntN(3), Input: rng.Int64N(50), Output: rng.Int64N(50), Amount: charge, Exact: int64(charge)*1_000_000 - rng.Int64N(999_999)}}
			case 2: // across a block's end, or twice in one block
				blocks = []aigrid.BlockCharge{{Block: 1, Input: 3}, {Block: 1 + rng.IntN(2), Input: 4, Output: 5, Amount: charge, Exact: int64(charge) * 999_999}}
			}
			tx := usageCall(tn.ID, fmt.Sprintf("c%06d", len(all)+len(txs)), at, []string{"up1", "up2", "up3"}[rng.IntN(3)], charge, blocks...)
			tx.Usage.Service = []string{"chat", "embed"}[rng.IntN(2)]
			tx.Usage.PromptTokens += rng.Int64N(100)
			tx.Usage.Cost = aigrid.Money(rng.IntN(3))
			offset++
			tx.Journal = aigrid.JournalPos{Segment: 1, Offset: offset}
			txs = append(txs, tx)
		}
		if _, err := db.CommitTxs(context.Background(), txs); err != nil {
			t.Fatal(err)
		}
		for _, tx := range txs {
			all = append(all, tx.Usage)
		}
	}
	return all
}

// checkReaders compares the readers over each period with the sums of the
// calls that lie in it.
func checkReaders(t *testing.T, db *DB, tenants []*aigrid.Tenant, all []*aigrid.UsageRecord, periods [][2]time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, p := range periods {
		in := within(all, p[0], p[1])
		if got, err := db.Revenue(ctx, p[0], p[1]); err != nil || !reflect.DeepEqual(got, byProvider(in)) {
			t.Fatalf("revenue in [%v, %v): %+v, %v; want %+v", p[0], p[1], got, err, byProvider(in))
		}
		for _, tn := range tenants {
			mine := slices.DeleteFunc(slices.Clone(in), func(u *aigrid.UsageRecord) bool { return u.TenantID != tn.ID })
			if got, err := db.UsageByBlock(ctx, tn.ID, p[0], p[1]); err != nil || !reflect.DeepEqual(got, byBlock(mine)) {
				t.Fatalf("%s: by block in [%v, %v): %+v, %v; want %+v", tn.Name, p[0], p[1], got, err, byBlock(mine))
			}
			var tokens int64
			for _, u := range all {
				if u.TenantID == tn.ID && !u.At.Before(p[0]) {
					tokens += u.PromptTokens + u.CompletionTokens
				}
			}
			if got, err := db.TokensSince(ctx, tn.ID, p[0]); err != nil || got != tokens {
				t.Fatalf("%s: tokens since %v: %d, %v; want %d", tn.Name, p[0], got, err, tokens)
			}
		}
	}
}

// The readers, which sum the rollup's whole slots and the calls of the
// partial slots at a period's ends, give what the calls one by one give:
// months and days in zones whose offsets are and are not whole slots,
// periods at any nanosecond, within one slot, across slots and months.
func TestRollupReadersMatchCalls(t *testing.T) {
	db, tenants := openWithTenants(t, "clinic-a", "school-b")
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)
	all := randomUsage(t, db, rng, tenants, start, end, 3000)
	zones := []*time.Location{time.UTC, time.FixedZone("EAT", 3*3600), time.FixedZone("NPT", 5*3600+45*60),
		time.FixedZone("LMT", 2*3600+27*60+16), time.FixedZone("west", -(9*3600 + 30*60))}
	var periods [][2]time.Time
	for _, z := range zones {
		for _, m := range []time.Month{10, 11, 12} {
			month := time.Date(2026, m, 1, 0, 0, 0, 0, z)
			periods = append(periods, [2]time.Time{month, month.AddDate(0, 1, 0)})
		}
		day := time.Date(2026, 11, 30, 0, 0, 0, 0, z)
		periods = append(periods, [2]time.Time{day, day.AddDate(0, 0, 1)})
	}
	periods = append(periods, [2]time.Time{time.Time{}, end}, [2]time.Time{start, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, [2]time.Time{end, start},
		[2]time.Time{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 2, 0, 0, 0, 0, time.UTC)})
	for range 40 {
		from := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
		var span time.Duration
		switch rng.IntN(3) {
		case 0: // within a slot, or across one's end
			span = time.Duration(rng.Int64N(int64(20 * time.Minute)))
		case 1:
			span = time.Duration(rng.Int64N(int64(48 * time.Hour)))
		case 2:
			span = time.Duration(rng.Int64N(int64(end.Sub(start))))
		}
		periods = append(periods, [2]time.Time{from, from.Add(span)})
	}
	whole := 0
	for _, p := range periods {
		if _, _, ok := wholeSlots(p[0], p[1]); ok {
			whole++
		}
	}
	if whole < 30 || whole > len(periods)-10 {
		t.Fatalf("%d of %d periods hold whole slots; the test wants many with and without", whole, len(periods))
	}
	checkReaders(t, db, tenants, all, periods)
	if bad, err := db.CheckLedger(context.Background()); err != nil || len(bad) != 0 {
		t.Fatalf("check: %v, %v", bad, err)
	}
}

// A ledger whose packs were written before the rollup gets it at the
// upgrade, summed from the packs: the same rows the applies wrote.
func TestRollupBuiltFromPacks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "grid.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var tenants []*aigrid.Tenant
	for _, name := range []string{"clinic-a", "school-b", "idle-c"} {
		tn := &aigrid.Tenant{Name: name}
		if err := db.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tn)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	all := randomUsage(t, db, rng, tenants[:2], start, start.AddDate(0, 1, 0), 1000)
	written := slotRows(t, db)
	// The schema before the rollup (and the vouchers' void columns, which
	// came after it), with the packs the applies wrote.
	if _, err := db.write.Exec(`DROP TABLE usage_slots; ALTER TABLE vouchers DROP COLUMN void_tx; ALTER TABLE vouchers DROP COLUMN voided_at`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.Exec(`PRAGMA user_version = 7`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if built := slotRows(t, db); len(built) < 100 || !reflect.DeepEqual(built, written) {
		t.Fatalf("the upgrade built %d rows of the rollup; the applies wrote %d (the same rows wanted)", len(built), len(written))
	}
	month := time.Date(2026, 11, 1, 0, 0, 0, 0, time.FixedZone("EAT", 3*3600))
	checkReaders(t, db, tenants, all, [][2]time.Time{{month, month.AddDate(0, 1, 0)}, {start.Add(17 * time.Hour), start.Add(23*24*time.Hour + time.Second)}})
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %v, %v", bad, err)
	}
}

// slotRows is the rollup's rows, in order, as text.
func slotRows(t *testing.T, db *DB) []string {
	t.Helper()
	rows, err := db.read.Query(`SELECT tenant_id, slot, service, provider, block, lines, input, output, amount, exact, calls, tokens, charge, cost
		FROM usage_slots ORDER BY tenant_id, slot, service, provider, block`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k slotKey
		var s slotSums
		if err := rows.Scan(&k.tenant, &k.slot, &k.service, &k.provider, &k.block,
			&s.lines, &s.input, &s.output, &s.amount, &s.exact, &s.calls, &s.tokens, &s.charge, &s.cost); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%+v %+v", k, s))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The check finds a rollup row changed, one missing and one with no calls
// behind it; and the month's statement reads the rollup, not the calls.
func TestCheckFindsTamperedRollup(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a", "school-b", "idle-c")
	rng := rand.New(rand.NewPCG(7, 8))
	month := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	all := randomUsage(t, db, rng, tenants[:2], month, month.AddDate(0, 1, 0), 300)
	a, b := tenants[0].ID, tenants[1].ID
	exec := func(q string, args ...any) {
		t.Helper()
		if res, err := db.write.Exec(q, args...); err != nil {
			t.Fatal(err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("%s: %d rows", q, n)
		}
	}
	exec(`UPDATE usage_slots SET amount = amount + 1 WHERE (tenant_id, slot, service, provider, block) =
		(SELECT tenant_id, slot, service, provider, block FROM usage_slots WHERE tenant_id = ? LIMIT 1)`, a)
	mine := slices.DeleteFunc(slices.Clone(all), func(u *aigrid.UsageRecord) bool { return u.TenantID != a })
	lines, err := db.UsageByBlock(ctx, a, month, month.AddDate(0, 1, 0))
	var got, want aigrid.Money
	for _, l := range lines {
		got += l.Amount
	}
	for _, l := range byBlock(mine) {
		want += l.Amount
	}
	if err != nil || got != want+1 {
		t.Fatalf("the month's amount after a rollup row gained 1: %d, %v; the calls' %d", got, err, want)
	}
	exec(`DELETE FROM usage_slots WHERE (tenant_id, slot, service, provider, block) =
		(SELECT tenant_id, slot, service, provider, block FROM usage_slots WHERE tenant_id = ? LIMIT 1)`, b)
	exec(`INSERT INTO usage_slots (tenant_id, slot, service, provider, block, lines, input, output, amount, exact, calls, tokens, charge, cost)
		VALUES (?, ?, 'chat', 'up1', 1, 1, 2, 3, 4, 5, 1, 5, 4, 0)`, tenants[2].ID, toNanos(month))
	bad, err := db.CheckLedger(ctx)
	if err != nil || len(bad) != 3 {
		t.Fatalf("check: %q, %v; want three tenants' rollups reported", bad, err)
	}
	for k, want := range []string{
		fmt.Sprintf("rollup of tenant %d: 1 rows differ", a),
		fmt.Sprintf("rollup of tenant %d: 1 rows differ from its calls' sums; the slot from", b),
		fmt.Sprintf("rollup of tenant %d: 1 rows differ from its calls' sums; the slot from 2026-11-01T00:00:00Z, \"chat\" on \"up1\", block 1: it holds {lines:1 input:2 output:3 amount:4 exact:5 calls:1 tokens:5 charge:4 cost:0}, its calls sum to {lines:0", tenants[2].ID),
	} {
		if !strings.Contains(bad[k], want) {
			t.Errorf("report %d: %q; want it to say %q", k, bad[k], want)
		}
	}
}
