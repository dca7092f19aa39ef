package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aigrid"
	"aigrid/internal/usagepack"
)

// A group larger than one statement's parameters, with a key repeated
// inside it and keys written before, is applied once per key.
func TestCommitTxsLargeGroupsAndReplays(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a")
	tenant := tenants[0]
	usageTx := func(i int) *aigrid.LedgerTx {
		id := fmt.Sprintf("call-%d", i)
		at := time.Date(2026, 11, 24, 12, 0, 0, i, time.UTC)
		return &aigrid.LedgerTx{Key: "usage:" + id, Kind: aigrid.TxUsage, TenantID: tenant.ID, At: at,
			Entries: []aigrid.Entry{{Account: aigrid.TenantAccount(tenant.ID), Amount: -3}, {Account: aigrid.AccountRevenue, Amount: 3}},
			Usage: &aigrid.UsageRecord{ID: id, TenantID: tenant.ID, At: at, Service: "chat", Provider: "up1", Model: "m",
				PromptTokens: 10, CompletionTokens: 5, Charge: aigrid.Charge{Total: 3, Blocks: []aigrid.BlockCharge{{Block: 2, Input: 10, Output: 5, Amount: 3}}}}}
	}
	first := make([]*aigrid.LedgerTx, 10)
	for i := range first {
		first[i] = usageTx(i)
	}
	if _, err := db.CommitTxs(ctx, first); err != nil {
		t.Fatal(err)
	}
	var group []*aigrid.LedgerTx
	for i := range 5000 {
		group = append(group, usageTx(i)) // 0..9 were written before
	}
	group = append(group, usageTx(4999)) // twice in the group
	applied, err := db.CommitTxs(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, a := range applied {
		if a {
			n++
		}
		if a != (i >= 10 && i < 5000) {
			t.Fatalf("tx %d (%s) applied %v", i, group[i].Key, a)
		}
	}
	if n != 4990 {
		t.Fatalf("%d applied, want 4990", n)
	}
	usage, err := db.ListUsage(ctx, tenant.ID, time.Time{}, time.Now(), 10000)
	if err != nil || len(usage) != 5000 {
		t.Fatalf("%d usage rows, %v", len(usage), err)
	}
	bal, err := db.AccountBalance(ctx, aigrid.TenantAccount(tenant.ID), time.Time{})
	if err != nil || bal != -15000 {
		t.Fatalf("balance %d, %v", bal, err)
	}
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %d problems (%.300v), %v", len(bad), bad, err)
	}

	// Only a repeat within the group, of a call not in the ledger, and one
	// not first in its minute: it is applied once.
	again := []*aigrid.LedgerTx{usageTx(6000), usageTx(6001), usageTx(6001)}
	applied, err = db.CommitTxs(ctx, again)
	if err != nil || !applied[0] || !applied[1] || applied[2] {
		t.Fatalf("applied %v, %v", applied, err)
	}
	usage, err = db.ListUsage(ctx, tenant.ID, time.Time{}, time.Now(), 10000)
	if err != nil || len(usage) != 5002 {
		t.Fatalf("%d usage rows, %v", len(usage), err)
	}
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %d problems (%.300v), %v", len(bad), bad, err)
	}
}

// A free call (no tariff: no blocks) is in the usage by block as block 0.
func TestUsageByBlockWithFreeCalls(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a")
	tenant := tenants[0]
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	free := &aigrid.LedgerTx{Key: "usage:free", Kind: aigrid.TxUsage, TenantID: tenant.ID, At: at,
		Entries: []aigrid.Entry{{Account: aigrid.TenantAccount(tenant.ID), Amount: 0}, {Account: aigrid.AccountRevenue, Amount: 0}},
		Usage:   &aigrid.UsageRecord{ID: "free", TenantID: tenant.ID, At: at, Service: "package:forecast", PromptTokens: 40}}
	if _, err := db.CommitTxs(ctx, []*aigrid.LedgerTx{free}); err != nil {
		t.Fatal(err)
	}
	lines, err := db.UsageByBlock(ctx, tenant.ID, at.Add(-time.Hour), at.Add(time.Hour))
	if err != nil || len(lines) != 1 || lines[0].Block != 0 || lines[0].InputTokens != 40 || lines[0].Calls != 1 {
		t.Fatalf("lines %+v, %v", lines, err)
	}
}

