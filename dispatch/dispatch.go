// Package dispatch chooses the offer that serves each call, as a grid
// operator dispatches power plants: among the offers of the requested service
// model that can serve the request, that the tenant's policy allows, and that
// are healthy, the cheapest with a free slot (merit order). When every offer is
// full, calls wait in fair queues (emergency first, then by virtual token
// counter), or are browned out to a smaller fallback model. A call that fails
// before its first byte reaches the client is retried on the next offer.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aigrid"
)

// Factory makes a live provider from its configuration.
type Factory func(cfg *aigrid.ProviderConfig) (aigrid.Provider, error)

// Settings tune dispatch; zero fields take the defaults.
type Settings struct {
	// MaxAttempts bounds how many offers one call tries (default 3).
	MaxAttempts int
	// Deadline bounds the time from a call's arrival to its first byte, over
	// queueing and failover together (default 2m).
	Deadline time.Duration
	// QueueTimeout bounds the wait for a slot (default 30s).
	QueueTimeout time.Duration
	// MaxQueue bounds the calls waiting for one offer (default 1024).
	MaxQueue int
}

func (s Settings) withDefaults() Settings {
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = 3
	}
	if s.Deadline <= 0 {
		s.Deadline = 2 * time.Minute
	}
	if s.QueueTimeout <= 0 {
		s.QueueTimeout = 30 * time.Second
	}
	if s.MaxQueue <= 0 {
		s.MaxQueue = 1024
	}
	return s
}

// Dispatcher routes calls to offers. It is safe for concurrent use; the set of
// providers is swapped as a whole when the configuration changes, so the
// request path takes only a read lock, and then per-offer locks.
type Dispatcher struct {
	factory  Factory
	logger   *slog.Logger
	settings Settings

	mu        sync.RWMutex
	providers map[string]*provider
	services  map[string][]*offer // service model → its offers
	fallbacks map[string]string   // service model → its brownout fallback

	stats sync.Map // service model → *tokenStats
}

type provider struct {
	cfg    *aigrid.ProviderConfig
	impl   aigrid.Provider
	offers []*offer
	stop   context.CancelFunc // ends the active probes
}

// offer is an offer and its live state. Health is per offer, not per
// provider: a hosted provider failing one model still serves the others.
type offer struct {
	provider *provider
	offer    *aigrid.Offer
	slots    *slots
	health   breaker
	ttft     ewma // seconds to the first byte
}

// New returns a dispatcher with no providers.
func New(factory Factory, logger *slog.Logger, settings Settings) *Dispatcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{factory: factory, logger: logger, settings: settings.withDefaults(),
		providers: map[string]*provider{}, services: map[string][]*offer{}, fallbacks: map[string]string{}}
}

// Load replaces the dispatcher's providers and service models with those
// stored. A provider that cannot be built (a model file moved away) is left
// out with an error in the log, and the others serve: stopping the grid
// instead would leave the operator no running server to remove or fix it
// through.
func (d *Dispatcher) Load(ctx context.Context, store aigrid.Store) error {
	cfgs, err := store.ListProviders(ctx)
	if err != nil {
		return err
	}
	models, err := store.ListServiceModels(ctx)
	if err != nil {
		return err
	}
	next := map[string]*provider{}
	for _, cfg := range cfgs {
		if cfg.Disabled {
			continue
		}
		p, err := d.build(cfg)
		if err != nil {
			d.logger.Error("provider not loaded: it serves nothing until it is fixed (aigrid provider add) or removed (aigrid provider remove)",
				"provider", cfg.Name, "error", err.Error())
			continue
		}
		next[cfg.Name] = p
	}
	fallbacks := map[string]string{}
	for _, m := range models {
		if m.Fallback != "" {
			fallbacks[m.Name] = m.Fallback
		}
	}
	d.swap(func(map[string]*provider) map[string]*provider { return next })
	d.mu.Lock()
	d.fallbacks = fallbacks
	d.mu.Unlock()
	return nil
}

