package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
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

// usageCall is a usage transaction of one call, as the meter settles it.
func usageCall(tenant int64, id string, at time.Time, provider string, charge aigrid.Money, blocks ...aigrid.BlockCharge) *aigrid.LedgerTx {
	if blocks == nil {
		blocks = []aigrid.BlockCharge{}
	}
	return &aigrid.LedgerTx{Key: "usage:" + id, Kind: aigrid.TxUsage, TenantID: tenant, At: at,
		Entries: []aigrid.Entry{{Account: aigrid.TenantAccount(tenant), Amount: -charge}, {Account: aigrid.AccountRevenue, Amount: charge}},
		Usage: &aigrid.UsageRecord{ID: id, TenantID: tenant, KeyID: "k1", At: at.UTC(), Service: "chat", Provider: provider, Model: "m",
			PromptTokens: int64(len(id)), CompletionTokens: 5, Charge: aigrid.Charge{Total: charge, Blocks: blocks}, Cost: 1}}
}

// Calls that carry journal positions are applied once: a batch at or before
// the position applied so far changes nothing, a batch that straddles it
// applies only what is after it, and positions out of order are refused.
func TestReplayByJournalPosition(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a")
	tenant := tenants[0].ID
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	batch := func(seg uint64, from, to int) []*aigrid.LedgerTx {
		var txs []*aigrid.LedgerTx
		for i := from; i < to; i++ {
			tx := usageCall(tenant, fmt.Sprintf("s%d-c%d", seg, i), at.Add(time.Duration(i)*time.Second), "up1", 2)
			tx.Journal = aigrid.JournalPos{Segment: seg, Offset: int64(100 * (i + 1))}
			txs = append(txs, tx)
		}
		return txs
	}
	if mark, err := db.JournalApplied(ctx); err != nil || mark != (aigrid.JournalPos{}) {
		t.Fatalf("a new ledger's position: %v, %v", mark, err)
	}
	if _, err := db.CommitTxs(ctx, batch(1, 0, 10)); err != nil {
		t.Fatal(err)
	}
	if mark, err := db.JournalApplied(ctx); err != nil || mark != (aigrid.JournalPos{Segment: 1, Offset: 1000}) {
		t.Fatalf("position after the first batch: %v, %v", mark, err)
	}
	applied, err := db.CommitTxs(ctx, batch(1, 0, 10))
	if err != nil || slices.Contains(applied, true) {
		t.Fatalf("the same batch again: applied %v, %v", applied, err)
	}
	// The position decides, not the call's ID.
	renamed := batch(1, 0, 10)
	for _, tx := range renamed {
		tx.Usage.ID += "-renamed"
	}
	if applied, err := db.CommitTxs(ctx, renamed); err != nil || slices.Contains(applied, true) {
		t.Fatalf("records applied before, their calls renamed: applied %v, %v", applied, err)
	}
	// Records 5..14 of segment 1: the first five were applied.
	applied, err = db.CommitTxs(ctx, batch(1, 5, 15))
	if err != nil || slices.Contains(applied[:5], true) || slices.Contains(applied[5:], false) {
		t.Fatalf("a straddling batch: applied %v, %v", applied, err)
	}
	// A later segment's records, one of them a call twice in the batch.
	later := batch(2, 0, 3)
	twice := usageCall(tenant, "s2-c1", later[1].At, "up1", 2)
	twice.Journal = aigrid.JournalPos{Segment: 2, Offset: 350}
	later = append(later, twice)
	applied, err = db.CommitTxs(ctx, later)
	if err != nil || !reflect.DeepEqual(applied, []bool{true, true, true, false}) {
		t.Fatalf("segment 2: applied %v, %v", applied, err)
	}
	// A call settled twice, the second time first in its posting, at a
	// later position: its posting's key exists, and it counts once.
	again := batch(2, 3, 5)
	again[0].Usage.ID = "s1-c0"
	applied, err = db.CommitTxs(ctx, again)
	if err != nil || !reflect.DeepEqual(applied, []bool{false, true}) {
		t.Fatalf("a call settled twice: applied %v, %v", applied, err)
	}
	out := batch(3, 0, 2)
	out[0], out[1] = out[1], out[0]
	if _, err := db.CommitTxs(ctx, out); err == nil || !strings.Contains(err.Error(), "is not after") {
		t.Fatalf("positions out of order: %v", err)
	}
	if mark, _ := db.JournalApplied(ctx); mark != (aigrid.JournalPos{Segment: 2, Offset: 500}) {
		t.Fatalf("position after a refused batch: %v", mark)
	}
	usage, err := db.ListUsage(ctx, tenant, time.Time{}, at.Add(time.Hour), 100)
	if err != nil || len(usage) != 19 {
		t.Fatalf("%d calls, %v; want 15 of segment 1 and 4 of segment 2", len(usage), err)
	}
	// The rollup counts what was applied once, the rolled-back apply of the
	// call settled twice included.
	day := at.Truncate(24 * time.Hour)
	if lines, err := db.UsageByBlock(ctx, tenant, day, day.AddDate(0, 0, 1)); err != nil || !reflect.DeepEqual(lines, byBlock(usage)) {
		t.Fatalf("the day by block: %+v, %v; want %+v", lines, err, byBlock(usage))
	}
	if bal, _ := db.AccountBalance(ctx, aigrid.TenantAccount(tenant), time.Time{}); bal != -38 {
		t.Fatalf("balance %d, want -38", bal)
	}
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %v, %v", bad, err)
	}
}

