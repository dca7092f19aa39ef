package meter

import (
	"context"
	"time"

	"aigrid"
)

// SyncedStore wraps a store so that its ledger reads first apply the
// settlements waiting in the meter's journal: a reader sees every call
// settled before it asked. The API reads through it; the meter itself
// reads its own ledger directly.
func (m *Meter) SyncedStore(s aigrid.Store) aigrid.Store { return syncedStore{s, m} }

type syncedStore struct {
	aigrid.Store
	m *Meter
}

// sync applies the journal, and says so in the client's terms when it cannot.
func (s syncedStore) sync(ctx context.Context) error {
	if err := s.m.Sync(ctx); err != nil {
		s.m.set.Logger.Error("meter: apply the journal before a ledger read", "error", err.Error())
		return aigrid.Errorf(aigrid.EUnavailable, "The ledger is catching up with recent calls and cannot be read just now. Try again shortly.")
	}
	return nil
}

func (s syncedStore) AccountBalance(ctx context.Context, account string, before time.Time) (aigrid.Money, error) {
	if err := s.sync(ctx); err != nil {
		return 0, err
	}
	return s.Store.AccountBalance(ctx, account, before)
}

func (s syncedStore) TokensSince(ctx context.Context, tenantID int64, t time.Time) (int64, error) {
	if err := s.sync(ctx); err != nil {
		return 0, err
	}
	return s.Store.TokensSince(ctx, tenantID, t)
}

func (s syncedStore) ListUsage(ctx context.Context, tenantID int64, from, to time.Time, limit int) ([]*aigrid.UsageRecord, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	return s.Store.ListUsage(ctx, tenantID, from, to, limit)
}

func (s syncedStore) UsageByBlock(ctx context.Context, tenantID int64, from, to time.Time) ([]aigrid.UsageLine, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	return s.Store.UsageByBlock(ctx, tenantID, from, to)
}

func (s syncedStore) ListTxs(ctx context.Context, account string, from, to time.Time) ([]*aigrid.LedgerTx, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	return s.Store.ListTxs(ctx, account, from, to)
}

func (s syncedStore) Revenue(ctx context.Context, from, to time.Time) ([]aigrid.RevenueLine, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	return s.Store.Revenue(ctx, from, to)
}

func (s syncedStore) CheckLedger(ctx context.Context) ([]string, error) {
	if err := s.sync(ctx); err != nil {
		return nil, err
	}
	return s.Store.CheckLedger(ctx)
}
