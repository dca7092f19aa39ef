package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"aigrid"
)

// defaultOutputTokens is the expected completion length of a service model
// before any call of it was seen.
const defaultOutputTokens = 256

// ranked is an offer with what the merit order sorts it by.
type ranked struct {
	*offer
	cost float64 // expected cost of the call, in the grid's currency
	load float64 // share of capacity in use
	ttft float64 // seconds, moving average
}

// meritOrder sorts offers by the expected cost of the call, then by load,
// then by observed time to first token.
func (d *Dispatcher) meritOrder(service string, n need, offers []*offer) []ranked {
	in, out := d.expectedTokens(service, n)
	order := make([]ranked, len(offers))
	for i, o := range offers {
		inFlight, queued, capacity := o.slots.load()
		c := float64(capacity)
		if capacity == 0 {
			c = 1024 // no limit: a load that only tells offers of the same kind apart
		}
		order[i] = ranked{offer: o, load: float64(inFlight+queued) / c, ttft: o.ttft.value(),
			cost: (o.offer.Price.Input.Float()*float64(in) + o.offer.Price.Output.Float()*float64(out)) / 1e6}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.cost != b.cost {
			return a.cost < b.cost
		}
		if a.load != b.load {
			return a.load < b.load
		}
		return a.ttft < b.ttft
	})
	return order
}

// expectedTokens estimates a call's prompt and completion tokens: the prompt
// from its text, the completion from what calls of the model produced lately,
// capped by the client's limit.
func (d *Dispatcher) expectedTokens(service string, n need) (in, out int) {
	out = defaultOutputTokens
	if avg := d.statsFor(service).completion.value(); avg > 0 {
		out = int(math.Ceil(avg))
	}
	if n.maxOutput > 0 && out > n.maxOutput {
		out = n.maxOutput
	}
	return n.prompt, out
}

// admit finds the offer that takes the call: the first in merit order with a
// free slot; when all are full, the fallback for tenants that accept
// brownout; else a place in the fairest queue.
func (d *Dispatcher) admit(ctx context.Context, call *aigrid.Call, n need, offers []*offer, tried map[*offer]bool) (*offer, error) {
	now := time.Now()
	var waitable []ranked
	for _, r := range d.meritOrder(call.Service, n, offers) {
		if tried[r.offer] || !r.health.healthy(now) {
			continue
		}
		waitable = append(waitable, r)
		if r.slots.tryAcquire(call.Tenant.Name) {
			if r.health.allow(now) {
				d.charge(call, r.offer, n)
				return r.offer, nil
			}
			r.slots.release(call.Tenant.Name) // another call took the half-open trial
		}
	}
	if len(waitable) == 0 {
		return nil, &aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: breakerCooldown,
			Message: fmt.Sprintf("Every provider of the model %q is failing; try again shortly.", call.Service)}
	}
	if o := d.brownout(call, n); o != nil {
		return o, nil
	}

	// Wait where the line is shortest for the capacity.
	target := waitable[0]
	for _, r := range waitable[1:] {
		if r.load < target.load {
			target = r
		}
	}
	w, ok := target.slots.enqueue(call.Tenant.Name, call.Tenant.Class == aigrid.ClassEmergency, d.settings.MaxQueue)
	if !ok {
		return nil, &aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: time.Second,
			Message: fmt.Sprintf("Every offer of the model %q is at capacity and its queue is full; try again shortly.", call.Service)}
	}
	waitCtx, cancel := context.WithTimeoutCause(ctx, d.settings.QueueTimeout, errQueueTimeout)
	defer cancel()
	if err := target.slots.wait(waitCtx, w); err != nil {
		if errors.Is(err, errQueueTimeout) {
			return nil, &aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: time.Second,
				Message: fmt.Sprintf("Every offer of the model %q stayed at capacity for %s; try again shortly.", call.Service, d.settings.QueueTimeout)}
		}
		return nil, err
	}
	if !target.health.allow(time.Now()) {
		target.slots.release(call.Tenant.Name)
		return nil, &aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: breakerCooldown,
			Message: fmt.Sprintf("The offer the call waited for, of the model %q, started failing; try again shortly.", call.Service)}
	}
	d.charge(call, target.offer, n)
	return target.offer, nil
}

var errQueueTimeout = errors.New("queue timeout")

// brownout serves a call of a saturated model by the model's fallback, at
// once, when the tenant accepts it; never for the emergency class.
func (d *Dispatcher) brownout(call *aigrid.Call, n need) *offer {
	if !call.Tenant.Brownout || call.Tenant.Class == aigrid.ClassEmergency || call.BrownoutFrom != "" {
		return nil
	}
	d.mu.RLock()
	fallback := d.fallbacks[call.Service]
	d.mu.RUnlock()
	if fallback == "" {
		return nil
	}
	fb := *call
	fb.Service = fallback
	offers, err := d.eligible(&fb, n)
	if err != nil {
		return nil
	}
	now := time.Now()
	for _, r := range d.meritOrder(fallback, n, offers) {
		if r.health.healthy(now) && r.slots.tryAcquire(call.Tenant.Name) {
			if r.health.allow(now) {
				call.BrownoutFrom, call.Service = call.Service, fallback
				d.charge(call, r.offer, n)
				return r.offer
			}
			r.slots.release(call.Tenant.Name)
		}
	}
	return nil
}

