// Package engine serves a loaded model to many requests at once. A Scheduler
// owns one model's forward passes and runs them in steps of continuous
// batching: every sequence that is generating adds its next token to the same
// batch (one matrix-matrix product per weight, see model.Worker.Forward), and
// prompts are computed in chunks within those steps, a few hundred tokens per
// step shared among them, so that a long prompt does not stall the others.
//
// Each request has its own sampler and stop strings; its tokens reach the
// caller as they are decoded. A request whose context ends (the client went
// away) leaves the batch at the next step and its cache is freed then.
//
// Memory for the key/value cache is budgeted: a request is admitted once the
// tokens it may need (prompt plus its maximum output) fit in what the running
// requests leave; otherwise it waits in line, and after Options.MaxWait fails
// with aigrid.EUnavailable and a Retry-After.
//
// The cache of a generation that ended well is kept in the budget's unclaimed
// room: a later prompt that starts with the same tokens (the next turn of a
// conversation, a shared system prompt) continues from it instead of reading
// those tokens again. Kept caches are dropped, oldest first, as soon as a
// request needs their room.
package engine

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"aigrid"
	"aigrid/engine/model"
	"aigrid/engine/sample"
	"aigrid/engine/tensor"
	"aigrid/engine/tokenizer"
)

// Options configure a Scheduler. Zero values take the defaults.
type Options struct {
	// Name is the model's name in messages to clients.
	Name string
	// Context is the longest sequence (prompt and output) a request may
	// have: at most, and by default, the model's context length.
	Context int
	// KVBudget is the key/value cache memory, in bytes, that the admitted
	// requests may reserve together (default: DefaultContexts full contexts).
	// A context longer than the budget is shortened to fit.
	KVBudget int64
	// MaxBatch bounds the sequences generating together (default 32).
	MaxBatch int
	// PrefillChunk is how many prompt tokens one step computes, shared among
	// the prompts being read (default 128).
	PrefillChunk int
	// MaxWait bounds the wait for room in the cache (default 10s).
	MaxWait time.Duration
}

// Defaults of Options.
const (
	DefaultContexts     = 4
	DefaultMaxBatch     = 32
	DefaultPrefillChunk = 128
	DefaultMaxWait      = 10 * time.Second
)

// Scheduler runs one model's requests in batched steps on one goroutine.
type Scheduler struct {
	m      *model.Model
	tok    *tokenizer.Tokenizer
	opt    Options
	name   string
	ctxLen int
	budget int // tokens of cache

	mu       sync.Mutex
	waiting  []*ticket
	admitted []*seqState // handed to the loop
	reserved int
	running  int
	closed   bool
	// kept are the caches of finished generations, oldest first, for the
	// prompts that start the same way (a conversation's next turn); they
	// hold keptTokens of the budget until a reservation needs the room.
	kept       []*model.Seq
	keptTokens int

	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
	embeds  sync.WaitGroup
	workers sync.Pool // *model.Worker for embeddings

	// Read by Stats and retryAfter; written by the loop.
	kvBytes   atomic.Int64
	minLeft   atomic.Int64 // fewest steps until a running generation ends
	stepNanos atomic.Int64 // recent duration of a step
	steps     atomic.Int64
}

