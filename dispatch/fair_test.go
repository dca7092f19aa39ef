package dispatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aigrid"
)

// busy is a provider that takes a fixed time per call and counts calls by tenant.
type busy struct {
	service time.Duration
	mu      sync.Mutex
	served  map[string]int
	order   []string
	gate    chan struct{} // when set, calls wait for it
}

func (b *busy) Chat(ctx context.Context, offer *aigrid.Offer, req *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	if b.gate != nil {
		<-b.gate
	}
	time.Sleep(b.service)
	b.mu.Lock()
	b.served[req.User]++
	b.order = append(b.order, req.User)
	b.mu.Unlock()
	return &aigrid.ChatResponse{Model: offer.Model, Usage: &aigrid.Usage{PromptTokens: 10, CompletionTokens: 10, TotalTokens: 20}}, nil
}

func busyDispatcher(t *testing.T, b *busy, settings Settings, cfgs ...*aigrid.ProviderConfig) *Dispatcher {
	t.Helper()
	d := New(func(*aigrid.ProviderConfig) (aigrid.Provider, error) { return b, nil }, nil, settings)
	for _, c := range cfgs {
		if err := d.Set(c); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func tenantRequest(name string) *aigrid.ChatRequest {
	r := request()
	r.User = name
	return r
}

// TestFairShares floods one offer from one tenant while three light tenants
// ask too; each light tenant must get its fair share of the capacity, within
// 10%, and the flooder must not starve them. The run is bounded by count.
func TestFairShares(t *testing.T) {
	b := &busy{service: 2 * time.Millisecond, served: map[string]int{}}
	offer := chatOffer("m", "chat")
	offer.MaxConcurrency = 2
	d := busyDispatcher(t, b, Settings{QueueTimeout: time.Minute}, providerCfg("p", "", false, offer))

	// Shares are taken when the total is reached, before the calls still
	// queued then (mostly the flooder's) drain.
	const total = 600
	var done atomic.Int64
	var wg sync.WaitGroup
	var snapshot map[string]int
	worker := func(tenant *aigrid.Tenant) {
		defer wg.Done()
		for done.Load() < total {
			if _, err := d.Chat(context.Background(), call(tenant), tenantRequest(tenant.Name), nil); err != nil {
				t.Error(err)
				return
			}
			if done.Add(1) == total {
				b.mu.Lock()
				snapshot = maps.Clone(b.served)
				b.mu.Unlock()
			}
		}
	}
	tenants := map[string]int{"flooder": 24, "light-1": 2, "light-2": 2, "light-3": 2}
	for name, workers := range tenants {
		tn := &aigrid.Tenant{Name: name, Class: aigrid.ClassStandard}
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go worker(tn)
		}
	}
	wg.Wait()
	sum := 0
	for _, n := range snapshot {
		sum += n
	}
	share := float64(sum) / float64(len(tenants))
	for name := range tenants {
		got := float64(snapshot[name])
		if got < 0.9*share || got > 1.1*share {
			t.Errorf("%s served %v of %d, fair share %.0f ± 10%%", name, got, sum, share)
		}
	}
}

// TestPriorityWeight checks that a priority tenant gets twice a standard one's service when both flood.
func TestPriorityWeight(t *testing.T) {
	b := &busy{service: 2 * time.Millisecond, served: map[string]int{}}
	offer := chatOffer("m", "chat")
	offer.MaxConcurrency = 1
	d := busyDispatcher(t, b, Settings{QueueTimeout: time.Minute}, providerCfg("p", "", false, offer))
	var done atomic.Int64
	var wg sync.WaitGroup
	for _, tn := range []*aigrid.Tenant{{Name: "std", Class: aigrid.ClassStandard}, {Name: "prio", Class: aigrid.ClassPriority}} {
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done.Add(1) <= 300 {
					d.Chat(context.Background(), call(tn), tenantRequest(tn.Name), nil)
				}
			}()
		}
	}
	wg.Wait()
	ratio := float64(b.served["prio"]) / float64(b.served["std"])
	if ratio < 1.7 || ratio > 2.3 {
		t.Errorf("priority/standard service %d/%d = %.2f, want about 2", b.served["prio"], b.served["std"], ratio)
	}
}