// Set adds or replaces one provider.
func (d *Dispatcher) Set(cfg *aigrid.ProviderConfig) error {
	if cfg.Disabled {
		d.Remove(cfg.Name)
		return nil
	}
	p, err := d.build(cfg)
	if err != nil {
		return err
	}
	d.swap(func(cur map[string]*provider) map[string]*provider {
		next := make(map[string]*provider, len(cur)+1)
		for k, v := range cur {
			next[k] = v
		}
		next[cfg.Name] = p
		return next
	})
	return nil
}

// Remove takes a provider out of dispatch. Calls it is serving finish.
func (d *Dispatcher) Remove(name string) {
	d.swap(func(cur map[string]*provider) map[string]*provider {
		next := make(map[string]*provider, len(cur))
		for k, v := range cur {
			if k != name {
				next[k] = v
			}
		}
		return next
	})
}

// SetServiceModel sets or (with an empty fallback) clears a model's brownout fallback.
func (d *Dispatcher) SetServiceModel(m *aigrid.ServiceModel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := make(map[string]string, len(d.fallbacks)+1)
	for k, v := range d.fallbacks {
		next[k] = v
	}
	if m.Fallback == "" {
		delete(next, m.Name)
	} else {
		next[m.Name] = m.Fallback
	}
	d.fallbacks = next
}

// Close stops every provider.
func (d *Dispatcher) Close() {
	d.swap(func(map[string]*provider) map[string]*provider { return map[string]*provider{} })
}

func (d *Dispatcher) build(cfg *aigrid.ProviderConfig) (*provider, error) {
	impl, err := d.factory(cfg)
	if err != nil {
		return nil, err
	}
	p := &provider{cfg: cfg, impl: impl}
	for i := range cfg.Offers {
		o := &cfg.Offers[i]
		p.offers = append(p.offers, &offer{provider: p, offer: o, slots: newSlots(o.MaxConcurrency)})
	}
	p.startProbes(d.logger)
	return p, nil
}

func (p *provider) close() {
	if p.stop != nil {
		p.stop()
	}
	if c, ok := p.impl.(io.Closer); ok {
		c.Close()
	} else if c, ok := p.impl.(interface{ Close() }); ok {
		c.Close()
	}
}

// swap installs the provider set that change returns and stops the providers
// that were replaced. Stopping only drops idle connections: calls in flight on
// a replaced provider finish on their own.
func (d *Dispatcher) swap(change func(map[string]*provider) map[string]*provider) {
	d.mu.Lock()
	old := d.providers
	d.providers = change(old)
	d.services = index(d.providers)
	cur := d.providers
	d.mu.Unlock()
	for name, p := range old {
		if cur[name] != p {
			p.close()
		}
	}
}

// index lists, for each service model, its offers.
func index(providers map[string]*provider) map[string][]*offer {
	names := make([]string, 0, len(providers))
	for name := range providers {
		names = append(names, name)
	}
	sort.Strings(names)
	services := map[string][]*offer{}
	for _, name := range names {
		for _, o := range providers[name].offers {
			for _, s := range o.offer.Serves {
				services[s] = append(services[s], o)
			}
		}
	}
	return services
}

// Models lists the service models that some offer serves within the tenant's policy.
func (d *Dispatcher) Models(t *aigrid.Tenant) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var models []string
	for name, offers := range d.services {
		for _, o := range offers {
			if t.Allows(o.provider.cfg) {
				models = append(models, name)
				break
			}
		}
	}
	sort.Strings(models)
	return models
}

// need is what a request asks of an offer.
type need struct {
	capability string
	tools      bool
	images     bool
	json       bool
	prompt     int // estimated prompt tokens
	maxOutput  int // the client's output limit; 0 for none
}

func chatNeed(req *aigrid.ChatRequest) need {
	return need{capability: aigrid.CapChat, tools: len(req.Tools) > 0, images: req.HasImages(), json: req.WantsJSON(),
		prompt: req.EstimatePromptTokens(), maxOutput: req.MaxOutputTokens()}
}

