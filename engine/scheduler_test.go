package engine

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"aigrid"
	"aigrid/engine/model"
	"aigrid/engine/sample"
	"aigrid/engine/tensor"
)

// tiny is small enough for -race, with logits spread widely enough that
// batching (which only reorders float sums) never flips a greedy choice.
var tiny = model.Spec{Arch: "qwen2", Quant: "Q8_0", Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 2,
	Vocab: 400, Context: 512, Seed: 5, LogitScale: 10}

func load(t testing.TB, spec model.Spec) *model.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := model.WriteRandom(path, spec); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func start(t testing.TB, m *model.Model, opt Options) *Scheduler {
	t.Helper()
	pool := tensor.NewPool(2)
	s := New(m, pool, opt)
	t.Cleanup(func() {
		s.Close()
		pool.Close()
	})
	return s
}

// letters bans the byte tokens and the end of text, so that outputs are
// plain text of a known length.
func letters() sample.Params {
	bias := map[int32]float32{2: float32(math.Inf(-1))}
	for id := int32(3); id < 259; id++ {
		bias[id] = float32(math.Inf(-1))
	}
	return sample.Params{LogitBias: bias}
}

type run struct {
	ids   []int32
	text  string
	res   *Result
	err   error
	first time.Time // when the first output arrived
}

func generate(ctx context.Context, s *Scheduler, req *Request) run {
	var r run
	r.res, r.err = s.Generate(ctx, req, func(o Output) error {
		if r.first.IsZero() {
			r.first = time.Now()
		}
		r.ids = append(r.ids, o.Token.ID)
		r.text += o.Text
		return nil
	})
	return r
}

func prompt(n int, seed int32) []int32 {
	p := []int32{1}
	for i := range int32(n - 1) {
		p = append(p, 259+(seed*7+i*13)%141)
	}
	return p
}

