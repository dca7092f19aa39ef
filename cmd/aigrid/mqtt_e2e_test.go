package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"aigrid"
	"aigrid/internal/mqtttest"
	"aigrid/packages/anomaly"
)

const mqttConfig = `
currency: KES
tariffs:
  - name: public
    blocks:
      - {input: 20000, output: 60000}
tenants:
  - name: water-utility
    keys: [sk-water-0001]
    tariff: public
    account: {type: prepaid, balance: 10}
  - name: broke
    keys: [sk-broke-00001]
    tariff: public
    account: {type: prepaid}
  - name: closed
    disabled: true
packages:
  anomaly:
    mqtt:
      - broker: mqtt://grid:s3cret@BROKER
        tenant: water-utility
        prefix: sensors/plant-1
        results: results/plant-1
        client_id: aigrid-plant-1
      - {broker: mqtt://BROKER, tenant: broke, prefix: sensors/broke}
      - {broker: mqtt://BROKER, tenant: closed, prefix: sensors/closed}
`

// senmlPack is a SenML pack of n pressure readings a minute apart from t0,
// the last one far off the others.
func senmlPack(t0 time.Time, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `[{"bn":"urn:dev:pump-7:","bt":%d,"bu":"bar","n":"pressure","v":4}`, t0.Unix())
	for i := 1; i < n; i++ {
		v := 4 + 0.01*float64(i%7)
		if i == n-1 {
			v = 9
		}
		fmt.Fprintf(&b, `,{"n":"pressure","t":%d,"v":%g}`, 60*i, v)
	}
	return []byte(b.String() + "]")
}