// lacks says what the offer lacks to serve n, and the request's parameter
// that asks for it; "" when it lacks nothing.
func (o *offer) lacks(n need) (why, param string) {
	switch {
	case !o.offer.Can(n.capability):
		return "serves " + n.capability, "model"
	case n.tools && !o.offer.Can(aigrid.CapTools):
		return "accepts tools", "tools"
	case n.images && !o.offer.Can(aigrid.CapVision):
		return "accepts images", "messages"
	case n.json && !o.offer.Can(aigrid.CapJSON):
		return "supports response_format JSON", "response_format"
	case n.maxOutput > 0 && o.offer.ContextLength > 0 && n.prompt+n.maxOutput > o.offer.ContextLength:
		return fmt.Sprintf("has a context long enough for this request (about %d tokens of prompt and max_tokens; the longest context is %d)",
			n.prompt+n.maxOutput, o.offer.ContextLength), "messages"
	}
	return "", ""
}

// eligible returns the offers of the service that can serve the call, or an
// error that says why none can.
func (d *Dispatcher) eligible(call *aigrid.Call, n need) ([]*offer, error) {
	d.mu.RLock()
	offers := d.services[call.Service]
	d.mu.RUnlock()
	if len(offers) == 0 {
		return nil, &aigrid.Error{Code: aigrid.ENotFound, Param: "model",
			Message: fmt.Sprintf("The model %q does not exist or you do not have access to it.", call.Service)}
	}
	var fit []*offer
	allowed, why, param := 0, "", ""
	for _, o := range offers {
		if !call.Tenant.Allows(o.provider.cfg) {
			continue
		}
		allowed++
		if reason, p := o.lacks(n); reason != "" {
			why, param = reason, p
			continue
		}
		fit = append(fit, o)
	}
	switch {
	case allowed == 0:
		return nil, aigrid.Errorf(aigrid.EForbidden, "The model %q is served only by providers outside your tenant's data policy (%s).", call.Service, policy(call.Tenant))
	case len(fit) == 0:
		return nil, &aigrid.Error{Code: aigrid.EInvalid, Param: param,
			Message: fmt.Sprintf("No offer of the model %q %s.", call.Service, why)}
	}
	return fit, nil
}

func policy(t *aigrid.Tenant) string {
	var parts []string
	if len(t.Residency) > 0 {
		parts = append(parts, "residency "+strings.Join(t.Residency, ", "))
	}
	if t.NoRetention {
		parts = append(parts, "no retention")
	}
	return strings.Join(parts, "; ")
}

// Chat serves a chat completion.
func (d *Dispatcher) Chat(ctx context.Context, call *aigrid.Call, req *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	var resp *aigrid.ChatResponse
	err := d.serve(ctx, call, chatNeed(req), func(ctx context.Context, o *offer, first func()) (*aigrid.Usage, error) {
		var err error
		resp, err = o.provider.impl.Chat(ctx, o.offer, req, func(c *aigrid.ChatChunk) error {
			first()
			return emit(c)
		})
		if err != nil {
			return nil, err
		}
		return resp.Usage, nil
	})
	return resp, err
}

// Embed serves an embeddings request.
func (d *Dispatcher) Embed(ctx context.Context, call *aigrid.Call, req *aigrid.EmbeddingRequest) (*aigrid.EmbeddingResponse, error) {
	chars := 0
	for _, t := range req.Input.Texts {
		chars += len(t)
	}
	var resp *aigrid.EmbeddingResponse
	err := d.serve(ctx, call, need{capability: aigrid.CapEmbeddings, prompt: chars / 4}, func(ctx context.Context, o *offer, first func()) (*aigrid.Usage, error) {
		e, ok := o.provider.impl.(aigrid.Embedder)
		if !ok {
			return nil, aigrid.Errorf(aigrid.EUpstream, "provider %s does not compute embeddings", o.provider.cfg.Name)
		}
		var err error
		if resp, err = e.Embed(ctx, o.offer, req); err != nil {
			return nil, err
		}
		return &resp.Usage, nil
	})
	return resp, err
}

// attemptFunc runs a call on one offer; it calls first when output is about
// to reach the client, after which the call is never retried.
type attemptFunc func(ctx context.Context, o *offer, first func()) (*aigrid.Usage, error)