// Sequences decoding together get exactly the tokens each gets alone.
func TestBatchedEqualsAlone(t *testing.T) {
	m := load(t, tiny)
	s := start(t, m, Options{PrefillChunk: 16})
	reqs := []*Request{
		{Prompt: prompt(5, 1), MaxTokens: 20, Sampling: letters()},
		{Prompt: prompt(40, 2), MaxTokens: 12, Sampling: letters()},
		{Prompt: prompt(2, 3), MaxTokens: 25, Sampling: letters()},
		{Prompt: prompt(17, 4), MaxTokens: 16, Sampling: sample.Params{}}, // may end early
	}
	var alone []run
	for _, r := range reqs {
		alone = append(alone, generate(context.Background(), s, r))
	}
	// On a scheduler of its own, so that no prompt finds a kept cache.
	s = start(t, m, Options{PrefillChunk: 16})
	together := make([]run, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() { together[i] = generate(context.Background(), s, r) })
	}
	wg.Wait()
	for i := range reqs {
		a, b := alone[i], together[i]
		if a.err != nil || b.err != nil {
			t.Fatalf("request %d: %v, %v", i, a.err, b.err)
		}
		if !slices.Equal(a.ids, b.ids) || a.text != b.text || *a.res != *b.res {
			t.Errorf("request %d: alone %v %q %+v, batched %v %q %+v", i, a.ids, a.text, *a.res, b.ids, b.text, *b.res)
		}
		if i < 3 && (a.res.Finish != sample.Length || a.res.CompletionTokens != reqs[i].MaxTokens || len(a.ids) != reqs[i].MaxTokens) {
			t.Errorf("request %d: %+v with %d tokens, want length after %d", i, *a.res, len(a.ids), reqs[i].MaxTokens)
		}
		if a.res.PromptTokens != len(reqs[i].Prompt) {
			t.Errorf("request %d: %d prompt tokens, want %d", i, a.res.PromptTokens, len(reqs[i].Prompt))
		}
	}
	if st := s.Stats(); st.Running != 0 || st.ReservedTokens != 0 || st.KVBytes != 0 {
		t.Errorf("after all: %+v", st)
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A request whose client leaves is dropped at the next step, its cache freed,
// while the others go on to their end.
func TestCancelFreesAtOnce(t *testing.T) {
	s := start(t, load(t, tiny), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other := make(chan run)
	go func() {
		other <- generate(context.Background(), s, &Request{Prompt: prompt(8, 1), MaxTokens: 300, Sampling: letters()})
	}()
	got := make(chan error)
	tokens := 0
	go func() {
		_, err := s.Generate(ctx, &Request{Prompt: prompt(8, 2), MaxTokens: 400, Sampling: letters()}, func(Output) error {
			if tokens++; tokens == 5 {
				cancel()
			}
			return nil
		})
		got <- err
	}()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	// Only the other request's tokens stay reserved, only its cache held.
	waitFor(t, "the cancelled request to leave", func() bool {
		st := s.Stats()
		return st.Running == 1 && st.ReservedTokens == 8+300
	})
	kv := s.m.KVBytesPerToken()
	waitFor(t, "its cache to be freed", func() bool {
		st := s.Stats()
		// The survivor holds fewer than 300+8 tokens, at most doubled by growth.
		return st.KVBytes <= int64(2*(300+8)*kv) || st.Running == 0
	})
	r := <-other
	if r.err != nil || len(r.ids) != 300 || r.res.Finish != sample.Length {
		t.Fatalf("the other request: %v, %d tokens", r.err, len(r.ids))
	}
	if st := s.Stats(); st.KVBytes != 0 || st.ReservedTokens != 0 {
		t.Errorf("after all: %+v", st)
	}

	// An emit error ends the request the same way.
	boom := errors.New("client gone")
	_, err := s.Generate(context.Background(), &Request{Prompt: prompt(4, 3), MaxTokens: 50}, func(Output) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("emit error: %v", err)
	}
	waitFor(t, "the failed request to leave", func() bool { return s.Stats().ReservedTokens == 0 })
}

// With the budget full, a request waits in line; it gets in when room comes
// back, and fails with a 503 and Retry-After when it does not in time.
func TestAdmission(t *testing.T) {
	m := load(t, tiny)
	per := int64(m.KVBytesPerToken())
	s := start(t, m, Options{KVBudget: 300 * per, MaxWait: 300 * time.Millisecond})
	if s.Context() != 300 {
		t.Fatalf("context %d, want the budget's 300", s.Context())
	}
	// Room held as an embedding in progress holds it.
	hog := &ticket{need: 250}
	if err := s.admit(context.Background(), hog); err != nil {
		t.Fatal(err)
	}
	_, err := s.Generate(context.Background(), &Request{Prompt: prompt(10, 2), MaxTokens: 100}, func(Output) error { return nil })
	var e *aigrid.Error
	if !errors.As(err, &e) || e.Code != aigrid.EUnavailable || e.RetryAfter < time.Second || !strings.Contains(e.Message, "busy") {
		t.Fatalf("over budget: %#v", err)
	}
	if st := s.Stats(); st.Waiting != 0 || st.ReservedTokens != 250 {
		t.Fatalf("after the refusal: %+v", st)
	}

	// Requests that wait get in, in order, once there is room.
	second := make(chan run)
	go func() { second <- generate(context.Background(), s, &Request{Prompt: prompt(10, 2), MaxTokens: 100}) }()
	waitFor(t, "the second to wait", func() bool { return s.Stats().Waiting == 1 })
	third := make(chan run)
	go func() { third <- generate(context.Background(), s, &Request{Prompt: prompt(5, 2), MaxTokens: 5}) }()
	waitFor(t, "the third to wait behind it", func() bool { return s.Stats().Waiting == 2 })
	s.release(hog, nil)
	for _, c := range []chan run{second, third} {
		if r := <-c; r.err != nil || r.res.CompletionTokens == 0 {
			t.Fatalf("after the wait: %v", r.err)
		}
	}

	// Too long for the context: a 400 at once.
	_, err = s.Generate(context.Background(), &Request{Prompt: prompt(200, 1), MaxTokens: 101}, nil)
	if !errors.As(err, &e) || e.Code != aigrid.EInvalid || !strings.Contains(e.Message, "maximum context length is 300") {
		t.Fatalf("too long: %v", err)
	}
	_, err = s.Embed(context.Background(), prompt(301, 1))
	if !errors.As(err, &e) || e.Code != aigrid.EInvalid {
		t.Fatalf("embedding too long: %v", err)
	}
}

// A short prompt arriving while a long one is being read starts answering
// before the long one has finished reading.
func TestChunkedPrefill(t *testing.T) {
	s := start(t, load(t, tiny), Options{PrefillChunk: 8})
	long := make(chan run)
	go func() { long <- generate(context.Background(), s, &Request{Prompt: prompt(200, 1), MaxTokens: 4}) }()
	waitFor(t, "the long prompt to start", func() bool { st := s.Stats(); return st.Running == 1 && st.Steps > 0 })
	short := generate(context.Background(), s, &Request{Prompt: prompt(3, 2), MaxTokens: 4, Sampling: letters()})
	l := <-long
	if short.err != nil || l.err != nil {
		t.Fatal(short.err, l.err)
	}
	if !short.first.Before(l.first) {
		t.Errorf("short prompt's first token at %v, long prompt's at %v", short.first, l.first)
	}
}

// Stop strings spanning tokens cut the text before them, and no part of a
// stop reaches the caller.
func TestStopAcrossTokens(t *testing.T) {
	s := start(t, load(t, tiny), Options{})
	req := &Request{Prompt: prompt(6, 9), MaxTokens: 30, Sampling: letters()}
	full := generate(context.Background(), s, req)
	if full.err != nil {
		t.Fatal(full.err)
	}
	// A stop made of the end of one token's text and the start of the next.
	var pieces []string
	for _, id := range full.ids {
		pieces = append(pieces, s.tok.Decode([]int32{id}, false))
	}
	cut := -1
	for i := 3; i+1 < len(pieces); i++ {
		if len(pieces[i]) >= 1 && len(pieces[i+1]) >= 2 {
			cut = i
			break
		}
	}
	if cut < 0 {
		t.Fatalf("no two-token stop in %q", pieces)
	}
	stop := pieces[cut][len(pieces[cut])-1:] + pieces[cut+1][:2]
	before := strings.Join(pieces[:cut+1], "")
	want := full.text[:strings.Index(full.text, stop)]
	if !strings.HasPrefix(before, want) {
		t.Fatalf("stop %q occurs earlier than planned in %q", stop, full.text)
	}
	req.Stop = []string{"never there", stop}
	var chunks []string
	res, err := s.Generate(context.Background(), req, func(o Output) error {
		chunks = append(chunks, o.Text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(chunks, "")
	if got != want || res.Finish != sample.Stop {
		t.Errorf("with stop %q: %q (%s), want %q", stop, got, res.Finish, want)
	}
	for _, c := range chunks {
		if strings.Contains(c, stop[:2]) && !strings.Contains(want, c) {
			t.Errorf("chunk %q shows part of the stop", c)
		}
	}
}

// Embeddings are unit vectors, the same alone or while generations run.
func TestEmbed(t *testing.T) {
	s := start(t, load(t, tiny), Options{})
	a, err := s.Embed(context.Background(), prompt(20, 1))
	if err != nil {
		t.Fatal(err)
	}
	norm := 0.0
	for _, v := range a {
		norm += float64(v) * float64(v)
	}
	if len(a) != tiny.Dim || math.Abs(norm-1) > 1e-4 {
		t.Fatalf("%d values, norm² %g", len(a), norm)
	}
	done := make(chan run)
	go func() { done <- generate(context.Background(), s, &Request{Prompt: prompt(9, 3), MaxTokens: 50}) }()
	b, err := s.Embed(context.Background(), prompt(20, 1))
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5 {
			t.Fatalf("embedding changed under load at %d: %g vs %g", i, a[i], b[i])
		}
	}
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
}

// Closing fails what is waiting and running, and refuses what comes after.
func TestClose(t *testing.T) {
	m := load(t, tiny)
	pool := tensor.NewPool(1)
	defer pool.Close()
	s := New(m, pool, Options{KVBudget: 512 * int64(m.KVBytesPerToken())})
	// Held room (11 tokens) keeps the second request (502 tokens) waiting
	// even after the first (410 tokens) ends.
	hog := &ticket{need: 11}
	if err := s.admit(context.Background(), hog); err != nil {
		t.Fatal(err)
	}
	running := make(chan run)
	go func() {
		running <- generate(context.Background(), s, &Request{Prompt: prompt(10, 1), MaxTokens: 400, Sampling: letters()})
	}()
	waitFor(t, "the request to run", func() bool { return s.Stats().Running == 1 })
	waiting := make(chan run)
	go func() { waiting <- generate(context.Background(), s, &Request{Prompt: prompt(10, 1)}) }()
	waitFor(t, "the second to wait", func() bool { return s.Stats().Waiting == 1 })
	s.Close()
	// The first may have reached the end of its context already.
	if r := <-running; r.err != nil && aigrid.ErrorCode(r.err) != aigrid.EUnavailable {
		t.Errorf("running at Close: %v", r.err)
	}
	if r := <-waiting; aigrid.ErrorCode(r.err) != aigrid.EUnavailable {
		t.Errorf("waiting at Close: %v", r.err)
	}
	if _, err := s.Generate(context.Background(), &Request{Prompt: prompt(3, 1)}, nil); aigrid.ErrorCode(err) != aigrid.EUnavailable {
		t.Errorf("Generate after Close: %v", err)
	}
	if _, err := s.Embed(context.Background(), prompt(3, 1)); aigrid.ErrorCode(err) != aigrid.EUnavailable {
		t.Errorf("Embed after Close: %v", err)
	}
}

// A prompt that starts as an earlier generation did (the next turn of a
// conversation) reuses its kept cache and gets the same tokens as without.
func TestPrefixReuse(t *testing.T) {
	m := load(t, tiny)
	first := &Request{Prompt: prompt(40, 1), MaxTokens: 10, Sampling: letters()}
	s := start(t, m, Options{KVBudget: 300 * int64(m.KVBytesPerToken())})
	a := generate(context.Background(), s, first)
	if a.err != nil {
		t.Fatal(a.err)
	}
	// Cached: the prompt and the answer but its last token, never fed.
	if st := s.Stats(); st.KeptTokens != 40+9 || st.ReservedTokens != 0 {
		t.Fatalf("after the first turn: %+v", st)
	}
	next := &Request{Prompt: append(append(slices.Clone(first.Prompt), a.ids...), prompt(6, 2)...), MaxTokens: 10, Sampling: letters()}
	b := generate(context.Background(), s, next)
	fresh := generate(context.Background(), start(t, m, Options{}), next)
	if b.err != nil || fresh.err != nil {
		t.Fatal(b.err, fresh.err)
	}
	if b.res.CachedTokens != 49 || fresh.res.CachedTokens != 0 {
		t.Errorf("cached %d and %d tokens, want 49 and 0", b.res.CachedTokens, fresh.res.CachedTokens)
	}
	if !slices.Equal(b.ids, fresh.ids) {
		t.Errorf("with the kept cache %v, without %v", b.ids, fresh.ids)
	}

	// The same prompt again: all but its last token come from the cache.
	c := generate(context.Background(), s, next)
	if c.err != nil || c.res.CachedTokens != len(next.Prompt)-1 || !slices.Equal(c.ids, fresh.ids) {
		t.Errorf("again: %v, %d cached, %v", c.err, c.res.CachedTokens, c.ids)
	}

	// Kept caches give way to reservations.
	hog := &ticket{need: 300}
	if err := s.admit(context.Background(), hog); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.KeptTokens != 0 {
		t.Errorf("kept %d tokens beside a full reservation", st.KeptTokens)
	}
	s.release(hog, nil)
}