// New starts a scheduler for m, computing on pool (which may be shared with
// other schedulers: its products take turns). Close stops it.
func New(m *model.Model, pool *tensor.Pool, opt Options) *Scheduler {
	if opt.Context <= 0 || opt.Context > m.Context {
		opt.Context = m.Context
	}
	per := int64(m.KVBytesPerToken())
	if opt.KVBudget <= 0 {
		opt.KVBudget = DefaultContexts * int64(opt.Context) * per
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = DefaultMaxBatch
	}
	if opt.PrefillChunk <= 0 {
		opt.PrefillChunk = DefaultPrefillChunk
	}
	if opt.MaxWait <= 0 {
		opt.MaxWait = DefaultMaxWait
	}
	budget := int(min(opt.KVBudget/per, int64(1)<<40))
	s := &Scheduler{
		m: m, tok: m.Tok, opt: opt, name: opt.Name,
		ctxLen: max(1, min(opt.Context, budget)), budget: max(1, budget),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	if s.name == "" {
		s.name = "model"
	}
	s.workers.New = func() any { return m.NewWorker(pool) }
	go s.loop(m.NewWorker(pool))
	return s
}

// Context is the longest sequence, prompt and output, that a request may have.
func (s *Scheduler) Context() int { return s.ctxLen }

// Stats describe the scheduler's load at one moment.
type Stats struct {
	Running, Waiting int
	// ReservedTokens of cache are claimed by admitted requests, out of
	// BudgetTokens; KVBytes are held by the running generations' caches.
	// KeptTokens are cached from finished generations, for reuse, in the
	// budget's room that no request claims.
	ReservedTokens, BudgetTokens, KeptTokens int
	KVBytes                                  int64
	Steps                                    int64 // steps run since the start
}

// Stats returns the current load.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Running: s.running, Waiting: len(s.waiting), ReservedTokens: s.reserved, BudgetTokens: s.budget,
		KeptTokens: s.keptTokens, KVBytes: s.kvBytes.Load(), Steps: s.steps.Load()}
}

// Request is one generation.
type Request struct {
	Prompt   []int32
	Sampling sample.Params
	Stop     []string
	// MaxTokens bounds the output; 0 allows up to the context.
	MaxTokens int
}

// Output is one generated token and the text it lets through: Text may be
// empty while the decoder waits for the rest of a character or while it
// could be the start of a stop string. The last Output has Finish set.
type Output struct {
	Token  sample.Token
	Text   string
	EOG    bool // the token ends generation and has no text
	Finish sample.Finish
}

// Result sums up a finished generation.
type Result struct {
	Finish           sample.Finish
	PromptTokens     int
	CompletionTokens int
	// CachedTokens of the prompt were not computed: they were in the cache
	// kept from an earlier generation that started the same way.
	CachedTokens int
}

// seqState is a generation in the scheduler. The loop owns the fields above
// mu; the caller and the loop share those below.
type seqState struct {
	ctx       context.Context
	t         ticket
	prompt    []int32
	fed       int // prompt tokens in the cache
	cached    int // of which were reused from a kept cache
	seq       *model.Seq
	sampler   *sample.Sampler
	dec       *tokenizer.Decoder
	text      *sample.Text
	maxTokens int
	next      [1]int32 // the token to feed at the next step
	generated int
	done      bool
	counted   int64 // cache bytes counted in Scheduler.kvBytes

	mu     sync.Mutex
	outs   []Output
	signal chan struct{} // capacity 1: outputs or the end are waiting
	ended  bool
	res    Result
	err    error
}

