package dispatch

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"aigrid"
)

// scripted is a provider whose answer each test decides.
type scripted struct {
	name  string
	chat  func(ctx context.Context, emit func(*aigrid.ChatChunk) error) error
	mu    sync.Mutex
	calls int
}

func (p *scripted) Chat(ctx context.Context, offer *aigrid.Offer, req *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	if err := p.chat(ctx, emit); err != nil {
		return nil, err
	}
	return &aigrid.ChatResponse{Model: offer.Model, Usage: &aigrid.Usage{TotalTokens: 1}}, nil
}

func ok(ctx context.Context, emit func(*aigrid.ChatChunk) error) error { return nil }

func failing(code string) func(context.Context, func(*aigrid.ChatChunk) error) error {
	return func(context.Context, func(*aigrid.ChatChunk) error) error {
		return aigrid.Errorf(code, "scripted %s", code)
	}
}

func newDispatcher(t *testing.T, providers map[string]*scripted, cfgs ...*aigrid.ProviderConfig) *Dispatcher {
	t.Helper()
	d := New(func(cfg *aigrid.ProviderConfig) (aigrid.Provider, error) { return providers[cfg.Name], nil }, nil, Settings{QueueTimeout: 200 * time.Millisecond})
	for _, c := range cfgs {
		if err := d.Set(c); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func providerCfg(name, jurisdiction string, retains bool, offers ...aigrid.Offer) *aigrid.ProviderConfig {
	return &aigrid.ProviderConfig{Name: name, Kind: aigrid.KindOpenAI, BaseURL: "http://127.0.0.1:1/v1", Jurisdiction: jurisdiction, RetainsData: retains, Offers: offers}
}

func chatOffer(model string, serves ...string) aigrid.Offer {
	return aigrid.Offer{Model: model, Serves: serves}
}

func request() *aigrid.ChatRequest {
	return &aigrid.ChatRequest{Model: "chat", Messages: []aigrid.Message{{Role: "user", Content: aigrid.TextContent("hi")}}}
}

func call(t *aigrid.Tenant) *aigrid.Call {
	return &aigrid.Call{ID: "req_1", Tenant: t, Service: "chat"}
}

var anyone = &aigrid.Tenant{Name: "a", Class: aigrid.ClassStandard}

func TestFailoverBeforeFirstByte(t *testing.T) {
	a := &scripted{name: "a", chat: failing(aigrid.EUpstream)}
	b := &scripted{name: "b", chat: ok}
	d := newDispatcher(t, map[string]*scripted{"a": a, "b": b},
		providerCfg("a", "KE", false, chatOffer("m1", "chat")), providerCfg("b", "KE", false, chatOffer("m2", "chat")))
	c := call(anyone)
	resp, err := d.Chat(context.Background(), c, request(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "m2" || c.Provider != "b" || c.Attempts != 2 {
		t.Errorf("served by %s/%s after %d attempts", c.Provider, resp.Model, c.Attempts)
	}
}

func TestNoFailoverAfterOutput(t *testing.T) {
	a := &scripted{chat: func(ctx context.Context, emit func(*aigrid.ChatChunk) error) error {
		emit(&aigrid.ChatChunk{})
		return aigrid.Errorf(aigrid.EUpstream, "dropped")
	}}
	b := &scripted{chat: ok}
	d := newDispatcher(t, map[string]*scripted{"a": a, "b": b},
		providerCfg("a", "", false, chatOffer("m1", "chat")), providerCfg("b", "", false, chatOffer("m2", "chat")))
	_, err := d.Chat(context.Background(), call(anyone), request(), func(*aigrid.ChatChunk) error { return nil })
	if aigrid.ErrorCode(err) != aigrid.EUpstream || b.calls != 0 {
		t.Errorf("got %v; second provider called %d times", err, b.calls)
	}
}

func TestNoFailoverOnClientErrors(t *testing.T) {
	a := &scripted{chat: failing(aigrid.EInvalid)}
	b := &scripted{chat: ok}
	d := newDispatcher(t, map[string]*scripted{"a": a, "b": b},
		providerCfg("a", "", false, chatOffer("m1", "chat")), providerCfg("b", "", false, chatOffer("m2", "chat")))
	if _, err := d.Chat(context.Background(), call(anyone), request(), nil); aigrid.ErrorCode(err) != aigrid.EInvalid || b.calls != 0 {
		t.Errorf("got %v; second provider called %d times", err, b.calls)
	}
}

func TestPolicyAndCapabilities(t *testing.T) {
	ps := map[string]*scripted{"ke": {chat: ok}, "us": {chat: ok}}
	d := newDispatcher(t, ps,
		providerCfg("ke", "KE", true, chatOffer("m1", "chat")),
		providerCfg("us", "US", false, chatOffer("m2", "chat"), aigrid.Offer{Model: "m3", Serves: []string{"vision"}, Capabilities: []string{"chat", "vision"}, ContextLength: 100}))

	kenyan := &aigrid.Tenant{Name: "k", Residency: []string{"KE"}}
	c := call(kenyan)
	if _, err := d.Chat(context.Background(), c, request(), nil); err != nil || c.Provider != "ke" {
		t.Errorf("residency KE served by %q: %v", c.Provider, err)
	}
	strict := &aigrid.Tenant{Name: "s", Residency: []string{"KE"}, NoRetention: true}
	if _, err := d.Chat(context.Background(), call(strict), request(), nil); aigrid.ErrorCode(err) != aigrid.EForbidden {
		t.Errorf("no offer within policy: %v", err)
	}
	c = call(&aigrid.Tenant{Name: "n", NoRetention: true})
	if _, err := d.Chat(context.Background(), c, request(), nil); err != nil || c.Provider != "us" {
		t.Errorf("no retention served by %q: %v", c.Provider, err)
	}
	if got := d.Models(kenyan); len(got) != 1 || got[0] != "chat" {
		t.Errorf("models for KE: %v", got)
	}

	unknown := call(anyone)
	unknown.Service = "nope"
	if _, err := d.Chat(context.Background(), unknown, request(), nil); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("unknown model: %v", err)
	}
	tools := request()
	tools.Tools = []aigrid.Tool{{Type: "function", Function: aigrid.FunctionDecl{Name: "f"}}}
	vision := call(anyone)
	vision.Service = "vision"
	// The error names the parameter that asks for what no offer has.
	var e *aigrid.Error
	if _, err := d.Chat(context.Background(), vision, tools, nil); !errors.As(err, &e) || e.Code != aigrid.EInvalid || e.Param != "tools" {
		t.Errorf("tools to an offer without tools: %v", err)
	}
	asJSON := request()
	asJSON.ResponseFormat = &aigrid.ResponseFormat{Type: "json_object"}
	if _, err := d.Chat(context.Background(), vision, asJSON, nil); !errors.As(err, &e) || e.Param != "response_format" {
		t.Errorf("JSON from an offer without json: %v", err)
	}
	long := request()
	max := 200
	long.MaxTokens = &max
	if _, err := d.Chat(context.Background(), vision, long, nil); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Errorf("longer than the context: %v", err)
	}
	if _, err := d.Embed(context.Background(), call(anyone), &aigrid.EmbeddingRequest{Model: "chat"}); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Errorf("embeddings from a chat offer: %v", err)
	}
}

func TestBreaker(t *testing.T) {
	a := &scripted{chat: failing(aigrid.EUpstream)}
	d := newDispatcher(t, map[string]*scripted{"a": a}, providerCfg("a", "", false, chatOffer("m1", "chat")))
	for i := 0; i < breakerThreshold; i++ {
		d.Chat(context.Background(), call(anyone), request(), nil)
	}
	_, err := d.Chat(context.Background(), call(anyone), request(), nil)
	var e *aigrid.Error
	if !errors.As(err, &e) || e.Code != aigrid.EUnavailable || e.RetryAfter != breakerCooldown || a.calls != breakerThreshold {
		t.Errorf("open breaker: %v after %d calls", err, a.calls)
	}
	// After the cooldown one trial call goes through; its success closes the breaker.
	b := &d.providers["a"].offers[0].health
	b.mu.Lock()
	b.openUntil = time.Now().Add(-time.Second)
	b.mu.Unlock()
	if !b.allow(time.Now()) || b.allow(time.Now()) {
		t.Error("a half-open breaker must let exactly one trial through")
	}
	b.cancelTrial()
	a.chat = ok
	if _, err := d.Chat(context.Background(), call(anyone), request(), nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != "closed" {
		t.Errorf("after a successful trial: %s", b)
	}
	// A failed trial opens it again at once.
	b.fail(time.Now())
	b.fail(time.Now())
	b.fail(time.Now())
	b.probed(true, time.Now())
	if b.String() != "half-open" {
		t.Errorf("a good probe should half-open an open breaker: %s", b)
	}
	b.allow(time.Now())
	b.fail(time.Now())
	if b.String() != "open" {
		t.Errorf("after a failed trial: %s", b)
	}
}

func TestQueueTimeout(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	a := &scripted{chat: func(ctx context.Context, emit func(*aigrid.ChatChunk) error) error {
		started <- struct{}{}
		<-release
		return nil
	}}
	offer := chatOffer("m1", "chat")
	offer.MaxConcurrency = 2
	d := newDispatcher(t, map[string]*scripted{"a": a}, providerCfg("a", "", false, offer))
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Chat(context.Background(), call(anyone), request(), nil)
		}()
	}
	<-started
	<-started
	_, err := d.Chat(context.Background(), call(anyone), request(), nil)
	var e *aigrid.Error
	if !errors.As(err, &e) || e.Code != aigrid.EUnavailable || e.RetryAfter != time.Second || !strings.Contains(e.Message, "stayed at capacity") {
		t.Errorf("third call at capacity 2: %v", err)
	}
	if _, queued, _ := d.providers["a"].offers[0].slots.load(); queued != 0 {
		t.Errorf("%d calls left in the queue", queued)
	}
	close(release)
	wg.Wait()
	if _, err := d.Chat(context.Background(), call(anyone), request(), nil); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func TestRemove(t *testing.T) {
	d := newDispatcher(t, map[string]*scripted{"a": {chat: ok}}, providerCfg("a", "", false, chatOffer("m1", "chat")))
	d.Remove("a")
	if _, err := d.Chat(context.Background(), call(anyone), request(), nil); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Errorf("after remove: %v", err)
	}
}