// TestEmergencyFirst checks that an emergency call that arrives last is served first.
func TestEmergencyFirst(t *testing.T) {
	b := &busy{served: map[string]int{}, gate: make(chan struct{})}
	offer := chatOffer("m", "chat")
	offer.MaxConcurrency = 1
	d := busyDispatcher(t, b, Settings{QueueTimeout: time.Minute}, providerCfg("p", "", false, offer))
	var wg sync.WaitGroup
	run := func(tn *aigrid.Tenant) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.Chat(context.Background(), call(tn), tenantRequest(tn.Name), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	slots := d.providers["p"].offers[0].slots
	waitQueued := func(n int) {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if inFlight, queued, _ := slots.load(); inFlight == 1 && queued == n {
				return
			}
		}
		t.Fatalf("queue never reached %d", n)
	}
	run(&aigrid.Tenant{Name: "first", Class: aigrid.ClassStandard})
	waitQueued(0)
	for i := 0; i < 3; i++ {
		run(&aigrid.Tenant{Name: fmt.Sprintf("std-%d", i), Class: aigrid.ClassPriority})
		waitQueued(i + 1)
	}
	run(&aigrid.Tenant{Name: "ambulance", Class: aigrid.ClassEmergency, Brownout: true})
	waitQueued(4)
	close(b.gate)
	wg.Wait()
	if b.order[0] != "first" || b.order[1] != "ambulance" {
		t.Errorf("served in order %v; the emergency call should come right after the one in flight", b.order)
	}
}