// The readers give what a call-by-call scan gives: ListUsage pages through
// packs whose minutes overlap (several applies in one minute) in order of
// time and ID, from any point, with any limit; tokens, blocks and revenue
// add up over any period.
func TestUsageReadersAcrossPacks(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a", "school-b")
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 11, 30, 23, 57, 0, 0, time.UTC)
	var all []*aigrid.UsageRecord
	seg := uint64(1)
	for b := range 12 {
		var txs []*aigrid.LedgerTx
		for i := range 40 + rng.IntN(40) {
			tn := tenants[rng.IntN(2)]
			// Times repeat, so that the ID orders calls of the same time.
			at := start.Add(time.Duration(rng.IntN(5*60*4)) * 250 * time.Millisecond)
			provider := []string{"up1", "up2", "up3"}[rng.IntN(3)]
			var blocks []aigrid.BlockCharge
			charge := aigrid.Money(rng.IntN(4))
			if charge > 0 {
				blocks = []aigrid.BlockCharge{{Block: 1, Input: 3}, {Block: 1 + rng.IntN(2), Input: 4, Output: 5, Amount: charge, Exact: int64(charge) * 999_999}}
			}
			tx := usageCall(tn.ID, fmt.Sprintf("c%02x%03d", rng.IntN(256), b*100+i), at, provider, charge, blocks...)
			tx.Journal = aigrid.JournalPos{Segment: seg, Offset: int64(i + 1)}
			txs = append(txs, tx)
			all = append(all, tx.Usage)
		}
		seg++
		if _, err := db.CommitTxs(ctx, txs); err != nil {
			t.Fatal(err)
		}
	}
	var packs int
	db.read.QueryRow(`SELECT COUNT(*) FROM usage_packs`).Scan(&packs)
	if packs < 30 {
		t.Fatalf("%d packs; the test wants many that overlap", packs)
	}
	slices.SortFunc(all, compareCalls)
	periods := [][2]time.Time{{time.Time{}, start.Add(time.Hour)}, {time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, {start.Add(90 * time.Second), start.Add(150 * time.Second)},
		{start.Add(61 * time.Second), start.Add(61*time.Second + 250*time.Millisecond)}, {start.Add(time.Hour), start.Add(2 * time.Hour)}}
	for range 20 {
		from := start.Add(time.Duration(rng.IntN(5*60*4)) * 250 * time.Millisecond)
		periods = append(periods, [2]time.Time{from, from.Add(time.Duration(rng.IntN(200)) * time.Second)})
	}
	for _, tn := range tenants {
		var mine []*aigrid.UsageRecord
		for _, u := range all {
			if u.TenantID == tn.ID {
				mine = append(mine, u)
			}
		}
		for _, p := range periods {
			var want []*aigrid.UsageRecord
			var tokens int64
			for _, u := range mine {
				if !u.At.Before(p[0]) && u.At.Before(p[1]) {
					want = append(want, u)
				}
				if !u.At.Before(p[0]) {
					tokens += u.PromptTokens + u.CompletionTokens
				}
			}
			for _, limit := range []int{1, 7, 50, 10000} {
				got, err := db.ListUsage(ctx, tn.ID, p[0], p[1], limit)
				if err != nil {
					t.Fatal(err)
				}
				w := want[:min(limit, len(want))]
				if len(got) != len(w) || len(w) > 0 && !reflect.DeepEqual(got, w) {
					t.Fatalf("%s in [%v, %v) limit %d: %d calls, want %d", tn.Name, p[0], p[1], limit, len(got), len(w))
				}
			}
			// Paging on from the last call's time, as a client does.
			if len(want) > 0 {
				page, _ := db.ListUsage(ctx, tn.ID, p[0], p[1], 5)
				last := page[len(page)-1].At
				next, _ := db.ListUsage(ctx, tn.ID, last, p[1], 10000)
				from := slices.IndexFunc(want, func(u *aigrid.UsageRecord) bool { return !u.At.Before(last) })
				if !reflect.DeepEqual(next, want[from:]) {
					t.Fatalf("%s: the page from %v has %d calls, want %d", tn.Name, last, len(next), len(want)-from)
				}
			}
			if got, err := db.TokensSince(ctx, tn.ID, p[0]); err != nil || got != tokens {
				t.Fatalf("%s: tokens since %v: %d, %v; want %d", tn.Name, p[0], got, err, tokens)
			}
			lines, err := db.UsageByBlock(ctx, tn.ID, p[0], p[1])
			if err != nil || !reflect.DeepEqual(lines, byBlock(want)) {
				t.Fatalf("%s: by block in [%v, %v): %+v, %v; want %+v", tn.Name, p[0], p[1], lines, err, byBlock(want))
			}
		}
	}
	for _, p := range periods {
		want := byProvider(within(all, p[0], p[1]))
		if got, err := db.Revenue(ctx, p[0], p[1]); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("revenue in [%v, %v): %+v, %v; want %+v", p[0], p[1], got, err, want)
		}
	}
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %v, %v", bad, err)
	}
}