// Sensors publish SenML to a broker; aigrid serve, configured to subscribe,
// scores the packs, publishes the scores back, saves the series and meters
// the points as the tenant's usage, as a POST would. Packs of a tenant with
// nothing left, or disabled, are dropped. The listener comes back after the
// broker drops it, and shutdown disconnects and waits for it.
func TestMQTTThroughTheGrid(t *testing.T) {
	b := mqtttest.New(t)
	g := startGrid(t, strings.ReplaceAll(mqttConfig, "BROKER", b.Addr()))
	conns := map[string]*mqtttest.Conn{}
	for range 3 {
		c := b.Accept(t)
		conns[c.Filter] = c
	}
	water, broke, closed := conns["sensors/plant-1/#"], conns["sensors/broke/#"], conns["sensors/closed/#"]
	if water == nil || broke == nil || closed == nil {
		t.Fatalf("subscriptions %v", conns)
	}
	if water.ClientID != "aigrid-plant-1" || water.User != "grid" || water.Password != "s3cret" || water.QoS != 1 {
		t.Errorf("CONNECT of the first listener: %+v", water)
	}
	if broke.ClientID == closed.ClientID || !strings.HasPrefix(broke.ClientID, "aigrid-broke-") {
		t.Errorf("default client ids %q and %q", broke.ClientID, closed.ClientID)
	}

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	water.Publish(t, 1, "sensors/plant-1/pump-7", senmlPack(t0, 200))
	res := water.Next(t)
	var scores anomaly.Scores
	if res.Type != mqtttest.Publish || res.Topic != "results/plant-1/pump-7" || json.Unmarshal(res.Payload, &scores) != nil {
		t.Fatalf("want the scores on results/plant-1/pump-7, got packet type %d on %q", res.Type, res.Topic)
	}
	if len(scores.Points) != 200 || scores.Series != "pump-7" || scores.Summary.Unit != "bar" || !scores.Points[199].Flag {
		t.Errorf("scores: %d points of %q in %q, last flagged %v", len(scores.Points), scores.Series, scores.Summary.Unit, scores.Points[199].Flag)
	}
	water.WantAck(t, 1)

	// The series is the tenant's, as if posted.
	var summary struct {
		Points int `json:"points"`
		Flags  int `json:"flags"`
	}
	if r := g.do("GET", "/v1/packages/anomaly/series/pump-7", "sk-water-0001", nil, &summary); r.StatusCode != 200 || summary.Points != 200 || summary.Flags != 1 {
		t.Errorf("series: %d %+v", r.StatusCode, summary)
	}
	// A post to the same series and the MQTT pack are metered alike: one
	// input token a point, under the service package:anomaly.
	post := map[string]any{"points": []map[string]any{{"timestamp": t0.Add(200 * time.Minute).Unix(), "value": 4.01}}}
	if r := g.do("POST", "/v1/packages/anomaly/series/pump-7", "sk-water-0001", post, nil); r.StatusCode != 200 {
		t.Fatalf("post: %d", r.StatusCode)
	}
	var page struct {
		Data []struct {
			ID           string `json:"id"`
			Service      string `json:"service_model"`
			PromptTokens int    `json:"prompt_tokens"`
			Charge       struct {
				Total int64 `json:"total"`
			} `json:"charge"`
		} `json:"data"`
	}
	g.do("GET", "/v1/usage", "sk-water-0001", nil, &page)
	if len(page.Data) != 2 {
		t.Fatalf("usage: %+v", page.Data)
	}
	for i, want := range []int{200, 1} {
		if u := page.Data[i]; u.Service != "package:anomaly" || u.PromptTokens != want || u.Charge.Total <= 0 {
			t.Errorf("usage %d: %+v, want %d points of package:anomaly, charged", i, u, want)
		}
	}
	if !strings.HasPrefix(page.Data[0].ID, "mqtt_") {
		t.Errorf("the MQTT call's id %q", page.Data[0].ID)
	}

	// A prepaid tenant with nothing left, and a disabled one: the packs are
	// acknowledged and dropped, nothing saved, nothing metered.
	broke.Publish(t, 1, "sensors/broke/pump-1", senmlPack(t0, 10))
	broke.WantAck(t, 1)
	closed.Publish(t, 1, "sensors/closed/pump-1", senmlPack(t0, 10))
	closed.WantAck(t, 1)
	for _, name := range []string{"broke", "closed"} {
		tn, err := g.main.store.FindTenantByName(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.main.store.GetDoc(context.Background(), anomaly.Name, tn.ID, "series/pump-1"); aigrid.ErrorCode(err) != aigrid.ENotFound {
			t.Errorf("%s: a dropped pack was saved (%v)", name, err)
		}
	}
	var none struct{ Data []any }
	if g.do("GET", "/v1/usage", "sk-broke-00001", nil, &none); len(none.Data) != 0 {
		t.Errorf("the broke tenant's usage: %v", none.Data)
	}
	logs := g.logs.String()
	if !strings.Contains(logs, `"tenant":"broke"`) || !strings.Contains(logs, "The tenant \\\"closed\\\" is disabled.") {
		t.Errorf("the dropped packs are not logged:\n%s", logs)
	}

	// The broker drops the first listener: it comes back.
	water.Close()
	water = b.Accept(t)
	water.Publish(t, 2, "sensors/plant-1/pump-7", senmlPack(t0.Add(300*time.Minute), 2))
	if p := water.Next(t); p.Type != mqtttest.Publish {
		t.Fatalf("after reconnecting: packet type %d, want the scores", p.Type)
	}
	water.WantAck(t, 2)

	// Shutdown disconnects every listener before Close returns.
	if err := g.main.Close(); err != nil {
		t.Fatal(err)
	}
	g.main.http = nil // closed already
	if left := mqtttest.Goroutines("anomaly.(*Listener)", time.Second); left != "" {
		t.Errorf("listeners left running after Close:\n%s", left)
	}
	for _, c := range []*mqtttest.Conn{water, broke, closed} {
		if p := c.Next(t); p.Type != mqtttest.Disconnect {
			t.Errorf("%s at shutdown: packet type %d, want DISCONNECT", c.ClientID, p.Type)
		}
		c.WantClosed(t, 5*time.Second)
	}
}
