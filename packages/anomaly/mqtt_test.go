package anomaly

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aigrid"
	"aigrid/internal/logbuf"
	"aigrid/internal/mqtttest"
)

// senmlMinutes is a SenML pack of values one minute apart from t0.
func senmlMinutes(t0 time.Time, values []float64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `[{"bn":"pump-7:","bt":%d,"n":"pressure","v":%v}`, t0.Unix(), values[0])
	for i, v := range values[1:] {
		fmt.Fprintf(&b, `,{"n":"pressure","t":%d,"v":%v}`, 60*(i+1), v)
	}
	b.WriteString("]")
	return []byte(b.String())
}

// admissions records what a listener's Admit was asked and told.
type admissions struct {
	mu     sync.Mutex
	asked  int
	points []int // what each done was told
	refuse error // refuses every pack while set
}

func (a *admissions) admit(_ context.Context, series string) (func(int), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked++
	if a.refuse != nil {
		return nil, a.refuse
	}
	return func(n int) {
		a.mu.Lock()
		a.points = append(a.points, n)
		a.mu.Unlock()
	}, nil
}

func (a *admissions) told() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.points...)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runListener runs l until the test ends and checks that Run returns.
func runListener(t *testing.T, l *Listener) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			if left := mqtttest.Goroutines("anomaly.(*Listener)", time.Second); left != "" {
				t.Errorf("goroutines of the listener left after Run returned:\n%s", left)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return cancel
}

func TestMQTTListener(t *testing.T) {
	docs := newMemDocs()
	p := NewPackage(docs)
	b := mqtttest.New(t)
	adm := &admissions{}
	l := &Listener{
		Package: p, Broker: "mqtt://sensors:s3cret@" + b.Addr(), ClientID: "grid-1",
		Tenant: tenantA.ID, Prefix: "waterworks/sensors", Results: "waterworks/anomaly", KeepAlive: 2 * time.Second,
		Logger: quiet(), Admit: adm.admit, Backoff: 10 * time.Millisecond,
	}
	cancel := runListener(t, l)

	c := b.Accept(t)
	if c.ClientID != "grid-1" || c.User != "sensors" || c.Password != "s3cret" || !c.CleanSession || c.KeepAlive != 2*time.Second {
		t.Errorf("CONNECT %+v", c)
	}
	if c.Filter != "waterworks/sensors/#" || c.QoS != 1 {
		t.Fatalf("subscribed to %q at QoS %d", c.Filter, c.QoS)
	}
	xs := noise(300, 31)
	xs[299] += 10
	pack := senmlMinutes(start, xs)
	c.Publish(t, 10, "waterworks/sensors/plant-1/pump-7", pack)
	// The result comes before the acknowledgement: it is published while
	// the pack is handled.
	res := c.Next(t)
	var scores Scores
	if res.Type != mqtttest.Publish || res.Topic != "waterworks/anomaly/plant-1.pump-7" || json.Unmarshal(res.Payload, &scores) != nil {
		t.Fatalf("want the result on waterworks/anomaly/plant-1.pump-7, got type %d topic %q", res.Type, res.Topic)
	}
	if res.Flags != 0 {
		t.Errorf("result published with flags %04b, want QoS 0", res.Flags)
	}
	if len(scores.Points) != 300 || !scores.Points[299].Flag || scores.Flagged != 1 {
		t.Errorf("result: %d points, flagged %d", len(scores.Points), scores.Flagged)
	}
	c.WantAck(t, 10)
	// A bad pack and a redelivered one are acknowledged and change nothing;
	// a topic that names no series is not even admitted.
	c.Publish(t, 11, "waterworks/sensors/plant-1/pump-7", []byte(`[{"n":"pressure","v":"high"}]`))
	c.WantAck(t, 11)
	c.Publish(t, 10, "waterworks/sensors/plant-1/pump-7", pack)
	c.WantAck(t, 10)
	c.Publish(t, 12, "waterworks/sensors/bad id", pack)
	c.WantAck(t, 12)
	// Keep-alive: the client pings every second; Next answers the pings
	// that came before the result.
	time.Sleep(1100 * time.Millisecond)
	c.Publish(t, 13, "waterworks/sensors/plant-1/pump-7", senmlMinutes(start.Add(300*time.Minute), []float64{10}))
	if p := c.Next(t); p.Type != mqtttest.Publish {
		t.Fatalf("want a result, got type %d", p.Type)
	}
	c.WantAck(t, 13)
	if c.Pings() == 0 {
		t.Error("no PINGREQ within a keep-alive period")
	}

	// The broker drops the connection; the listener comes back.
	c.Close()
	c = b.Accept(t)
	c.Publish(t, 1, "waterworks/sensors/plant-1/pump-7", senmlMinutes(start.Add(301*time.Minute), []float64{10.5}))
	c.Next(t)
	c.WantAck(t, 1)

	cancel()
	if p := c.Next(t); p.Type != mqtttest.Disconnect {
		t.Errorf("on shutdown: packet type %d, want DISCONNECT", p.Type)
	}
	c.WantClosed(t, 5*time.Second)
	d, err := docs.GetDoc(context.Background(), Name, tenantA.ID, docPrefix+"plant-1.pump-7")
	if err != nil {
		t.Fatal(err)
	}
	var s series
	if err := json.Unmarshal(d.Body, &s); err != nil || s.Detector.Points() != 302 {
		t.Errorf("series after MQTT: %v points, %v", s.Detector.Points(), err)
	}
	if got := fmt.Sprint(adm.told()); got != "[300 0 0 1 1]" {
		t.Errorf("done told %s, want [300 0 0 1 1]", got)
	}
}

