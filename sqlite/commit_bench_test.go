package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"aigrid"
)

// BenchmarkCommitUsage applies usage settlements in batches of 512, as the
// meter's applier does (with their journal positions), to a ledger that
// grows as it runs: ns/op is per settlement.
func BenchmarkCommitUsage(b *testing.B) {
	ctx := context.Background()
	db, tenants := openWithTenants(b, "clinic-a", "clinic-b")
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	batch := make([]*aigrid.LedgerTx, 512)
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		for k := range batch {
			tenant := tenants[k%2].ID
			id := fmt.Sprintf("req_%012x%012x", n, n*7919)
			at = at.Add(97 * time.Microsecond)
			batch[k] = &aigrid.LedgerTx{Key: "usage:" + id, Kind: aigrid.TxUsage, TenantID: tenant, At: at,
				Entries: []aigrid.Entry{{Account: aigrid.TenantAccount(tenant), Amount: -30}, {Account: aigrid.AccountRevenue, Amount: 30}},
				Usage: &aigrid.UsageRecord{ID: id, TenantID: tenant, KeyID: "k1", At: at, Service: "chat", Provider: "up1", Model: "fast",
					PromptTokens: 8, CompletionTokens: 32, Charge: aigrid.Charge{Total: 30, Blocks: []aigrid.BlockCharge{{Block: 2, Input: 8, Output: 32, Amount: 30, Exact: 30_123_456}}}},
				Journal: aigrid.JournalPos{Segment: 1, Offset: int64(n + 1)}}
			n++
		}
		if _, err := db.CommitTxs(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUsageReaders reads one tenant's month of a million calls (23 a
// minute, applied in batches of 512 as the meter's applier does) in the
// grid's zone: the month's usage by block (a statement, and the meter's
// carry at the tenant's first call after a start), revenue by provider, and
// the tokens since the month's start (the meter's counter at a start).
func BenchmarkUsageReaders(b *testing.B) {
	ctx := context.Background()
	const calls = 1_000_000
	nairobi := time.FixedZone("EAT", 3*3600)
	month := time.Date(2026, 11, 1, 0, 0, 0, 0, nairobi)
	next := month.AddDate(0, 1, 0)
	step := next.Sub(month) / calls
	db, tenants := openWithTenants(b, "clinic-a")
	tenant := tenants[0].ID
	batch := make([]*aigrid.LedgerTx, 0, 512)
	for n := range calls {
		id := fmt.Sprintf("req_%012x%012x", n, n*7919)
		at := month.Add(time.Duration(n) * step).UTC()
		// The lifeline block first, then a call across into block 2, then block 2.
		blocks := []aigrid.BlockCharge{{Block: 1, Input: 8, Output: 32}}
		var charge aigrid.Money
		switch {
		case n == 5000:
			blocks = append(blocks, aigrid.BlockCharge{Block: 2, Input: 3, Output: 9, Amount: 1, Exact: 1_234_567})
			charge = 1
		case n > 5000:
			blocks = []aigrid.BlockCharge{{Block: 2, Input: 8, Output: 32, Amount: 30, Exact: 30_123_456}}
			charge = 30
		}
		batch = append(batch, &aigrid.LedgerTx{Key: "usage:" + id, Kind: aigrid.TxUsage, TenantID: tenant, At: at,
			Entries: []aigrid.Entry{{Account: aigrid.TenantAccount(tenant), Amount: -charge}, {Account: aigrid.AccountRevenue, Amount: charge}},
			Usage: &aigrid.UsageRecord{ID: id, TenantID: tenant, KeyID: "k1", At: at, Service: "chat", Provider: []string{"up1", "up2"}[n%2], Model: "fast",
				PromptTokens: 8, CompletionTokens: 32, Charge: aigrid.Charge{Total: charge, Blocks: blocks}, Cost: 7},
			Journal: aigrid.JournalPos{Segment: 1, Offset: int64(n + 1)}})
		if len(batch) == cap(batch) || n == calls-1 {
			if _, err := db.CommitTxs(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Run("UsageByBlock", func(b *testing.B) {
		for b.Loop() {
			lines, err := db.UsageByBlock(ctx, tenant, month, next)
			if err != nil || len(lines) != 2 || lines[0].Calls+lines[1].Calls != calls+1 {
				b.Fatalf("%+v, %v", lines, err)
			}
		}
	})
	b.Run("Revenue", func(b *testing.B) {
		for b.Loop() {
			lines, err := db.Revenue(ctx, month, next)
			if err != nil || len(lines) != 2 || lines[0].Calls+lines[1].Calls != calls {
				b.Fatalf("%+v, %v", lines, err)
			}
		}
	})
	b.Run("TokensSince", func(b *testing.B) {
		for b.Loop() {
			if n, err := db.TokensSince(ctx, tenant, month); err != nil || n != 40*calls {
				b.Fatalf("%d, %v", n, err)
			}
		}
	})
	// The upgrade's step: the rollup built again from the packs, in a
	// transaction rolled back after.
	b.Run("RollUpPacks", func(b *testing.B) {
		for b.Loop() {
			err := db.tx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `DELETE FROM usage_slots`); err != nil {
					return err
				}
				if err := rollUpPacks(ctx, tx); err != nil {
					return err
				}
				return errRolledBack
			})
			if err != errRolledBack {
				b.Fatal(err)
			}
		}
	})
}

var errRolledBack = errors.New("rolled back")
