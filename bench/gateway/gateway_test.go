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
	"aigrid/internal/wirecount"
	"aigrid/provider/openai"
	"aigrid/sqlite"
)

// BenchmarkStreamPath runs streamed completions through aigrid's whole request
// path in-process (auth, decode, dispatch, the openai provider, SSE out) against
// the mock upstream, and reports the allocations one more streamed chunk costs
// (the difference between a long and a short stream, so that the fixed cost of
// a request, on both sides of both HTTP connections, is not counted per chunk),
// and the network writes aigrid makes to the client for one stream:
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
		Offers: []aigrid.Offer{{Model: "fast", Serves: []string{"chat"}}, {Model: "long", Serves: []string{"chat-long"}}}}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api.New(api.Config{Store: store, Dispatcher: d, Providers: d, Explainer: d}))
	writes := wirecount.New(srv.Listener)
	srv.Listener = writes
	srv.Start()
	defer srv.Close()
	request := func(model string, chunks int) {
		body := []byte(`{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk-bench-0001")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < int64(chunks)*50 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	request("chat", chunks)
	request("chat-long", longChunks)
	var m0, m1, m2 runtime.MemStats
	runtime.ReadMemStats(&m0)
	w0 := writes.Writes.Load()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		request("chat", chunks)
	}
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(writes.Writes.Load()-w0)/float64(b.N), "writes/stream")
	for i := 0; i < b.N; i++ {
		request("chat-long", longChunks)
	}
	runtime.ReadMemStats(&m2)
	short := float64(m1.Mallocs-m0.Mallocs) / float64(b.N)
	long := float64(m2.Mallocs-m1.Mallocs) / float64(b.N)
	b.ReportMetric(short, "allocs/stream")
	b.ReportMetric((long-short)/float64(longChunks-chunks), "allocs/chunk")
}