// A pack the grid does not admit is acknowledged and dropped, also for a
// quota that renews in hours; a rate limit of a moment is waited out and
// the pack scored after it.
func TestMQTTAdmission(t *testing.T) {
	docs := newMemDocs()
	b := mqtttest.New(t)
	var mu sync.Mutex
	var calls []string
	answers := []error{
		aigrid.Errorf(aigrid.EQuotaExhausted, "The balance is spent."),
		&aigrid.Error{Code: aigrid.ERateLimited, Message: "The day's quota is used.", RetryAfter: 5 * time.Hour},
		&aigrid.Error{Code: aigrid.ERateLimited, Message: "Rate limit reached.", RetryAfter: 50 * time.Millisecond},
		nil,
	}
	var told []int
	l := &Listener{Package: NewPackage(docs), Broker: "mqtt://" + b.Addr(), ClientID: "grid-1", Tenant: tenantA.ID,
		Prefix: "w", Logger: quiet(), Admit: func(ctx context.Context, series string) (func(int), error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, fmt.Sprintf("%s@%d", series, len(calls)))
			err := answers[0]
			if len(answers) > 1 {
				answers = answers[1:]
			}
			if err != nil {
				return nil, err
			}
			return func(n int) {
				mu.Lock()
				told = append(told, n)
				mu.Unlock()
			}, nil
		}}
	runListener(t, l)
	c := b.Accept(t)
	c.Publish(t, 1, "w/pump-7", senmlMinutes(start, []float64{1, 2, 3}))
	c.WantAck(t, 1)
	c.Publish(t, 2, "w/pump-7", senmlMinutes(start, []float64{1, 2, 3}))
	c.WantAck(t, 2)
	if _, err := docs.GetDoc(context.Background(), Name, tenantA.ID, docPrefix+"pump-7"); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Fatalf("a refused pack was saved: %v", err)
	}
	began := time.Now()
	c.Publish(t, 3, "w/pump-7", senmlMinutes(start, []float64{1, 2, 3}))
	c.WantAck(t, 3)
	if waited := time.Since(began); waited < 50*time.Millisecond {
		t.Errorf("acknowledged after %s, before the rate limit's 50ms", waited)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(calls) != "[pump-7@0 pump-7@1 pump-7@2 pump-7@3]" || fmt.Sprint(told) != "[3]" {
		t.Errorf("Admit asked %v, done told %v", calls, told)
	}
}

