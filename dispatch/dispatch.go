// Package dispatch chooses the offer that serves each call: among the offers of
// the requested service model, those that can serve the request, that the
// tenant's policy allows, that are healthy and have capacity. It fails over to
// the next offer when one fails before the first byte reaches the client.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"aigrid"
)

// Factory makes a live provider from its configuration.
type Factory func(cfg *aigrid.ProviderConfig) (aigrid.Provider, error)

// MaxAttempts bounds how many offers one call tries.
const MaxAttempts = 3

// Dispatcher routes calls to offers. It is safe for concurrent use; the set of
// providers is swapped as a whole when the configuration changes, so the
// request path takes only a read lock.
type Dispatcher struct {
	factory Factory
	logger  *slog.Logger

	mu        sync.RWMutex
	providers map[string]*provider
	services  map[string][]*offer // service model → offers, in dispatch order
}

type provider struct {
	cfg    *aigrid.ProviderConfig
	impl   aigrid.Provider
	offers []*offer
}

// offer is an offer and its live state. The breaker is per offer, not per
// provider: a hosted provider failing one model still serves the others.
type offer struct {
	provider *provider
	offer    *aigrid.Offer
	inFlight atomic.Int64
	health   breaker
}

// New returns a dispatcher with no providers.
func New(factory Factory, logger *slog.Logger) *Dispatcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{factory: factory, logger: logger, providers: map[string]*provider{}, services: map[string][]*offer{}}
}

// Load replaces the dispatcher's providers with those stored.
func (d *Dispatcher) Load(ctx context.Context, store aigrid.ProviderService) error {
	cfgs, err := store.ListProviders(ctx)
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
			return err
		}
		next[cfg.Name] = p
	}
	d.swap(func(map[string]*provider) map[string]*provider { return next })
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

// Close closes every provider.
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
		p.offers = append(p.offers, &offer{provider: p, offer: &cfg.Offers[i]})
	}
	return p, nil
}

// swap installs the provider set that change returns and closes the providers
// that were replaced. Closing only drops idle connections: calls in flight on
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
			if c, ok := p.impl.(io.Closer); ok {
				c.Close()
			} else if c, ok := p.impl.(interface{ Close() }); ok {
				c.Close()
			}
		}
	}
}

// index lists, for each service model, its offers ordered by provider name and
// then by their place in the provider's configuration.
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
	tokens     int // prompt and output tokens the context must hold; 0 for unknown
}

func chatNeed(req *aigrid.ChatRequest) need {
	n := need{capability: aigrid.CapChat, tools: len(req.Tools) > 0, images: req.HasImages(), json: req.WantsJSON()}
	if max := req.MaxOutputTokens(); max > 0 {
		n.tokens = req.EstimatePromptTokens() + max
	}
	return n
}

// candidates returns the offers that may serve the call, in dispatch order,
// or an error that says why none may.
func (d *Dispatcher) candidates(call *aigrid.Call, n need) ([]*offer, error) {
	d.mu.RLock()
	offers := d.services[call.Service]
	d.mu.RUnlock()
	if len(offers) == 0 {
		return nil, &aigrid.Error{Code: aigrid.ENotFound, Param: "model",
			Message: fmt.Sprintf("The model %q does not exist or you do not have access to it.", call.Service)}
	}
	var fit, allowed []*offer
	var why string
	for _, o := range offers {
		if !call.Tenant.Allows(o.provider.cfg) {
			continue
		}
		allowed = append(allowed, o)
		if reason := o.lacks(n); reason != "" {
			why = reason
			continue
		}
		fit = append(fit, o)
	}
	switch {
	case len(allowed) == 0:
		return nil, aigrid.Errorf(aigrid.EForbidden, "The model %q is served only by providers outside your tenant's data policy (%s).", call.Service, policy(call.Tenant))
	case len(fit) == 0:
		return nil, &aigrid.Error{Code: aigrid.EInvalid, Param: "messages",
			Message: fmt.Sprintf("No offer of the model %q %s.", call.Service, why)}
	}
	return fit, nil
}

