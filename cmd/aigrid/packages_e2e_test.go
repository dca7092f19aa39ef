package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
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

// An alert drafted with an ordinary key is published only by an admin key
// (here the operator's, through the admin route), then appears in the
// tenant's feeds, keyed and public.
func TestAlertApprovalThroughTheGrid(t *testing.T) {
	g := startBillingGrid(t)
	const key = "sk-clinic-a-0001"
	expires := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	var draft struct {
		Identifier string `json:"identifier"`
		Status     string `json:"status"`
	}
	r := g.do("POST", "/v1/packages/alerts/alerts", key, map[string]any{"info": []map[string]any{{
		"language": "en", "category": []string{"Health"}, "event": "Cholera outbreak",
		"urgency": "Expected", "severity": "Severe", "certainty": "Likely", "expires": expires,
		"headline": "Cholera outbreak in Kisumu", "instruction": "Boil drinking water.",
		"area": []map[string]any{{"areaDesc": "Kisumu County"}},
	}}}, &draft)
	if r.StatusCode != 201 || draft.Status != "Draft" || draft.Identifier == "" {
		t.Fatalf("draft: %d %+v", r.StatusCode, draft)
	}
	var e apiError
	if r := g.do("POST", "/v1/packages/alerts/alerts/"+draft.Identifier+"/approve", key, nil, &e); r.StatusCode != 403 {
		t.Errorf("approval with an ordinary key: %d %+v", r.StatusCode, e)
	}
	var approved struct{ Status string }
	if r := g.do("POST", "/admin/v1/tenants/clinic-a/packages/alerts/alerts/"+draft.Identifier+"/approve", g.adminKey, nil, &approved); r.StatusCode != 200 || approved.Status != "Actual" {
		t.Fatalf("operator approval: %d %+v", r.StatusCode, approved)
	}
	pub, err := http.Get(g.url + "/public/alerts/clinic-a/feed.atom")
	if err != nil {
		t.Fatal(err)
	}
	pubBody, _ := io.ReadAll(pub.Body)
	pub.Body.Close()
	if pub.StatusCode != 200 || !strings.Contains(string(pubBody), "Cholera outbreak in Kisumu") {
		t.Errorf("public feed: %d %s", pub.StatusCode, pubBody)
	}
	req, _ := http.NewRequest("GET", g.url+"/v1/packages/alerts/feed.atom", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), draft.Identifier) {
		t.Errorf("keyed feed: %d %s", res.StatusCode, body)
	}
}