func TestMeritOrder(t *testing.T) {
	b := &busy{served: map[string]int{}}
	cheap := aigrid.Offer{Model: "cheap", Serves: []string{"chat"}, Price: aigrid.Price{Input: 100_000, Output: 200_000}, MaxConcurrency: 1}
	dear := aigrid.Offer{Model: "dear", Serves: []string{"chat"}, Price: aigrid.Price{Input: 1_000_000, Output: 2_000_000}}
	d := busyDispatcher(t, b, Settings{}, providerCfg("z-cheap", "", false, cheap), providerCfg("a-dear", "", false, dear))
	c := call(anyone)
	if resp, err := d.Chat(context.Background(), c, request(), nil); err != nil || resp.Model != "cheap" {
		t.Fatalf("first choice: %v %v", resp, err)
	}
	// With the cheap offer full, the next in merit order serves at once.
	slots := d.providers["z-cheap"].offers[0].slots
	slots.tryAcquire("other")
	if resp, err := d.Chat(context.Background(), call(anyone), request(), nil); err != nil || resp.Model != "dear" {
		t.Errorf("cheap full: %v %v", resp, err)
	}
	ex, err := d.Explain("chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Offers) != 2 || ex.Offers[0].Model != "cheap" || ex.Offers[0].Rank != 1 || ex.Offers[0].Reason != "at capacity: calls queue for it" ||
		ex.Offers[1].Rank != 2 || ex.Offers[0].ExpectedCost >= ex.Offers[1].ExpectedCost || ex.ExpectedOutput != 10 {
		t.Errorf("explanation %+v", ex)
	}
	slots.release("other")

	// Equal prices: the less loaded offer first.
	twin := cheap
	twin.Model, twin.MaxConcurrency = "twin", 4
	d = busyDispatcher(t, b, Settings{}, providerCfg("a", "", false, cheap), providerCfg("b", "", false, twin))
	d.providers["a"].offers[0].slots.tryAcquire("other")
	order := d.meritOrder("chat", need{prompt: 10}, d.services["chat"])
	if order[0].offer.offer.Model != "twin" {
		t.Errorf("tie broken by %s, want the less loaded twin", order[0].offer.offer.Model)
	}
}

func TestBrownout(t *testing.T) {
	b := &busy{served: map[string]int{}}
	big := aigrid.Offer{Model: "big", Serves: []string{"chat"}, MaxConcurrency: 1}
	small := aigrid.Offer{Model: "small", Serves: []string{"chat-small"}}
	d := busyDispatcher(t, b, Settings{QueueTimeout: 100 * time.Millisecond}, providerCfg("p", "", false, big, small))
	d.SetServiceModel(&aigrid.ServiceModel{Name: "chat", Fallback: "chat-small"})
	d.providers["p"].offers[0].slots.tryAcquire("other") // chat is saturated

	c := call(&aigrid.Tenant{Name: "school", Brownout: true})
	resp, err := d.Chat(context.Background(), c, request(), nil)
	if err != nil || resp.Model != "small" || c.BrownoutFrom != "chat" || c.Service != "chat-small" {
		t.Errorf("brownout: %v %v %+v", resp, err, c)
	}
	for _, tn := range []*aigrid.Tenant{{Name: "clinic"}, {Name: "ambulance", Class: aigrid.ClassEmergency, Brownout: true}} {
		c := call(tn)
		_, err := d.Chat(context.Background(), c, request(), nil)
		var e *aigrid.Error
		if !errors.As(err, &e) || e.Code != aigrid.EUnavailable || c.BrownoutFrom != "" {
			t.Errorf("%s must wait, not be browned out: %v %+v", tn.Name, err, c)
		}
	}
}

type probed struct {
	busy
	fail atomic.Bool
}

func (p *probed) Probe(ctx context.Context) error {
	if p.fail.Load() {
		return errors.New("down")
	}
	return nil
}

func TestActiveProbes(t *testing.T) {
	p := &probed{busy: busy{served: map[string]int{}}}
	p.fail.Store(true)
	cfg := providerCfg("p", "", false, chatOffer("m", "chat"))
	cfg.ProbeInterval = aigrid.Duration(10 * time.Millisecond)
	d := New(func(*aigrid.ProviderConfig) (aigrid.Provider, error) { return p, nil }, nil, Settings{})
	if err := d.Set(cfg); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	health := &d.providers["p"].offers[0].health
	eventually(t, func() bool { return health.String() == "open" })
	if _, err := d.Chat(context.Background(), call(anyone), request(), nil); aigrid.ErrorCode(err) != aigrid.EUnavailable {
		t.Errorf("down provider: %v", err)
	}
	p.fail.Store(false)
	eventually(t, func() bool { return health.String() == "half-open" })
	if _, err := d.Chat(context.Background(), call(anyone), request(), nil); err != nil || health.String() != "closed" {
		t.Errorf("after recovery: %v, %s", err, health.String())
	}
}

// eventually waits, up to 5 s, for cond.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached in 5s")
}

// The merit order shown for a tenant says which of its rules keeps each
// offer out: it said the tenant's whole policy, so that an offer kept out by
// residency alone read as if it retained data too.
func TestExplainNamesTheRuleBroken(t *testing.T) {
	b := &busy{served: map[string]int{}}
	d := busyDispatcher(t, b, Settings{},
		providerCfg("ke", "KE", true, chatOffer("a", "chat")),
		providerCfg("us", "US", false, chatOffer("b", "chat")),
		providerCfg("none", "", false, chatOffer("c", "chat")),
		providerCfg("tz", "TZ", false, chatOffer("d", "chat")))
	ex, err := d.Explain("chat", &aigrid.Tenant{Name: "clinic", Residency: []string{"KE", "TZ"}, NoRetention: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ke":   "outside the tenant's data policy: retains data, and the tenant has no_retention",
		"us":   "outside the tenant's data policy: jurisdiction US, not in the tenant's residency KE, TZ",
		"none": "outside the tenant's data policy: no jurisdiction, not in the tenant's residency KE, TZ",
		"tz":   "in merit order",
	}
	for _, o := range ex.Offers {
		if o.Reason != want[o.Provider] {
			t.Errorf("%s: %q, want %q", o.Provider, o.Reason, want[o.Provider])
		}
	}
}