// Calls are posted one transaction per tenant and minute: a balance at a
// minute's start counts exactly the calls before it, in every time zone, and
// the check finds a packed call whose charge differs from what was posted
// (and from what the rollup summed).
func TestUsagePostingsByTenantAndMinute(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a", "school-b")
	a, b := tenants[0], tenants[1]
	// Midnight of 1 December in Kathmandu (UTC+5:45) is 18:15 UTC on 30 November.
	kathmandu := time.FixedZone("NPT", 5*3600+45*60)
	midnight := time.Date(2026, 12, 1, 0, 0, 0, 0, kathmandu)
	call := func(tn *aigrid.Tenant, id string, at time.Time, charge aigrid.Money) *aigrid.LedgerTx {
		return &aigrid.LedgerTx{Key: "usage:" + id, Kind: aigrid.TxUsage, TenantID: tn.ID, At: at,
			Entries: []aigrid.Entry{{Account: aigrid.TenantAccount(tn.ID), Amount: -charge}, {Account: aigrid.AccountRevenue, Amount: charge}},
			Usage: &aigrid.UsageRecord{ID: id, TenantID: tn.ID, At: at, Service: "chat", Provider: "up1", Model: "m",
				PromptTokens: 10, CompletionTokens: 5, Charge: aigrid.Charge{Total: charge}}}
	}
	txs := []*aigrid.LedgerTx{
		call(a, "a1", midnight.Add(-time.Second), 5),
		call(a, "a2", midnight.Add(-time.Millisecond), 7),
		call(a, "a3", midnight, 11),
		call(b, "b1", midnight.Add(-time.Second), 13),
		call(a, "a4", midnight.Add(59*time.Second), 17),
	}
	if _, err := db.CommitTxs(ctx, txs); err != nil {
		t.Fatal(err)
	}
	if txs[0].ID != txs[1].ID || txs[2].ID != txs[4].ID || txs[0].ID == txs[2].ID || txs[3].ID == txs[0].ID {
		t.Errorf("postings: %d %d %d %d %d; want a1 with a2, a3 with a4, b1 alone", txs[0].ID, txs[1].ID, txs[2].ID, txs[3].ID, txs[4].ID)
	}
	for _, c := range []struct {
		tenant *aigrid.Tenant
		before time.Time
		want   aigrid.Money
	}{{a, midnight, -12}, {a, midnight.Add(time.Minute), -40}, {b, midnight, -13}, {a, time.Time{}, -40}} {
		got, err := db.AccountBalance(ctx, aigrid.TenantAccount(c.tenant.ID), c.before)
		if err != nil || got != c.want {
			t.Errorf("%s before %v: %d, %v; want %d", c.tenant.Name, c.before, got, err, c.want)
		}
	}
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %v, %v", bad, err)
	}
	rewritePack(t, db, txs[1].ID, func(u *aigrid.UsageRecord) {
		if u.ID == "a2" {
			u.Charge.Total = 8
		}
	})
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 2 || !strings.Contains(bad[0], "charged 13, and it posted 12") ||
		!strings.Contains(bad[1], "charge:12 cost:0}, its calls sum to {lines:2 input:20 output:10 amount:0 exact:0 calls:2 tokens:30 charge:13") {
		t.Fatalf("check after tampering: %q, %v", bad, err)
	}
}

// openWithTenants opens a store in a temporary directory, closed when the
// test ends, with the named tenants.
func openWithTenants(t testing.TB, names ...string) (*DB, []*aigrid.Tenant) {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "grid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var tenants []*aigrid.Tenant
	for _, name := range names {
		tn := &aigrid.Tenant{Name: name}
		if err := db.CreateTenant(context.Background(), tn); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tn)
	}
	return db, tenants
}