// within is those of calls in [from, to).
func within(calls []*aigrid.UsageRecord, from, to time.Time) []*aigrid.UsageRecord {
	var out []*aigrid.UsageRecord
	for _, u := range calls {
		if !u.At.Before(from) && u.At.Before(to) {
			out = append(out, u)
		}
	}
	return out
}

// byProvider sums calls by provider, as Revenue does.
func byProvider(calls []*aigrid.UsageRecord) []aigrid.RevenueLine {
	var out []aigrid.RevenueLine
	for _, u := range calls {
		k := slices.IndexFunc(out, func(l aigrid.RevenueLine) bool { return l.Provider == u.Provider })
		if k < 0 {
			k = len(out)
			out = append(out, aigrid.RevenueLine{Provider: u.Provider})
		}
		l := &out[k]
		l.Calls++
		l.Tokens += u.PromptTokens + u.CompletionTokens
		l.Revenue += u.Charge.Total
		l.Cost += u.Cost
		l.Margin = l.Revenue - l.Cost
	}
	slices.SortFunc(out, func(a, b aigrid.RevenueLine) int { return strings.Compare(a.Provider, b.Provider) })
	return out
}

// byBlock sums calls by service model and block, as UsageByBlock does.
func byBlock(calls []*aigrid.UsageRecord) []aigrid.UsageLine {
	var out []aigrid.UsageLine
	line := func(service string, block int) *aigrid.UsageLine {
		k := slices.IndexFunc(out, func(l aigrid.UsageLine) bool { return l.Service == service && l.Block == block })
		if k < 0 {
			k = len(out)
			out = append(out, aigrid.UsageLine{Service: service, Block: block})
		}
		out[k].Calls++
		return &out[k]
	}
	for _, u := range calls {
		if len(u.Charge.Blocks) == 0 {
			l := line(u.Service, 0)
			l.InputTokens += u.PromptTokens
			l.OutputTokens += u.CompletionTokens
		}
		for _, b := range u.Charge.Blocks {
			l := line(u.Service, b.Block)
			l.InputTokens += b.Input
			l.OutputTokens += b.Output
			l.Amount += b.Amount
			l.Exact += b.Exact
		}
	}
	slices.SortFunc(out, func(a, b aigrid.UsageLine) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), cmp.Compare(a.Block, b.Block))
	})
	return out
}

