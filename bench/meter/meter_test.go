package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"aigrid"
	"aigrid/api"
	"aigrid/config"
	"aigrid/dispatch"
	"aigrid/meter"
	"aigrid/provider/openai"
	"aigrid/sqlite"
)

// The harness at a tiny size, so that it cannot rot: what it measures must
// land in the ledger exactly once. Speed is not asserted.

func TestSettleLandsOnce(t *testing.T) {
	r, err := benchSettle(context.Background(), t.TempDir(), 16, 2, 600, 20*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Settlements != 600 || r.UsageRows != 600 {
		t.Fatalf("%d settlements, %d usage rows in the ledger; want 600 of each", r.Settlements, r.UsageRows)
	}
	if len(r.Unbalanced) > 0 || r.CheckSkipped != "" {
		t.Fatalf("ledger check: unbalanced %v, skipped %q", r.Unbalanced, r.CheckSkipped)
	}
	if r.Charged <= 0 {
		t.Fatalf("charged %d: the bench calls must be priced past the lifeline block", r.Charged)
	}
	if r.GroupCommits < 1 || r.GroupCommits > 600 || r.MeanBatch < 1 {
		t.Fatalf("%d group commits, mean batch %v", r.GroupCommits, r.MeanBatch)
	}
}

func TestCommitTxs(t *testing.T) {
	r, err := benchCommit(context.Background(), t.TempDir(), 16, 5, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Batches != 5 || r.TxsPerSec <= 0 {
		t.Fatalf("%+v, want 5 batches", r)
	}
}

// inProcess is an aigrid api server in this process, metered or not, with
// the bench tenant and the mock as its provider.
type inProcess struct {
	gw    *gateway
	store *sqlite.DB
	meter *meter.Meter
	srv   *httptest.Server
}

func startInProcess(t *testing.T, name, upstream string, metered bool) *inProcess {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, tenants, err := openLedger(ctx, dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.CreateKey(ctx, &aigrid.Key{TenantID: tenants[0].ID, Hint: "bench", Hash: aigrid.HashKey(benchKey)}); err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(func(cfg *aigrid.ProviderConfig) (aigrid.Provider, error) { return openai.New(cfg) }, nil, dispatch.Settings{})
	t.Cleanup(d.Close)
	if err := d.Set(&aigrid.ProviderConfig{Name: "mock", Kind: aigrid.KindOpenAI, BaseURL: upstream,
		Offers: []aigrid.Offer{{Model: "fast", Serves: []string{"chat"}}}}); err != nil {
		t.Fatal(err)
	}
	p := &inProcess{store: store}
	if metered {
		if p.meter, err = meter.New(ctx, store, meter.Settings{Currency: kes, Location: time.UTC, JournalDir: filepath.Join(dir, "journal")}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.meter.Close)
		if _, err := p.meter.TopUp(ctx, tenants[0].ID, openingBalance, "opening", "bench"); err != nil {
			t.Fatal(err)
		}
	}
	p.srv = httptest.NewServer(api.New(api.Config{Store: store, Dispatcher: d, Providers: d, Explainer: d, Meter: p.meter}))
	t.Cleanup(p.srv.Close)
	p.gw = &gateway{name: name, url: p.srv.URL, key: benchKey}
	return p
}

func TestGatewayCompareSettlesEveryResponse(t *testing.T) {
	mock := startMock()
	defer mock.Close()
	metered := startInProcess(t, "metered", mock.URL+"/v1", true)
	unmetered := startInProcess(t, "unmetered", mock.URL+"/v1", false)
	start := time.Now()
	for _, stream := range []bool{false, true} {
		m, u, ratio := compare(metered.gw, unmetered.gw, stream, 4, 2, 40, 20*time.Second)
		for _, r := range []loadResult{m, u} {
			if r.Requests != 80 || r.Errors != 0 || r.RPS <= 0 || r.P50ms <= 0 {
				t.Fatalf("stream %v: %+v; want 80 requests in two rounds, no errors", stream, r)
			}
		}
		if ratio <= 0 {
			t.Fatalf("stream %v: ratio %v", stream, ratio)
		}
	}
	// Two modes, each two rounds of 40 requests after a warm-up of up to 40
	// (bounded by time too).
	if ok := metered.gw.ok.Load(); ok < 160 || ok > 240 || metered.gw.errors.Load() != 0 {
		t.Fatalf("metered: %d complete responses, %d errors; want 160 to 240, and none", ok, metered.gw.errors.Load())
	}

	// Settlements are durable before the response: the ledger has them all.
	metered.srv.Close()
	metered.meter.Close()
	ctx := context.Background()
	to := time.Now().Add(time.Minute)
	c, err := checkLedger(ctx, metered.store, start.Add(-time.Minute), to)
	if err != nil {
		t.Fatal(err)
	}
	if c.UsageRows != metered.gw.ok.Load() || len(c.Unbalanced) > 0 || c.CheckSkipped != "" {
		t.Fatalf("metered ledger: %+v for %d responses", c, metered.gw.ok.Load())
	}
	if c, err := checkLedger(ctx, unmetered.store, start.Add(-time.Minute), to); err != nil || c.UsageRows != 0 {
		t.Fatalf("unmetered ledger: %+v, %v; want no usage", c, err)
	}
}

func TestGridConfig(t *testing.T) {
	// The config the bench gives `aigrid serve` must be one it accepts: a
	// prepaid tenant on the tariff, with the limits and the opening balance.
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "grid.yaml")
	if err := os.WriteFile(path, []byte(gridConfig("http://127.0.0.1:1/v1")), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(dir, "aigrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := file.Apply(ctx, store); err != nil {
		t.Fatal(err)
	}
	tenant, err := store.FindTenantByName(ctx, "bench")
	if err != nil {
		t.Fatal(err)
	}
	acct, err := store.GetAccount(ctx, tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Type != aigrid.Prepaid || acct.Tariff != "public" || acct.Limits != benchLimits {
		t.Fatalf("account %+v", acct)
	}
	balance, err := store.AccountBalance(ctx, aigrid.TenantAccount(tenant.ID), time.Time{})
	if err != nil || balance != 100_000_000_000 {
		t.Fatalf("opening balance %d minor units, %v; want 1e9 KES", balance, err)
	}
}