// Generate runs req, passing each output to emit as soon as it is decoded,
// on the caller's goroutine; an error from emit ends the generation and is
// returned. When ctx ends, the generation leaves the batch at the next step.
// Bad requests fail with aigrid.EInvalid; a model too busy to take the
// request within Options.MaxWait fails with aigrid.EUnavailable.
func (s *Scheduler) Generate(ctx context.Context, req *Request, emit func(Output) error) (*Result, error) {
	n := len(req.Prompt)
	switch {
	case n == 0:
		return nil, aigrid.ParamErrorf("messages", "The prompt is empty.")
	case req.MaxTokens < 0:
		return nil, aigrid.ParamErrorf("max_tokens", "max_tokens must not be negative.")
	case n+req.MaxTokens > s.ctxLen || n >= s.ctxLen:
		return nil, s.contextError(n, req.MaxTokens)
	}
	for _, id := range req.Prompt {
		if id < 0 || int(id) >= s.m.Vocab {
			return nil, aigrid.ParamErrorf("messages", "Token %d is not in the model's vocabulary of %d.", id, s.m.Vocab)
		}
	}
	sampler, err := sample.New(req.Sampling)
	if err != nil {
		return nil, aigrid.Errorf(aigrid.EInvalid, "%v", err)
	}
	maxTokens := req.MaxTokens
	if maxTokens == 0 {
		maxTokens = s.ctxLen - n
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := &seqState{
		ctx: ctx, prompt: req.Prompt, sampler: sampler, maxTokens: maxTokens,
		dec: s.tok.NewDecoder(false), text: sample.NewText(req.Stop, maxTokens),
		signal: make(chan struct{}, 1),
	}
	q.t = ticket{need: n + maxTokens, seq: q}
	if err := s.admit(ctx, &q.t); err != nil {
		return nil, err
	}
	var outs []Output
	for {
		select {
		case <-q.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		q.mu.Lock()
		outs, q.outs = q.outs, outs[:0]
		ended, res, err := q.ended, q.res, q.err
		q.mu.Unlock()
		for _, o := range outs {
			if err := emit(o); err != nil {
				return nil, err
			}
		}
		if ended {
			if err != nil {
				return nil, err
			}
			return &res, nil
		}
	}
}

func (q *seqState) push(o Output) {
	q.mu.Lock()
	q.outs = append(q.outs, o)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *seqState) end(res Result, err error) {
	q.mu.Lock()
	q.ended, q.res, q.err = true, res, err
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// Embed returns the mean-pooled, L2-normalised final hidden state of tokens
// (model.Worker.Embed). Its cache counts against the budget while it runs.
func (s *Scheduler) Embed(ctx context.Context, tokens []int32) ([]float32, error) {
	switch {
	case len(tokens) == 0:
		return nil, aigrid.ParamErrorf("input", "The input is empty.")
	case len(tokens) > s.ctxLen:
		return nil, aigrid.ParamErrorf("input", "This model's maximum context length is %d tokens, but the input has %d tokens.", s.ctxLen, len(tokens))
	}
	for _, id := range tokens {
		if id < 0 || int(id) >= s.m.Vocab {
			return nil, aigrid.ParamErrorf("input", "Token %d is not in the model's vocabulary of %d.", id, s.m.Vocab)
		}
	}
	t := &ticket{need: len(tokens)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	s.embeds.Add(1) // before Close can wait, so the mapping outlives this call
	s.mu.Unlock()
	defer s.embeds.Done()
	if err := s.admit(ctx, t); err != nil {
		return nil, err
	}
	defer s.release(t, nil)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := s.workers.Get().(*model.Worker)
	defer s.workers.Put(w)
	return w.Embed(tokens)
}

// Close fails the waiting and running requests, stops the loop and waits
// for embeddings in progress: afterwards nothing touches the model, which
// may then be closed.
func (s *Scheduler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.closed = true
	for _, t := range s.waiting {
		t.err = errClosed
		close(t.ready)
	}
	s.waiting = nil
	for _, seq := range s.kept {
		seq.Free()
	}
	s.kept, s.keptTokens = nil, 0
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	s.embeds.Wait()
}

// loop runs steps while there is work, and sleeps otherwise.
func (s *Scheduler) loop(w *model.Worker) {
	defer close(s.done)
	var active []*seqState
	var steps []model.Step
	var owners []*seqState
	for {
		s.mu.Lock()
		active = append(active, s.admitted...)
		clear(s.admitted)
		s.admitted = s.admitted[:0]
		closed := s.closed
		s.mu.Unlock()
		if closed {
			for _, q := range active {
				s.finish(q, "", errClosed)
			}
			s.kvBytes.Store(0)
			return
		}
		active = slices.DeleteFunc(active, func(q *seqState) bool {
			if err := q.ctx.Err(); err != nil {
				s.finish(q, "", err)
				return true
			}
			return false
		})
		if len(active) == 0 {
			s.kvBytes.Store(0)
			s.minLeft.Store(0)
			select {
			case <-s.wake:
			case <-s.quit:
			}
			continue
		}

		steps, owners = s.plan(active, steps[:0], owners[:0])
		start := time.Now()
		logits, err := w.Forward(steps)
		if err != nil {
			// The requests were checked at admission: this is a bug, and
			// the requests of this batch cannot go on.
			for _, q := range owners {
				s.finish(q, "", err)
			}
			active = slices.DeleteFunc(active, func(q *seqState) bool { return q.done })
			continue
		}
		for i, q := range owners {
			if q.fed < len(q.prompt) {
				q.fed += len(steps[i].Tokens)
			}
			if logits[i] != nil {
				s.decode(q, logits[i])
			}
		}
		clear(steps)
		d := time.Since(start)
		s.stepNanos.Store((s.stepNanos.Load()*7 + int64(d)) / 8)
		s.steps.Add(1)

		var kv int64
		left := int64(1) << 62
		active = slices.DeleteFunc(active, func(q *seqState) bool {
			if q.done {
				return true
			}
			q.counted = int64(q.seq.Bytes())
			kv += q.counted
			left = min(left, int64(q.maxTokens-q.generated+(len(q.prompt)-q.fed+s.opt.PrefillChunk-1)/s.opt.PrefillChunk))
			return false
		})
		s.kvBytes.Store(kv)
		s.minLeft.Store(left)
	}
}

// plan builds one step: every generating sequence's next token, then up to
// PrefillChunk prompt tokens shared fairly among the prompts being read (the
// shortest take what they need, the rest split what is left), so that a short
// prompt arriving behind a long one starts answering at once.
func (s *Scheduler) plan(active []*seqState, steps []model.Step, owners []*seqState) ([]model.Step, []*seqState) {
	var reading []*seqState
	for _, q := range active {
		if q.seq == nil {
			q.seq = s.m.NewSeq()
		}
		if q.fed == len(q.prompt) {
			steps = append(steps, model.Step{Seq: q.seq, Tokens: q.next[:]})
			owners = append(owners, q)
		} else {
			reading = append(reading, q)
		}
	}
	slices.SortStableFunc(reading, func(a, b *seqState) int { return (len(a.prompt) - a.fed) - (len(b.prompt) - b.fed) })
	budget := s.opt.PrefillChunk
	for i, q := range reading {
		if budget <= 0 {
			break
		}
		n := min(len(q.prompt)-q.fed, max(1, budget/(len(reading)-i)))
		want := model.None
		if q.fed+n == len(q.prompt) {
			want = model.Last
		}
		steps = append(steps, model.Step{Seq: q.seq, Tokens: q.prompt[q.fed : q.fed+n], Logits: want})
		owners = append(owners, q)
		budget -= n
	}
	return steps, owners
}

// decode samples q's next token from logits and passes on what it adds.
func (s *Scheduler) decode(q *seqState, logits []float32) {
	tok := q.sampler.Sample(logits)
	q.generated++
	eog := s.tok.IsEOG(tok.ID)
	piece := ""
	if !eog {
		piece = q.dec.Add(tok.ID)
	}
	text, fin := q.text.Add(piece, eog)
	q.push(Output{Token: tok, Text: text, EOG: eog, Finish: fin})
	if fin != "" {
		s.finish(q, fin, nil)
		return
	}
	q.next[0] = tok.ID
}

// finish ends q, gives back its tokens and tells the caller. The cache of a
// generation that ended well is kept for reuse; that of one that failed or
// whose client left is freed at once.
func (s *Scheduler) finish(q *seqState, fin sample.Finish, err error) {
	q.done = true
	var keep *model.Seq
	if q.seq != nil {
		s.kvBytes.Add(-q.counted)
		if err == nil {
			keep = q.seq
		} else {
			q.seq.Free()
		}
		q.seq = nil
	}
	s.release(&q.t, keep)
	q.end(Result{Finish: fin, PromptTokens: len(q.prompt), CompletionTokens: q.generated, CachedTokens: q.cached}, err)
}