// A ledger of the schema before packs, one usage row a call, is upgraded
// with every call kept: the readers give what its rows held, the check
// passes, and, since the journal position applied is not known, calls are
// looked up by ID until an apply records one, so that a journal the old
// aigrid left, part of it applied, is applied once.
func TestUpgradeFromUsageRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	for v, m := range migrations[:6] {
		if _, err := old.Exec(m); err != nil {
			t.Fatalf("schema version %d: %v", v+1, err)
		}
	}
	at := time.Date(2026, 11, 24, 12, 0, 30, 0, time.UTC)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := old.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`PRAGMA user_version = 6`)
	exec(`INSERT INTO tenants (id, name, class, created_at, updated_at) VALUES (1, 'clinic-a', 'standard', 0, 0)`)
	// Two postings of the old aigrid: calls a, b and c in one, d in another
	// (a free call whose blocks an older aigrid wrote as null).
	want := []*aigrid.UsageRecord{
		{ID: "a", TenantID: 1, KeyID: "k1", At: at, Service: "chat", Provider: "up1", Model: "m", PromptTokens: 10, CompletionTokens: 5,
			Charge: aigrid.Charge{Total: 3, OffPeak: true, Blocks: []aigrid.BlockCharge{{Block: 2, Input: 10, Output: 5, Amount: 3, Exact: 2_999_999}}}, Cost: 1},
		{ID: "b", TenantID: 1, At: at, Service: "chat", Provider: "up2", Model: "m", PromptTokens: 7, CompletionTokens: 1,
			Charge: aigrid.Charge{Total: 2, Blocks: []aigrid.BlockCharge{{Block: 1, Input: 3}, {Block: 2, Input: 4, Output: 1, Amount: 2, Exact: 2_000_000}}}, Estimated: true},
		{ID: "c", TenantID: 1, At: at.Add(time.Second), Service: "chat", Provider: "up1", Model: "m", PromptTokens: 1, CompletionTokens: 1,
			Charge: aigrid.Charge{Blocks: []aigrid.BlockCharge{}}},
		{ID: "d", TenantID: 1, At: at.Add(time.Minute), Service: "package:forecast", PromptTokens: 40, Charge: aigrid.Charge{Blocks: []aigrid.BlockCharge{}}},
	}
	posting := map[string]int64{"a": 1, "b": 1, "c": 1, "d": 2}
	exec(`INSERT INTO ledger_tx (id, key, kind, tenant_id, at, memo) VALUES (1, 'usage-posting:a', 'usage', 1, ?, '3 calls'), (2, 'usage-posting:d', 'usage', 1, ?, '1 calls')`,
		toNanos(at.Truncate(time.Minute)), toNanos(at.Add(time.Minute).Truncate(time.Minute)))
	exec(`INSERT INTO ledger_entries (tx_id, account, amount) VALUES (1, 'tenant:1', -5), (1, 'revenue', 5), (2, 'tenant:1', 0), (2, 'revenue', 0)`)
	for _, u := range want {
		blocks, _ := json.Marshal(u.Charge.Blocks)
		if u.ID == "d" {
			blocks = []byte("null")
		}
		exec(`INSERT INTO usage (id, tx_id, tenant_id, key_id, at, service, provider, model, prompt_tokens, completion_tokens, charge, blocks, off_peak, cost, estimated)
			VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.ID, posting[u.ID], u.KeyID, toNanos(u.At), u.Service, u.Provider, u.Model,
			u.PromptTokens, u.CompletionTokens, int64(u.Charge.Total), string(blocks), u.Charge.OffPeak, int64(u.Cost), u.Estimated)
	}
	old.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.ListUsage(ctx, 1, time.Time{}, at.Add(time.Hour), 100)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after the upgrade: %+v, %v; want %+v", got, err, want)
	}
	if lines, _ := db.UsageByBlock(ctx, 1, time.Time{}, at.Add(time.Hour)); !reflect.DeepEqual(lines, byBlock(want)) {
		t.Fatalf("by block: %+v; want %+v", lines, byBlock(want))
	}
	if tokens, _ := db.TokensSince(ctx, 1, at.Add(time.Second)); tokens != 42 {
		t.Fatalf("tokens since c: %d, want 42", tokens)
	}
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %v, %v", bad, err)
	}
	var tables int
	db.read.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE name = 'usage'`).Scan(&tables)
	if tables != 0 {
		t.Fatal("the usage table is still there")
	}

	// The old aigrid's journal, replayed: b was applied, e was not.
	replay := []*aigrid.LedgerTx{usageCall(1, "b", at, "up2", 2), usageCall(1, "e", at.Add(2*time.Second), "up1", 4)}
	replay[0].Journal, replay[1].Journal = aigrid.JournalPos{Segment: 3, Offset: 90}, aigrid.JournalPos{Segment: 3, Offset: 180}
	applied, err := db.CommitTxs(ctx, replay)
	if err != nil || !reflect.DeepEqual(applied, []bool{false, true}) {
		t.Fatalf("the old journal's replay: applied %v, %v", applied, err)
	}
	if mark, _ := db.JournalApplied(ctx); mark != replay[1].Journal {
		t.Fatalf("position after the replay: %v", mark)
	}
	if got, _ := db.ListUsage(ctx, 1, time.Time{}, at.Add(time.Hour), 100); len(got) != 5 {
		t.Fatalf("%d calls after the replay, want 5", len(got))
	}
	if bal, _ := db.AccountBalance(ctx, aigrid.TenantAccount(1), time.Time{}); bal != -9 {
		t.Fatalf("balance %d, want -9", bal)
	}
}