// serve admits the call to an offer and runs it, failing over before the
// first byte, within the settings' deadline.
func (d *Dispatcher) serve(ctx context.Context, call *aigrid.Call, n need, attempt attemptFunc) error {
	offers, err := d.eligible(call, n)
	if err != nil {
		return err
	}
	var started atomic.Bool
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	deadline := time.AfterFunc(d.settings.Deadline, func() {
		if !started.Load() {
			cancel(&aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: time.Second,
				Message: fmt.Sprintf("The model %q could not start answering within %s; try again shortly.", call.Service, d.settings.Deadline)})
		}
	})
	defer deadline.Stop()

	tried := map[*offer]bool{}
	var lastErr error
	for call.Attempts < d.settings.MaxAttempts {
		// Offers are looked up again for each retry: a brownout changes the
		// service model.
		if call.Attempts > 0 {
			if offers, err = d.eligible(call, n); err != nil {
				return err
			}
		}
		o, err := d.admit(ctx, call, n, offers, tried)
		if err != nil {
			if lastErr != nil && aigrid.ErrorCode(err) == aigrid.EUnavailable {
				return lastErr // nothing left to fail over to: the failure itself says more
			}
			return err
		}
		tried[o] = true
		call.Provider, call.Offer = o.provider.cfg.Name, o.offer
		call.Attempts++
		start := time.Now()
		first := func() {
			if !started.Swap(true) {
				o.ttft.observe(time.Since(start).Seconds())
			}
		}
		usage, err := attempt(ctx, o, first)
		if err == nil {
			// Charge before the slot goes to the next in line, which is chosen by the counters.
			d.account(call, o, usage)
			o.slots.release(call.Tenant.Name)
			o.health.succeed()
			if !started.Load() {
				o.ttft.observe(time.Since(start).Seconds())
			}
			return nil
		}
		o.slots.release(call.Tenant.Name)
		if cause := context.Cause(ctx); ctx.Err() != nil {
			o.health.cancelTrial()
			if e, ok := cause.(*aigrid.Error); ok && !started.Load() {
				return e
			}
			return err
		}
		if !providerFault(err) {
			o.health.cancelTrial()
			return err
		}
		if providerFull(err) && !started.Load() {
			// Full, not broken: the next offer may take the call, and the
			// breaker stays closed.
			o.health.cancelTrial()
			lastErr = err
			continue
		}
		o.health.fail(time.Now())
		d.logger.Warn("offer failed", "request_id", call.ID, "provider", call.Provider, "model", o.offer.Model,
			"error", err.Error(), "output_started", started.Load(), "attempt", call.Attempts)
		if started.Load() {
			return err
		}
		lastErr = err
	}
	return lastErr
}

// providerFull reports whether a provider refused a call because it is full (it
// said when to come back), as the embedded engine's admission control and an
// upstream's rate limit do.
func providerFull(err error) bool {
	var e *aigrid.Error
	return errors.As(err, &e) && (e.Code == aigrid.EUnavailable || e.Code == aigrid.ERateLimited) && e.RetryAfter > 0
}

// providerFault reports whether an error is the provider's (worth failing
// over and counting against its health) rather than the request's.
func providerFault(err error) bool {
	var e *aigrid.Error
	if !errors.As(err, &e) {
		return true
	}
	switch e.Code {
	case aigrid.EUpstream, aigrid.EUnavailable, aigrid.ERateLimited, aigrid.EInternal:
		return true
	}
	return false
}

// account charges the tenant's fair-share counter with the tokens served and
// learns the service model's typical request size.
func (d *Dispatcher) account(call *aigrid.Call, o *offer, u *aigrid.Usage) {
	if u == nil {
		return
	}
	// Input tokens were charged, by estimate, at admission.
	o.slots.charge(call.Tenant.Name, call.Tenant.Class.Weight(), outputWeight*float64(u.CompletionTokens))
	d.statsFor(call.Service).observe(u.PromptTokens, u.CompletionTokens)
}