// rewritePack changes the calls packed with the posting txID, as a
// tampering hand would, leaving the pack's totals as they were.
func rewritePack(t *testing.T, db *DB, txID int64, change func(*aigrid.UsageRecord)) {
	t.Helper()
	ctx := context.Background()
	var body []byte
	if err := db.write.QueryRowContext(ctx, `SELECT body FROM usage_packs WHERE tx_id = ?`, txID).Scan(&body); err != nil {
		t.Fatal(err)
	}
	p, err := usagepack.OpenPack(body)
	if err != nil {
		t.Fatal(err)
	}
	var calls []*aigrid.UsageRecord
	for {
		u := &aigrid.UsageRecord{}
		if !p.Next(u) {
			break
		}
		change(u)
		calls = append(calls, u)
	}
	if p.Err() != nil {
		t.Fatal(p.Err())
	}
	var packer usagepack.Packer
	if _, err := db.write.ExecContext(ctx, `UPDATE usage_packs SET body = ? WHERE tx_id = ?`, packer.Append(nil, calls), txID); err != nil {
		t.Fatal(err)
	}
}

// TxByKey reads back what CommitTxs wrote under a key, entries in their
// order, and tells a key never written by ENotFound.
func TestTxByKey(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a")
	id := tenants[0].ID
	at := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	tx := &aigrid.LedgerTx{Key: "topup:MPESA-1", Kind: aigrid.TxTopUp, TenantID: id, At: at, Memo: "MPESA-1", Actor: "op",
		Entries: []aigrid.Entry{{Account: aigrid.TenantAccount(id), Amount: 2500}, {Account: aigrid.AccountCash, Amount: -2500}}}
	if _, err := db.CommitTxs(ctx, []*aigrid.LedgerTx{tx}); err != nil {
		t.Fatal(err)
	}
	got, err := db.TxByKey(ctx, "topup:MPESA-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID == 0 || got.Key != tx.Key || got.Kind != tx.Kind || got.TenantID != id || !got.At.Equal(at) ||
		got.Memo != tx.Memo || got.Actor != tx.Actor || !slices.Equal(got.Entries, tx.Entries) {
		t.Fatalf("read back %+v, wrote %+v", got, tx)
	}
	if _, err := db.TxByKey(ctx, "topup:MPESA-2"); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Fatalf("a key never written: %v, want not_found", err)
	}
}

// A period's ends before 1678 or after 2262, beyond what Unix nanoseconds
// count, bound it rather than wrap round: the balance before a month of
// 1677 was the balance now, and its statement did not add up.
func TestBalanceAndCreditsAtFarTimes(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a")
	account := aigrid.TenantAccount(tenants[0].ID)
	at := time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC)
	top := &aigrid.LedgerTx{Key: "topup:R-1", Kind: aigrid.TxTopUp, TenantID: tenants[0].ID, At: at, Memo: "R-1",
		Entries: []aigrid.Entry{{Account: account, Amount: 1000}, {Account: aigrid.AccountCash, Amount: -1000}}}
	if _, err := db.CommitTxs(ctx, []*aigrid.LedgerTx{top}); err != nil {
		t.Fatal(err)
	}
	nairobi := time.FixedZone("EAT", 3*3600)
	for _, c := range []struct {
		before time.Time
		want   aigrid.Money
	}{
		{time.Date(1677, 9, 1, 0, 0, 0, 0, nairobi), 0},
		{time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), 0}, // the zero time itself means now
		{at, 0},
		{at.Add(time.Nanosecond), 1000},
		{time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), 1000},
	} {
		if got, err := db.AccountBalance(ctx, account, c.before); err != nil || got != c.want {
			t.Errorf("balance before %v: %d, %v; want %d", c.before, got, err, c.want)
		}
	}
	for _, c := range []struct {
		from, to time.Time
		want     int
	}{
		{time.Date(1677, 9, 1, 0, 0, 0, 0, nairobi), time.Date(1677, 10, 1, 0, 0, 0, 0, nairobi), 0},
		{time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), 1},
		{time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2300, 2, 1, 0, 0, 0, 0, time.UTC), 0},
	} {
		if txs, err := db.ListTxs(ctx, account, c.from, c.to); err != nil || len(txs) != c.want {
			t.Errorf("credits in [%v, %v): %d, %v; want %d", c.from, c.to, len(txs), err, c.want)
		}
	}
}