// A provider that is full (it says when to come back) is failed over but
// not counted as failing: its breaker stays closed.
func TestFullIsNotBroken(t *testing.T) {
	full := func(context.Context, func(*aigrid.ChatChunk) error) error {
		return &aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: 2 * time.Second, Message: "the engine is full"}
	}
	a := &scripted{chat: full}
	b := &scripted{chat: ok}
	d := newDispatcher(t, map[string]*scripted{"a": a, "b": b},
		providerCfg("a", "", false, chatOffer("m1", "chat")), providerCfg("b", "", false, chatOffer("m2", "chat")))
	for range 2 * breakerThreshold {
		c := call(anyone)
		if _, err := d.Chat(context.Background(), c, request(), nil); err != nil || c.Provider != "b" {
			t.Fatalf("served by %q: %v", c.Provider, err)
		}
	}
	if h := &d.providers["a"].offers[0].health; h.String() != "closed" {
		t.Errorf("a full provider's breaker is %s", h)
	}
	// Alone, a full provider's answer reaches the client as it is: 503 with Retry-After.
	d2 := newDispatcher(t, map[string]*scripted{"a": a}, providerCfg("a", "", false, chatOffer("m1", "chat")))
	_, err := d2.Chat(context.Background(), call(anyone), request(), nil)
	var e *aigrid.Error
	if !errors.As(err, &e) || e.Code != aigrid.EUnavailable || e.RetryAfter != 2*time.Second {
		t.Errorf("alone: %v", err)
	}
}
