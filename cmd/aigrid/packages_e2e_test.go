package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The packages are served to tenant keys, metered, and discoverable.
func TestPackagesThroughTheGrid(t *testing.T) {
	g := startBillingGrid(t)
	const key = "sk-clinic-a-0001"
	var list struct {
		Data []struct {
			ID        string   `json:"id"`
			Endpoints []string `json:"endpoints"`
		}
	}
	g.do("GET", "/v1/packages", key, nil, &list)
	var names []string
	for _, p := range list.Data {
		names = append(names, p.ID)
	}
	if strings.Join(names, ",") != "alerts,anomaly,forecast" {
		t.Fatalf("packages %v", names)
	}

	series := []float64{}
	for i := range 48 {
		series = append(series, float64(10+i%12))
	}
	var fc map[string]any
	if r := g.do("POST", "/v1/packages/forecast", key, map[string]any{"series": series, "horizon": 6, "season": 12}, &fc); r.StatusCode != 200 {
		t.Fatalf("forecast: %d %v", r.StatusCode, fc)
	}
	var bad apiError
	if r := g.do("POST", "/v1/packages/forecast", key, map[string]any{"series": []float64{}, "horizon": 6}, &bad); r.StatusCode != 400 || bad.Error.Message == "" {
		t.Errorf("empty series: %d %+v", r.StatusCode, bad)
	}
	var scored map[string]any
	if r := g.do("POST", "/v1/packages/anomaly/series/pump-7", key, map[string]any{"points": []map[string]any{{"timestamp": "2026-11-30T10:00:00Z", "value": 1.5}}}, &scored); r.StatusCode != 200 {
		t.Errorf("anomaly: %d %v", r.StatusCode, scored)
	}
	if r := g.do("GET", "/v1/packages/forecast", "", nil, nil); r.StatusCode != 401 {
		t.Errorf("no key: %d", r.StatusCode)
	}

	// The package calls are in the tenant's usage, by package.
	var page struct {
		Data []struct {
			Service      string `json:"service_model"`
			PromptTokens int    `json:"prompt_tokens"`
		} `json:"data"`
	}
	g.do("GET", "/v1/usage", key, nil, &page)
	units := map[string]int{}
	for _, u := range page.Data {
		units[u.Service] += u.PromptTokens
	}
	if units["package:forecast"] == 0 || units["package:anomaly"] != 1 {
		t.Errorf("package usage %v", units)
	}

	// The alert feed is public for aggregators.
	res, err := http.Get(g.url + "/public/alerts/clinic-a/feed.atom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "<feed") {
		t.Errorf("public feed: %d %s", res.StatusCode, body)
	}
}
