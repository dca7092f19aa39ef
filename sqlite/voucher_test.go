package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aigrid"
)

var mintedAt = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

// mint stores a batch of n vouchers of value, hashed "BATCH/i", minted
// minutes after mintedAt, with its balancing transaction.
func mint(t *testing.T, db *DB, batch string, n int, value aigrid.Money, minutes int, expires *time.Time) []string {
	t.Helper()
	at := mintedAt.Add(time.Duration(minutes) * time.Minute)
	vs := make([]*aigrid.Voucher, n)
	hashes := make([]string, n)
	for i := range vs {
		hashes[i] = fmt.Sprintf("%s/%d", batch, i)
		vs[i] = &aigrid.Voucher{Hash: hashes[i], Batch: batch, Value: value, ExpiresAt: expires, CreatedAt: at}
	}
	total := value * aigrid.Money(n)
	tx := &aigrid.LedgerTx{Key: "mint:" + batch, Kind: aigrid.TxVoucherMint, At: at,
		Entries: []aigrid.Entry{{Account: aigrid.AccountVoucherFloat, Amount: total}, {Account: aigrid.AccountVoucherSales, Amount: -total}}}
	if err := db.CreateVouchers(context.Background(), vs, tx); err != nil {
		t.Fatal(err)
	}
	return hashes
}

func redeem(db *DB, hash string, tenant int64, at time.Time) (aigrid.Money, error) {
	return db.RedeemVoucher(context.Background(), hash, tenant, at, &aigrid.LedgerTx{Key: "redeem:" + hash, Kind: aigrid.TxVoucherRedeem, TenantID: tenant, At: at})
}

func void(db *DB, batch, hash string, at time.Time) (aigrid.VoucherVoid, error) {
	return db.VoidVouchers(context.Background(), batch, hash, at, &aigrid.LedgerTx{Key: fmt.Sprintf("void:%s%s:%d", batch, hash, at.UnixNano()),
		Kind: aigrid.TxVoucherVoid, At: at, Memo: "lost in the post", Actor: "key:op"})
}

// checkFloat fails the test unless every transaction balances and the
// float holds exactly the vouchers neither redeemed nor voided, counted
// here from the rows rather than by the check under test.
func checkFloat(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	if bad, err := db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %v, %v", bad, err)
	}
	var open int64
	if err := db.read.QueryRow(`SELECT COALESCE(SUM(value), 0) FROM vouchers WHERE redeemed_at IS NULL AND voided_at IS NULL`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	float, err := db.AccountBalance(ctx, aigrid.AccountVoucherFloat, time.Time{})
	if err != nil || float != aigrid.Money(open) {
		t.Fatalf("voucher_float %d, the open vouchers are worth %d (%v)", float, open, err)
	}
	sales, _ := db.AccountBalance(ctx, aigrid.AccountVoucherSales, time.Time{})
	var spent int64
	db.read.QueryRow(`SELECT COALESCE(SUM(value), 0) FROM vouchers WHERE redeemed_at IS NOT NULL`).Scan(&spent)
	if sales != -aigrid.Money(open+spent) {
		t.Fatalf("voucher_sales %d, want -%d: the vouchers sold and not voided", sales, open+spent)
	}
}