func (o *offer) lacks(n need) string {
	switch {
	case !o.offer.Can(n.capability):
		return "serves " + n.capability
	case n.tools && !o.offer.Can(aigrid.CapTools):
		return "accepts tools"
	case n.images && !o.offer.Can(aigrid.CapVision):
		return "accepts images"
	case n.json && !o.offer.Can(aigrid.CapJSON):
		return "supports response_format JSON"
	case n.tokens > 0 && o.offer.ContextLength > 0 && n.tokens > o.offer.ContextLength:
		return fmt.Sprintf("has a context long enough for this request (about %d tokens of prompt and max_tokens; the longest context is %d)", n.tokens, o.offer.ContextLength)
	}
	return ""
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

// Chat serves a chat completion, failing over to the next offer when one fails
// before anything was passed to emit.
func (d *Dispatcher) Chat(ctx context.Context, call *aigrid.Call, req *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	offers, err := d.candidates(call, chatNeed(req))
	if err != nil {
		return nil, err
	}
	var resp *aigrid.ChatResponse
	err = d.try(ctx, call, offers, func(o *offer) (bool, error) {
		started := false
		var err error
		resp, err = o.provider.impl.Chat(ctx, o.offer, req, func(c *aigrid.ChatChunk) error {
			started = true
			return emit(c)
		})
		return started, err
	})
	return resp, err
}

// Embed serves an embeddings request with failover.
func (d *Dispatcher) Embed(ctx context.Context, call *aigrid.Call, req *aigrid.EmbeddingRequest) (*aigrid.EmbeddingResponse, error) {
	offers, err := d.candidates(call, need{capability: aigrid.CapEmbeddings})
	if err != nil {
		return nil, err
	}
	var resp *aigrid.EmbeddingResponse
	err = d.try(ctx, call, offers, func(o *offer) (bool, error) {
		e, ok := o.provider.impl.(aigrid.Embedder)
		if !ok {
			return false, aigrid.Errorf(aigrid.EUpstream, "provider %s does not compute embeddings", o.provider.cfg.Name)
		}
		var err error
		resp, err = e.Embed(ctx, o.offer, req)
		return false, err
	})
	return resp, err
}

// try runs attempt on the offers in order until one succeeds, one fails after
// output started, the error is the client's own, or MaxAttempts were made.
func (d *Dispatcher) try(ctx context.Context, call *aigrid.Call, offers []*offer, attempt func(*offer) (started bool, err error)) error {
	var lastErr error
	busy, down := 0, 0
	for _, o := range offers {
		if call.Attempts >= MaxAttempts {
			break
		}
		if !o.health.allow(time.Now()) {
			down++
			continue
		}
		if !o.acquire() {
			busy++
			continue
		}
		call.Provider, call.Offer = o.provider.cfg.Name, o.offer
		call.Attempts++
		started, err := attempt(o)
		o.inFlight.Add(-1)
		if err == nil {
			o.health.succeed()
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if !isProviderFault(err) {
			return err
		}
		o.health.fail(time.Now())
		d.logger.Warn("offer failed", "request_id", call.ID, "provider", call.Provider, "model", o.offer.Model, "error", err.Error(), "output_started", started)
		if started {
			return err
		}
		lastErr = err
	}
	switch {
	case lastErr != nil:
		return lastErr
	case busy > 0:
		return &aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: time.Second,
			Message: fmt.Sprintf("Every offer of the model %q is at capacity; try again shortly.", call.Service)}
	default:
		return &aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: breakerCooldown,
			Message: fmt.Sprintf("Every provider of the model %q is failing; try again shortly.", call.Service)}
	}
}

func (o *offer) acquire() bool {
	n := o.inFlight.Add(1)
	if limit := int64(o.offer.MaxConcurrency); limit > 0 && n > limit {
		o.inFlight.Add(-1)
		return false
	}
	return true
}

// isProviderFault reports whether an error is the provider's (worth failing
// over and counting against its health) rather than the request's.
func isProviderFault(err error) bool {
	var e *aigrid.Error
	if !errors.As(err, &e) {
		return true
	}
	return slices.Contains([]string{aigrid.EUpstream, aigrid.EUnavailable, aigrid.ERateLimited, aigrid.EInternal}, e.Code)
}
