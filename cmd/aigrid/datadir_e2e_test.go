package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"aigrid/internal/upstreamtest"
)

// startAndStop starts a server on the data directory with the config text,
// stops it at once if it started, and returns why it did not.
func startAndStop(t *testing.T, data, config string) error {
	t.Helper()
	m := NewMain()
	m.DataDir, m.Listen, m.Grace, m.Stdout = data, "127.0.0.1:0", time.Second, io.Discard
	m.Logger = slog.New(slog.DiscardHandler)
	m.ConfigPath = filepath.Join(t.TempDir(), "grid.yaml")
	if err := os.WriteFile(m.ConfigPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background(), "", io.Discard)
	if err == nil {
		m.Close()
	}
	return err
}

// billingGridWithACall starts the billing grid on a data directory of its
// own and makes one call of clinic-a's, for the data-directory tests; it
// returns the grid, its directory and its config text.
func billingGridWithACall(t *testing.T) (*grid, string, string) {
	t.Helper()
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"small-chat": {}})
	config := strings.Replace(billingConfig, "UPSTREAM", up.URL, 1)
	data := filepath.Join(t.TempDir(), "data")
	g := startGridIn(t, data, config)
	if r := g.do("POST", "/v1/chat/completions", "sk-clinic-a-0001", chatBody("one two three", false), nil); r.StatusCode != 200 {
		t.Fatalf("chat: %d", r.StatusCode)
	}
	return g, data, config
}

// One server at a time serves from a data directory: a second start is
// refused before it reads or writes anything, naming the holder, and the
// first serves on with its journal whole; once it stops, a start succeeds.
func TestOneServerPerDataDir(t *testing.T) {
	g, data, config := billingGridWithACall(t)
	const key = "sk-clinic-a-0001"
	err := startAndStop(t, data, config)
	if err == nil || !strings.Contains(err.Error(), "the data directory "+data+" is in use by process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("a second server on the same data directory: %v", err)
	}
	segs, _ := filepath.Glob(filepath.Join(data, "journal", "*.journal"))
	if len(segs) != 1 {
		t.Errorf("the first server's journal after the refused start: %v", segs)
	}
	var page usagePage
	if r := g.do("POST", "/v1/chat/completions", key, chatBody("four five", true), nil); r.StatusCode != 200 {
		t.Errorf("the first server after the refused start: %d", r.StatusCode)
	}
	g.do("GET", "/v1/usage", key, nil, &page)
	if page.Totals.Calls != 2 {
		t.Errorf("%d calls in the first server's usage, want 2", page.Totals.Calls)
	}
	g.main.Close()
	if err := startAndStop(t, data, config); err != nil {
		t.Fatalf("a start after the first stopped: %v", err)
	}
}

// The currency and time zone of the first start are kept: a restart without
// the file serves in them (it refused to start, its ledger being in KES, and
// would have counted months in UTC), and a file that names another currency
// is refused.
func TestCurrencyAndZoneKept(t *testing.T) {
	g, data, _ := billingGridWithACall(t)
	const key = "sk-clinic-a-0001"
	g.main.Close()

	g2 := startGridIn(t, data, "")
	var b balance
	g2.do("GET", "/v1/balance", key, nil, &b)
	var page struct {
		Data []struct{ Created string }
	}
	g2.do("GET", "/v1/usage", key, nil, &page)
	if b.Currency != "KES" || len(page.Data) != 1 || !strings.HasSuffix(page.Data[0].Created, "+03:00") {
		t.Errorf("restarted without the file: balance in %q, usage %+v; want KES and Africa/Nairobi's +03:00", b.Currency, page.Data)
	}
	g2.main.Close()

	err := startAndStop(t, data, "currency: USD\n")
	if err == nil || !strings.Contains(err.Error(), `kept in "KES", and the configuration says "USD"`) {
		t.Errorf("a file naming USD on a KES ledger: %v", err)
	}
}
