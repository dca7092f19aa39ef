// Package local is the provider of the embedded engine: it serves the GGUF
// files of its offers on this machine's CPU, each model with its own
// scheduler (continuous batching, a KV-cache budget, see aigrid/engine), all
// computing on one pool of threads.
package local

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"aigrid"
	"aigrid/engine"
	"aigrid/engine/chat"
	"aigrid/engine/model"
	"aigrid/engine/tensor"
)

var (
	_ aigrid.Provider = (*Provider)(nil)
	_ aigrid.Embedder = (*Provider)(nil)
)

// Options tune the engine for the whole provider. Zero values take the defaults.
type Options struct {
	// Threads compute each product (default runtime.NumCPU()).
	Threads int
	// KVBudget is each model's key/value cache budget in bytes. By default
	// it holds max_concurrency full contexts of the offer, or
	// engine.DefaultContexts when max_concurrency is not set.
	KVBudget int64
	// PrefillChunk and MaxWait: see engine.Options.
	PrefillChunk int
	MaxWait      time.Duration
	// Logger receives the warnings of loading (default slog.Default()).
	Logger *slog.Logger
}

// Provider serves the models of one local provider configuration.
type Provider struct {
	name   string
	pool   *tensor.Pool
	models map[string]*served // by offer model name

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

// served is one loaded model.
type served struct {
	path  string
	m     *model.Model
	sched *engine.Scheduler
	tmpl  *chat.Template
}

// New loads every offer's GGUF file. A file that is missing or not a model
// this engine runs fails the whole provider, naming the file.
func New(cfg *aigrid.ProviderConfig, opt Options) (*Provider, error) {
	if opt.Threads <= 0 {
		opt.Threads = runtime.NumCPU()
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	p := &Provider{name: cfg.Name, models: map[string]*served{}}
	var loaded []*served
	fail := func(err error) (*Provider, error) {
		for _, s := range loaded {
			s.m.Close()
		}
		return nil, err
	}
	for i := range cfg.Offers {
		o := &cfg.Offers[i]
		if o.Path == "" {
			return fail(aigrid.Errorf(aigrid.EInvalid, "provider %q: offer %q needs the path of its GGUF file", cfg.Name, o.Model))
		}
		if s, ok := p.models[o.Model]; ok {
			if s.path != o.Path {
				return fail(aigrid.Errorf(aigrid.EInvalid, "provider %q: model %q is offered twice with different files (%s, %s)", cfg.Name, o.Model, s.path, o.Path))
			}
			continue
		}
		m, err := model.Load(o.Path)
		if err != nil {
			return fail(aigrid.Errorf(aigrid.EInvalid, "provider %q: offer %q: cannot load %s: %v", cfg.Name, o.Model, o.Path, err))
		}
		s := &served{path: o.Path, m: m}
		loaded = append(loaded, s)
		if o.ContextLength > m.Context {
			return fail(aigrid.Errorf(aigrid.EInvalid, "provider %q: offer %q: context_length %d is more than the model's %d", cfg.Name, o.Model, o.ContextLength, m.Context))
		}
		tmpl, _ := m.File.String("tokenizer.chat_template")
		s.tmpl = chat.Parse(tmpl)
		p.models[o.Model] = s
	}
	p.pool = tensor.NewPool(opt.Threads)
	for i := range cfg.Offers {
		o := &cfg.Offers[i]
		s := p.models[o.Model]
		if s.sched != nil {
			continue
		}
		eo := engine.Options{Name: o.Model, Context: o.ContextLength, KVBudget: opt.KVBudget,
			MaxBatch: o.MaxConcurrency, PrefillChunk: opt.PrefillChunk, MaxWait: opt.MaxWait}
		ctx := o.ContextLength
		if ctx <= 0 {
			ctx = s.m.Context
		}
		if eo.KVBudget <= 0 && o.MaxConcurrency > 0 {
			eo.KVBudget = int64(o.MaxConcurrency) * int64(ctx) * int64(s.m.KVBytesPerToken())
		}
		s.sched = engine.New(s.m, p.pool, eo)
		// The engine shortens the context to what the budget holds, and its
		// clients only see "maximum context length is N": the operator
		// should know why N is not the context_length they set.
		if got := s.sched.Context(); got < ctx {
			opt.Logger.Warn("the KV budget of a local model holds less than one context: its requests may have at most this many tokens, "+
				"prompt and answer together; raise --kv-budget", "provider", cfg.Name, "model", o.Model, "tokens", got, "context_length", ctx,
				"kv_budget_bytes", eo.KVBudget)
		}
	}
	return p, nil
}

// begin counts a call in flight, so that Close unloads the models only after
// it; it fails once the provider is closed.
func (p *Provider) begin(offer *aigrid.Offer) (*served, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, aigrid.Errorf(aigrid.EUnavailable, "provider %s is being unloaded; try again.", p.name)
	}
	s, ok := p.models[offer.Model]
	if !ok {
		return nil, aigrid.Errorf(aigrid.EUpstream, "provider %s does not serve the model %q", p.name, offer.Model)
	}
	p.inflight.Add(1)
	return s, nil
}

// Probe answers the grid's health checks: a loaded model is up.
func (p *Provider) Probe(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("local: provider closed")
	}
	return nil
}

// Close stops taking calls. The calls in flight finish (the grid replaces a
// provider whose configuration changed without cutting its streams); then
// the schedulers stop and the files are unmapped, in the background.
func (p *Provider) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	go func() {
		p.inflight.Wait()
		p.unload()
	}()
	return nil
}

func (p *Provider) unload() {
	for _, s := range p.models {
		s.sched.Close()
	}
	p.pool.Close()
	for _, s := range p.models {
		s.m.Close()
	}
}