// charge counts the call's prompt against the tenant's fair share at admission.
func (d *Dispatcher) charge(call *aigrid.Call, o *offer, n need) {
	o.slots.charge(call.Tenant.Name, call.Tenant.Class.Weight(), inputWeight*float64(n.prompt))
}

// tokenStats are a service model's typical prompt and completion sizes.
type tokenStats struct {
	prompt, completion ewma
}

func (s *tokenStats) observe(prompt, completion int) {
	s.prompt.observe(float64(prompt))
	s.completion.observe(float64(completion))
}

func (d *Dispatcher) statsFor(service string) *tokenStats {
	if s, ok := d.stats.Load(service); ok {
		return s.(*tokenStats)
	}
	s, _ := d.stats.LoadOrStore(service, new(tokenStats))
	return s.(*tokenStats)
}

// ewma is an exponentially weighted moving average, safe for concurrent use.
type ewma struct {
	bits atomic.Uint64 // math.Float64bits of the average; 0 before the first observation
}

const ewmaWeight = 0.2 // of the newest observation

func (e *ewma) observe(x float64) {
	for {
		old := e.bits.Load()
		next := x
		if old != 0 {
			next = (1-ewmaWeight)*math.Float64frombits(old) + ewmaWeight*x
		}
		if e.bits.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

func (e *ewma) value() float64 { return math.Float64frombits(e.bits.Load()) }

// OfferStatus is one line of the merit order as the admin API shows it.
type OfferStatus struct {
	Rank         int          `json:"rank"`
	Provider     string       `json:"provider"`
	Model        string       `json:"model"`
	In           bool         `json:"in"`
	Reason       string       `json:"reason"`
	Price        aigrid.Price `json:"price"`
	ExpectedCost float64      `json:"expected_cost"`
	InFlight     int          `json:"in_flight"`
	Queued       int          `json:"queued"`
	Capacity     int          `json:"capacity"`
	TTFTSeconds  float64      `json:"ttft_seconds"`
	Health       string       `json:"health"`
}

// Explanation is the merit order of a service model now.
type Explanation struct {
	ServiceModel   string        `json:"service_model"`
	Fallback       string        `json:"fallback,omitempty"`
	ExpectedPrompt int           `json:"expected_prompt_tokens"`
	ExpectedOutput int           `json:"expected_completion_tokens"`
	Offers         []OfferStatus `json:"offers"`
}

// outsidePolicy says which of the tenant's rules keeps p from serving it:
// the operator reading the merit order needs the rule broken, not the
// tenant's whole policy.
func outsidePolicy(t *aigrid.Tenant, p *aigrid.ProviderConfig) string {
	var why []string
	if len(t.Residency) > 0 && !slices.Contains(t.Residency, p.Jurisdiction) {
		j := "no jurisdiction"
		if p.Jurisdiction != "" {
			j = "jurisdiction " + p.Jurisdiction
		}
		why = append(why, j+", not in the tenant's residency "+strings.Join(t.Residency, ", "))
	}
	if t.NoRetention && p.RetainsData {
		why = append(why, "retains data, and the tenant has no_retention")
	}
	return "outside the tenant's data policy: " + strings.Join(why, "; ")
}

// Explain shows the merit order of a service model for a typical chat call,
// and for each offer whether it is in and why not. With a tenant, its data
// policy is applied too.
func (d *Dispatcher) Explain(service string, tenant *aigrid.Tenant) (*Explanation, error) {
	d.mu.RLock()
	offers := d.services[service]
	fallback := d.fallbacks[service]
	d.mu.RUnlock()
	if len(offers) == 0 {
		return nil, aigrid.Errorf(aigrid.ENotFound, "no offer serves the model %q", service)
	}
	stats := d.statsFor(service)
	n := need{capability: aigrid.CapChat, prompt: int(math.Ceil(stats.prompt.value()))}
	in, out := d.expectedTokens(service, n)
	ex := &Explanation{ServiceModel: service, Fallback: fallback, ExpectedPrompt: in, ExpectedOutput: out}
	now := time.Now()
	rank := 0
	for _, r := range d.meritOrder(service, n, offers) {
		inFlight, queued, capacity := r.slots.load()
		st := OfferStatus{Provider: r.provider.cfg.Name, Model: r.offer.offer.Model, Price: r.offer.offer.Price, ExpectedCost: r.cost,
			InFlight: inFlight, Queued: queued, Capacity: capacity, TTFTSeconds: r.ttft, Health: r.health.String(), Reason: "in merit order"}
		switch {
		case tenant != nil && !tenant.Allows(r.provider.cfg):
			st.Reason = outsidePolicy(tenant, r.provider.cfg)
		case !r.offer.offer.Can(aigrid.CapChat) && !r.offer.offer.Can(aigrid.CapEmbeddings):
			st.Reason = "declares neither chat nor embeddings"
		case !r.health.healthy(now):
			st.Reason = "circuit open after repeated failures"
		case capacity > 0 && inFlight >= capacity:
			rank++
			st.In, st.Rank, st.Reason = true, rank, "at capacity: calls queue for it"
		default:
			rank++
			st.In, st.Rank = true, rank
		}
		ex.Offers = append(ex.Offers, st)
	}
	return ex, nil
}
