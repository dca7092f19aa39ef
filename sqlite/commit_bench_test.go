package sqlite

import (
	"context"
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