func TestVoidAndListBatches(t *testing.T) {
	ctx := context.Background()
	db, tenants := openWithTenants(t, "clinic-a")
	tenant := tenants[0].ID
	expires := mintedAt.AddDate(0, 1, 0)
	a := mint(t, db, "batch-a", 5, 5000, 0, &expires)
	b := mint(t, db, "batch-b", 4, 10000, 10, nil)
	checkFloat(t, db)

	now := mintedAt.Add(24 * time.Hour)
	for _, h := range []string{a[0], a[1], b[0]} {
		if _, err := redeem(db, h, tenant, now); err != nil {
			t.Fatal(err)
		}
	}
	// One code of b, then the rest of b.
	got, err := void(db, "", b[1], now)
	if err != nil || got != (aigrid.VoucherVoid{Batch: "batch-b", Voided: aigrid.VoucherSum{Count: 1, Value: 10000}}) {
		t.Fatalf("void a code: %+v, %v", got, err)
	}
	got, err = void(db, "batch-b", "", now.Add(time.Hour))
	if err != nil || got != (aigrid.VoucherVoid{Batch: "batch-b", Voided: aigrid.VoucherSum{Count: 2, Value: 20000}, Redeemed: 1, AlreadyVoided: 1}) {
		t.Fatalf("void a batch: %+v, %v", got, err)
	}
	checkFloat(t, db)
	// The void's transaction is audited, and every voided voucher points to its own.
	tx, err := db.TxByKey(ctx, fmt.Sprintf("void:batch-b:%d", now.Add(time.Hour).UnixNano()))
	if err != nil || tx.Kind != aigrid.TxVoucherVoid || tx.Memo != "lost in the post" || tx.Actor != "key:op" || !tx.Balanced() ||
		tx.Entries[0] != (aigrid.Entry{Account: aigrid.AccountVoucherFloat, Amount: -20000}) {
		t.Fatalf("the void's transaction: %+v, %v", tx, err)
	}
	var linked int
	db.read.QueryRow(`SELECT COUNT(*) FROM vouchers WHERE void_tx = ?`, tx.ID).Scan(&linked)
	if linked != 2 {
		t.Fatalf("%d vouchers name the batch void's transaction, want 2", linked)
	}

	// Nothing left to void: nothing is written, and the answer says why.
	var txs int
	db.read.QueryRow(`SELECT COUNT(*) FROM ledger_tx`).Scan(&txs)
	for _, sel := range [][2]string{{"batch-b", ""}, {"", b[0]}, {"", b[1]}} {
		got, err := void(db, sel[0], sel[1], now.Add(2*time.Hour))
		if err != nil || got.Voided != (aigrid.VoucherSum{}) || got.Batch != "batch-b" || got.Redeemed+got.AlreadyVoided == 0 {
			t.Fatalf("void %v again: %+v, %v", sel, got, err)
		}
	}
	var after int
	db.read.QueryRow(`SELECT COUNT(*) FROM ledger_tx`).Scan(&after)
	if after != txs {
		t.Fatalf("a void of nothing wrote %d transactions", after-txs)
	}
	for _, sel := range [][2]string{{"batch-z", ""}, {"", "no-such-hash"}} {
		if _, err := void(db, sel[0], sel[1], now); aigrid.ErrorCode(err) != aigrid.ENotFound {
			t.Fatalf("void %v: %v, want not found", sel, err)
		}
	}

	// A voided code is refused, and credits nothing.
	_, err = redeem(db, b[2], tenant, now.Add(3*time.Hour))
	if aigrid.ErrorCode(err) != aigrid.EConflict || err.Error() != "This voucher was cancelled by the grid's operator on 2026-11-02." {
		t.Fatalf("redeem a voided code: %v", err)
	}
	if _, err := redeem(db, a[0], tenant, now); aigrid.ErrorCode(err) != aigrid.EConflict || !strings.Contains(err.Error(), "already redeemed") {
		t.Fatalf("redeem twice: %v", err)
	}
	if bal, _ := db.AccountBalance(ctx, aigrid.TenantAccount(tenant), time.Time{}); bal != 20000 {
		t.Fatalf("tenant balance %d, want 200.00", bal)
	}

	// After a's expiry: its three open vouchers are expired, then voided.
	later := expires.Add(time.Second)
	if _, err := redeem(db, a[2], tenant, later); aigrid.ErrorCode(err) != aigrid.EInvalid || !strings.Contains(err.Error(), "expired on") {
		t.Fatalf("redeem an expired code: %v", err)
	}
	list, err := db.VoucherBatches(ctx, later)
	if err != nil || len(list) != 2 {
		t.Fatalf("batches: %+v, %v", list, err)
	}
	wantB := aigrid.VoucherBatch{Batch: "batch-b", MintedAt: mintedAt.Add(10 * time.Minute), Value: 10000, Minted: aigrid.VoucherSum{Count: 4, Value: 40000},
		Redeemed: aigrid.VoucherSum{Count: 1, Value: 10000}, Voided: aigrid.VoucherSum{Count: 3, Value: 30000}}
	if list[0] != wantB {
		t.Fatalf("newest first:\n%+v, want\n%+v", list[0], wantB)
	}
	wantA := aigrid.VoucherBatch{Batch: "batch-a", MintedAt: mintedAt, ExpiresAt: list[1].ExpiresAt, Value: 5000, Minted: aigrid.VoucherSum{Count: 5, Value: 25000},
		Redeemed: aigrid.VoucherSum{Count: 2, Value: 10000}, Expired: aigrid.VoucherSum{Count: 3, Value: 15000}}
	if list[1] != wantA || !list[1].ExpiresAt.Equal(expires) {
		t.Fatalf("batch a after expiry:\n%+v, want\n%+v", list[1], wantA)
	}
	if before, _ := db.VoucherBatches(ctx, now); before[1].Outstanding != (aigrid.VoucherSum{Count: 3, Value: 15000}) || before[1].Expired.Count != 0 {
		t.Fatalf("batch a before expiry: %+v", before[1])
	}
	got, err = void(db, "batch-a", "", later)
	if err != nil || got.Voided != (aigrid.VoucherSum{Count: 3, Value: 15000}) || got.Redeemed != 2 {
		t.Fatalf("void the expired: %+v, %v", got, err)
	}
	list, _ = db.VoucherBatches(ctx, later)
	if list[1].Expired.Count != 0 || list[1].Voided != (aigrid.VoucherSum{Count: 3, Value: 15000}) {
		t.Fatalf("batch a after its void: %+v", list[1])
	}
	checkFloat(t, db)
	if float, _ := db.AccountBalance(ctx, aigrid.AccountVoucherFloat, time.Time{}); float != 0 {
		t.Fatalf("float %d after every open voucher was voided", float)
	}
}