// The listener keeps trying while the broker is down, with a growing wait,
// comes back when it is up, after a drop and after an outage, and logs one
// warning for each outage rather than one for each attempt.
func TestMQTTReconnect(t *testing.T) {
	b := mqtttest.New(t)
	b.Stop()
	var logs logbuf.Buffer
	l := &Listener{Package: NewPackage(newMemDocs()), Broker: "mqtt://" + b.Addr(), ClientID: "grid-1", Tenant: tenantA.ID,
		Prefix: "w", Backoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	runListener(t, l)
	// Down at start: about 5+10+20+40+40+... ms of waits, halved at worst by the jitter.
	time.Sleep(300 * time.Millisecond)
	b.Start(t)
	c := b.Accept(t)
	c.Publish(t, 6, "w/pump-7", senmlMinutes(start.Add(-time.Minute), []float64{0}))
	c.WantAck(t, 6) // the listener has read the SUBACK, and logged
	warnings, debugs := strings.Count(logs.String(), "level=WARN"), strings.Count(logs.String(), "reconnection failed")
	if attempts := warnings + debugs; attempts < 3 || attempts > 40 || warnings > 1+attempts/10 {
		t.Errorf("%d warnings and %d debug lines in 300ms of outage with a backoff from 5ms to 40ms:\n%s", warnings, debugs, logs.String())
	}
	if !strings.Contains(logs.String(), "MQTT connected again") {
		t.Errorf("the reconnection is not logged:\n%s", logs.String())
	}
	// Dropped: back at once.
	c.Close()
	c = b.Accept(t)
	c.Publish(t, 7, "w/pump-7", senmlMinutes(start, []float64{1}))
	c.WantAck(t, 7)
	// Down again, then up.
	b.Stop()
	time.Sleep(100 * time.Millisecond)
	b.Start(t)
	c = b.Accept(t)
	c.Publish(t, 8, "w/pump-7", senmlMinutes(start.Add(time.Minute), []float64{2}))
	c.WantAck(t, 8)
}

// A sensor that keeps sending bad packs gets one log line a minute, not one a pack.
func TestRefusalsLoggedOnce(t *testing.T) {
	b := mqtttest.New(t)
	var logs logbuf.Buffer
	l := &Listener{Package: NewPackage(newMemDocs()), Broker: "mqtt://" + b.Addr(), ClientID: "grid-1", Tenant: tenantA.ID,
		Prefix: "w", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	runListener(t, l)
	c := b.Accept(t)
	for id := range uint16(5) {
		c.Publish(t, id+1, "w/pump-7", []byte(`[{"n":"pressure","v":"high"}]`))
		c.WantAck(t, id+1)
	}
	if n := strings.Count(logs.String(), "MQTT pack refused"); n != 1 {
		t.Errorf("%d lines for 5 bad packs in a minute:\n%s", n, logs.String())
	}
}

// Each kind of refusal has its own minute: a redelivered pack refused as old
// must not hide, for a minute, that the tenant's readings are being dropped.
func TestRefusalKindsLoggedApart(t *testing.T) {
	b := mqtttest.New(t)
	var logs logbuf.Buffer
	var disabled atomic.Bool
	l := &Listener{Package: NewPackage(newMemDocs()), Broker: "mqtt://" + b.Addr(), ClientID: "grid-1", Tenant: tenantA.ID,
		Prefix: "w", Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Admit: func(context.Context, string) (func(int), error) {
			if disabled.Load() {
				return nil, aigrid.Errorf(aigrid.EForbidden, "The tenant is disabled.")
			}
			return func(int) {}, nil
		}}
	runListener(t, l)
	c := b.Accept(t)
	c.Publish(t, 1, "w/bad id", senmlMinutes(start, []float64{1}))
	c.WantAck(t, 1)
	c.Publish(t, 2, "w/pump-7", []byte(`[{"n":"pressure","v":"high"}]`))
	c.WantAck(t, 2)
	disabled.Store(true)
	c.Publish(t, 3, "w/pump-7", senmlMinutes(start, []float64{1}))
	c.WantAck(t, 3)
	for _, msg := range []string{"MQTT topic names no valid series", "MQTT pack refused", "MQTT pack not admitted"} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("no %q in the log:\n%s", msg, logs.String())
		}
	}
}

func TestRetryDelay(t *testing.T) {
	least := func(n int64) int64 { return 0 }
	most := func(n int64) int64 { return n - 1 }
	for _, c := range []struct {
		n         int
		low, high time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{7, 30 * time.Second, time.Minute},
		{1000, 30 * time.Second, time.Minute},
	} {
		if lo, hi := retryDelay(c.n, time.Second, time.Minute, least), retryDelay(c.n, time.Second, time.Minute, most); lo != c.low || hi != c.high {
			t.Errorf("attempt %d: waits from %s to %s, want %s to %s", c.n, lo, hi, c.low, c.high)
		}
	}
}

func TestListenerConfig(t *testing.T) {
	for _, prefix := range []string{"", "a/#", "a/+/b", "a/"} {
		l := &Listener{Package: NewPackage(newMemDocs()), Broker: "mqtt://127.0.0.1:1", Prefix: prefix}
		if err := l.Run(context.Background()); err == nil {
			t.Errorf("prefix %q accepted", prefix)
		}
	}
}

// FuzzReadPacket: any bytes from a broker are a packet or an error.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{mqttConnack << 4, 2, 0, 0})
	f.Add([]byte{mqttPublish<<4 | 2, 0x80, 0x80, 0x80, 0x80, 1})
	f.Add(append(appendLength([]byte{mqttPublish << 4}, 300), make([]byte, 300)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			typ, _, body, err := readPacket(r)
			if err != nil {
				return
			}
			if typ > 15 || len(body) > maxPacket {
				t.Fatalf("type %d, %d bytes", typ, len(body))
			}
			readString(body)
		}
	})
}
