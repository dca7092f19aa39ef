package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"

	"aigrid"
	"aigrid/api"
	"aigrid/dispatch"
	"aigrid/provider/openai"
	"aigrid/sqlite"
)

// BenchmarkStreamPath runs streamed completions through aigrid's whole request
// path in-process (auth, decode, dispatch, the openai provider, SSE out) against
// the mock upstream, and reports allocations per streamed chunk:
//
//	go test -run X -bench StreamPath -benchmem ./bench/gateway
func BenchmarkStreamPath(b *testing.B) {
	const chunks = 32
	mock, err := startMock(chunks)
	if err != nil {
		b.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(b.TempDir(), "aigrid.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	tenant := &aigrid.Tenant{Name: "bench"}
	store.CreateTenant(ctx, tenant)
	store.CreateKey(ctx, &aigrid.Key{TenantID: tenant.ID, Hint: "x", Hash: aigrid.HashKey("sk-bench-0001")})
	d := dispatch.New(func(cfg *aigrid.ProviderConfig) (aigrid.Provider, error) { return openai.New(cfg) }, nil, dispatch.Settings{})
	defer d.Close()
	if err := d.Set(&aigrid.ProviderConfig{Name: "mock", Kind: aigrid.KindOpenAI, BaseURL: mock + "/v1",
		Offers: []aigrid.Offer{{Model: "fast", Serves: []string{"chat"}}}}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Store: store, Dispatcher: d, Providers: d, Explainer: d}))
	defer srv.Close()
	body := []byte(`{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	do := func() {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-bench-0001")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < chunks*50 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	do()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		do()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/(chunks+3), "allocs/chunk")
}