// A void of a batch racing redemptions of its codes, and voids of single
// codes racing two tenants' redemptions of each: each voucher goes one way,
// once.
func TestRedeemRacesVoid(t *testing.T) {
	db, tenants := openWithTenants(t, "clinic-a", "school-b")
	batch := mint(t, db, "batch-r", 40, 100, 0, nil)
	single := mint(t, db, "batch-s", 20, 100, 1, nil)
	at := mintedAt.Add(time.Hour)
	start := make(chan struct{})
	var wg sync.WaitGroup
	// redeemed[ti][i]: tenant ti redeemed code i (of batch, then single).
	redeemed := [2][]bool{make([]bool, len(batch)+len(single)), make([]bool, len(batch)+len(single))}
	try := func(ti, i int, h string) {
		wg.Go(func() {
			<-start
			_, err := redeem(db, h, tenants[ti].ID, at)
			if err != nil && aigrid.ErrorCode(err) != aigrid.EConflict {
				t.Errorf("redeem %s: %v", h, err)
			}
			redeemed[ti][i] = err == nil
		})
	}
	for i, h := range batch {
		try(i%2, i, h)
	}
	var batchVoid aigrid.VoucherVoid
	wg.Go(func() {
		<-start
		var err error
		if batchVoid, err = void(db, "batch-r", "", at); err != nil {
			t.Error(err)
		}
	})
	voided := make([]bool, len(single))
	for i, h := range single {
		try(0, len(batch)+i, h)
		try(1, len(batch)+i, h)
		wg.Go(func() {
			<-start
			got, err := void(db, "", h, at)
			if err != nil {
				t.Errorf("void %s: %v", h, err)
			}
			voided[i] = got.Voided.Count == 1
		})
	}
	close(start)
	wg.Wait()
	won, singleWon := 0, 0
	for i := range len(batch) + len(single) {
		n := boolInt(redeemed[0][i]) + boolInt(redeemed[1][i])
		if i < len(batch) {
			won += n
		} else if singleWon += n; n+boolInt(voided[i-len(batch)]) != 1 {
			t.Errorf("code %d: redeemed %d times, voided %v", i, n, voided[i-len(batch)])
		}
		if n > 1 {
			t.Errorf("code %d redeemed %d times", i, n)
		}
	}
	if won+int(batchVoid.Voided.Count) != len(batch) || int(batchVoid.Redeemed) != won {
		t.Errorf("batch: %d redeemed, the void voided %d and found %d redeemed, of %d", won, batchVoid.Voided.Count, batchVoid.Redeemed, len(batch))
	}
	t.Logf("batch: %d redeemed before the void; single codes: %d of %d redeemed before their void", won, singleWon, len(single))
	checkFloat(t, db)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The check finds a voucher whose row says voided without the transaction
// that takes it out of the float.
func TestCheckFindsVoucherOffTheFloat(t *testing.T) {
	db, _ := openWithTenants(t)
	hashes := mint(t, db, "batch-t", 3, 700, 0, nil)
	if _, err := db.write.Exec(`UPDATE vouchers SET voided_at = 1 WHERE hash = ?`, hashes[0]); err != nil {
		t.Fatal(err)
	}
	bad, err := db.CheckLedger(context.Background())
	if err != nil || len(bad) != 1 || !strings.Contains(bad[0], "voucher_float: balance 2100, but the vouchers neither redeemed nor voided are worth 1400") {
		t.Fatalf("check: %v, %v", bad, err)
	}
}

// A grid of the schema before voids is upgraded with its vouchers as they
// were: listed, redeemable, voidable.
func TestUpgradeVouchersToVoids(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	const before = 8 // the schema version before the void columns
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := old.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range migrations[:before] {
		exec(m)
	}
	exec(fmt.Sprintf(`PRAGMA user_version = %d`, before))
	exec(`INSERT INTO tenants (id, name, class, created_at, updated_at) VALUES (1, 'clinic-a', 'standard', 0, 0)`)
	exec(`INSERT INTO ledger_tx (id, key, kind, at) VALUES (1, 'mint:batch-old', 'voucher_mint', ?), (2, 'redeem:h1', 'voucher_redeem', ?)`, toNanos(mintedAt), toNanos(mintedAt))
	exec(`INSERT INTO ledger_entries (tx_id, account, amount) VALUES (1, 'voucher_float', 1500), (1, 'voucher_sales', -1500), (2, 'voucher_float', -500), (2, 'tenant:1', 500)`)
	exec(`INSERT INTO vouchers (hash, batch, value, created_at, redeemed_at, redeemed_by) VALUES ('h1', 'batch-old', 500, ?, ?, 1), ('h2', 'batch-old', 500, ?, NULL, NULL), ('h3', 'batch-old', 500, ?, NULL, NULL)`,
		toNanos(mintedAt), toNanos(mintedAt), toNanos(mintedAt), toNanos(mintedAt))
	old.Close()

	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkFloat(t, db)
	at := mintedAt.Add(time.Hour)
	list, err := db.VoucherBatches(ctx, at)
	if err != nil || len(list) != 1 || list[0].Redeemed.Count != 1 || list[0].Outstanding != (aigrid.VoucherSum{Count: 2, Value: 1000}) {
		t.Fatalf("batches after the upgrade: %+v, %v", list, err)
	}
	if v, err := redeem(db, "h2", 1, at); err != nil || v != 500 {
		t.Fatalf("redeem after the upgrade: %d, %v", v, err)
	}
	if got, err := void(db, "batch-old", "", at); err != nil || got.Voided != (aigrid.VoucherSum{Count: 1, Value: 500}) || got.Redeemed != 2 {
		t.Fatalf("void after the upgrade: %+v, %v", got, err)
	}
	checkFloat(t, db)
}
