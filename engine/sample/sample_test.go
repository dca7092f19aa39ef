package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func mustNew(t *testing.T, p Params) *Sampler {
	t.Helper()
	s, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func logitsOf(x ...float32) []float32 { return slices.Clone(x) }

func TestGreedyAndBias(t *testing.T) {
	s := mustNew(t, Params{})
	if id := s.Sample(logitsOf(1, 3, 2)).ID; id != 1 {
		t.Errorf("greedy picked %d", id)
	}
	s = mustNew(t, Params{LogitBias: map[int32]float32{2: 5, 99: 1, -1: 1}})
	if id := s.Sample(logitsOf(1, 3, 2)).ID; id != 2 {
		t.Errorf("bias: picked %d", id)
	}
	s = mustNew(t, Params{Temperature: 1, LogitBias: map[int32]float32{1: float32(math.Inf(-1))}})
	for range 200 {
		if id := s.Sample(logitsOf(0, 10, 0)).ID; id == 1 {
			t.Fatal("banned token sampled")
		}
	}
}

// Sampling at a temperature follows softmax(logits/T).
func TestDistribution(t *testing.T) {
	logits := []float32{0, 1, 2, -1}
	const temp, n = 0.7, 40000
	s := mustNew(t, Params{Temperature: temp, Seed: 1})
	counts := make([]int, len(logits))
	for range n {
		counts[s.Sample(slices.Clone(logits)).ID]++
	}
	sum := 0.0
	for _, l := range logits {
		sum += math.Exp(float64(l) / temp)
	}
	for i, l := range logits {
		p := math.Exp(float64(l)/temp) / sum
		got := float64(counts[i]) / n
		if sd := math.Sqrt(p * (1 - p) / n); math.Abs(got-p) > 5*sd {
			t.Errorf("token %d: frequency %.4f, probability %.4f", i, got, p)
		}
	}
}

func TestSeed(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	run := func(seed uint64) []int32 {
		s := mustNew(t, Params{Temperature: 1, TopP: 0.9, Seed: seed, RepeatPenalty: 1.1})
		var ids []int32
		for range 50 {
			ids = append(ids, s.Sample(slices.Clone(logits)).ID)
		}
		return ids
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Error("same seed, different tokens")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same tokens")
	}
}

func TestTruncation(t *testing.T) {
	// Probabilities at T=1 of these logits: about .64 .24 .09 .03.
	logits := []float32{3, 2, 1, 0}
	for _, c := range []struct {
		name string
		p    Params
		want []int32 // the tokens that may come out
	}{
		{"top-k 2", Params{TopK: 2}, []int32{0, 1}},
		{"top-p 0.8", Params{TopP: 0.8}, []int32{0, 1}},
		{"top-p 0.5", Params{TopP: 0.5}, []int32{0}},
		{"min-p 0.1", Params{MinP: 0.1}, []int32{0, 1, 2}},
		{"none", Params{}, []int32{0, 1, 2, 3}},
	} {
		c.p.Temperature, c.p.Seed = 5, 3 // flat enough that every kept token shows up
		s := mustNew(t, c.p)
		seen := map[int32]bool{}
		for range 3000 {
			seen[s.Sample(slices.Clone(logits)).ID] = true
		}
		var got []int32
		for id := range seen {
			got = append(got, id)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: sampled %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPenalties(t *testing.T) {
	s := mustNew(t, Params{RepeatPenalty: 2, PresencePenalty: 0.5, FrequencyPenalty: 0.25, Logprobs: true})
	s.Accept(0, 0, 1)
	l := logitsOf(4, -1, 3.9, 0)
	tok := s.Sample(l)
	// 0: 4/2 - 0.5 - 2·0.25 = 1; 1: -1·2 - 0.5 - 0.25 = -2.75; 2 untouched.
	want := []float32{1, -2.75, 3.9, 0}
	if !slices.Equal(l, want) || tok.ID != 2 {
		t.Errorf("logits %v, token %d; want %v, 2", l, tok.ID, want)
	}
	// A penalised token's logprob is still the model's.
	s = mustNew(t, Params{RepeatPenalty: 2, Logprobs: true, LogitBias: map[int32]float32{0: 0.5}})
	s.Accept(0)
	if tok := s.Sample(logitsOf(4, 1)); tok.ID != 0 || math.Abs(float64(tok.Logprob)-(4-math.Log(math.Exp(4)+math.Exp(1)))) > 1e-5 {
		t.Errorf("penalised token: %+v", tok)
	}
	// The window: with RepeatLastN 1 only the last token counts.
	s = mustNew(t, Params{RepeatPenalty: 2, RepeatLastN: 1})
	s.Accept(0, 1)
	l = logitsOf(4, 3, 0)
	if s.Sample(l); l[0] != 4 || l[1] != 1.5 {
		t.Errorf("window 1: %v", l)
	}
	// Sample's own choices count.
	s = mustNew(t, Params{PresencePenalty: 2})
	a := s.Sample(logitsOf(1, 0.5)).ID
	b := s.Sample(logitsOf(1, 0.5)).ID
	if a != 0 || b != 1 {
		t.Errorf("presence penalty: tokens %d, %d", a, b)
	}
}

func TestLogprobs(t *testing.T) {
	logits := []float32{1, 2, 3, 0.5, 2}
	s := mustNew(t, Params{TopLogprobs: 3, LogitBias: map[int32]float32{0: 10}})
	tok := s.Sample(slices.Clone(logits))
	lse := 0.0
	for _, l := range logits {
		lse += math.Exp(float64(l))
	}
	lse = math.Log(lse)
	if tok.ID != 0 || math.Abs(float64(tok.Logprob)-(1-lse)) > 1e-5 {
		t.Errorf("token %d logprob %v, want 0 with %v (before bias)", tok.ID, tok.Logprob, 1-lse)
	}
	wantIDs := []int32{2, 1, 4}
	for i, a := range tok.Top {
		if a.ID != wantIDs[i] || math.Abs(float64(a.Logprob)-(float64(logits[a.ID])-lse)) > 1e-5 {
			t.Errorf("top %d: %+v", i, a)
		}
	}
	if len(tok.Top) != 3 {
		t.Errorf("%d alternatives", len(tok.Top))
	}
	if tok := mustNew(t, Params{}).Sample(logitsOf(1, 2)); tok.Logprob != 0 || tok.Top != nil {
		t.Errorf("logprobs not asked for: %+v", tok)
	}
}

func TestTopN(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 300 {
		n := 1 + r.IntN(200)
		c := make([]cand, n)
		for i := range c {
			c[i] = cand{int32(i), float32(r.IntN(20))} // many ties
		}
		want := slices.Clone(c)
		slices.SortStableFunc(want, func(a, b cand) int {
			switch {
			case a.logit > b.logit:
				return -1
			case a.logit < b.logit:
				return 1
			}
			return 0
		})
		k := 1 + r.IntN(n)
		topN(c, k)
		if !slices.Equal(c[:k], want[:k]) {
			t.Fatalf("trial %d: top %d of %d:\n got %v\nwant %v", trial, k, n, c[:k], want[:k])
		}
	}
}

// TestNucleus checks the selection by weight against the definition: the
// shortest prefix of the candidates, sorted most likely first, whose
// weight reaches p of the total.
func TestNucleus(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for trial := range 500 {
		n := 1 + r.IntN(300)
		c := make([]cand, n)
		for i := range c {
			c[i] = cand{int32(i), float32(r.IntN(12))} // many ties
		}
		weight := func(x cand) float64 { return math.Exp(float64(x.logit)) }
		p := []float64{0.1, 0.5, 0.9, 0.99, r.Float64()}[trial%5]
		sorted := slices.Clone(c)
		slices.SortFunc(sorted, compare)
		total := 0.0
		for _, x := range sorted {
			total += weight(x)
		}
		want, cum := sorted, 0.0
		for i, x := range sorted {
			if cum += weight(x); cum >= p*total {
				want = sorted[:i+1]
				break
			}
		}
		got := nucleus(c, p, weight)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: nucleus %.3f of %d:\n got %v\nwant %v", trial, p, n, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	for _, p := range []Params{
		{Temperature: -1}, {Temperature: nan}, {TopK: -1}, {TopP: 1.5}, {MinP: -0.1},
		{RepeatPenalty: -1}, {RepeatLastN: -2}, {PresencePenalty: 3}, {FrequencyPenalty: nan},
		{TopLogprobs: 21}, {LogitBias: map[int32]float32{1: nan}},
	} {
		if _, err := New(p); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestText(t *testing.T) {
	type step struct {
		piece string
		eog   bool
		emit  string
		fin   Finish
	}
	for _, c := range []struct {
		name  string
		stops []string
		max   int
		steps []step
	}{
		{"across tokens", []string{"STOP"}, 0, []step{
			{"Hello S", false, "Hello ", ""}, {"TO", false, "", ""}, {"Px", false, "", Stop}}},
		{"false start", []string{"STOP"}, 0, []step{
			{"a ST", false, "a ", ""}, {"ar", false, "STar", ""}}},
		{"earliest stop", []string{"cd", "b"}, 0, []step{{"abcd", false, "a", Stop}}},
		{"eog", nil, 0, []step{{"x", false, "x", ""}, {"<|im_end|>", true, "", Stop}}},
		{"eog releases held", []string{"##"}, 0, []step{{"a#", false, "a", ""}, {"", true, "#", Stop}}},
		{"length", []string{"zz"}, 2, []step{{"a", false, "a", ""}, {"bz", false, "bz", Length}, {"c", false, "", Length}}},
		{"unicode", []string{"é!"}, 0, []step{{"café", false, "caf", ""}, {"!", false, "", Stop}}},
	} {
		tx := NewText(append(c.stops, ""), c.max)
		for i, s := range c.steps {
			emit, fin := tx.Add(s.piece, s.eog)
			if emit != s.emit || fin != s.fin {
				t.Errorf("%s: step %d: (%q, %q), want (%q, %q)", c.name, i, emit, fin, s.emit, s.fin)
			}
		}
	}
	tx := NewText([]string{"abc"}, 0)
	tx.Add("xab", false)
	if f := tx.Flush(); f != "ab" || tx.Tokens() != 1 {
		t.Errorf("Flush %q, Tokens %d", f, tx.Tokens())
	}
}

// Whatever the split into tokens, the text shown is the text up to the first
// stop, and no prefix shown contains or ends inside a stop.
func FuzzText(f *testing.F) {
	f.Add("hello STOP world", "STOP", uint64(1))
	f.Add("aaaaab", "aab", uint64(2))
	f.Add("no stop here", "zz", uint64(3))
	f.Add("ééé!", "é!", uint64(4))
	f.Fuzz(func(t *testing.T, text, stop string, seed uint64) {
		if stop == "" {
			return
		}
		r := rand.New(rand.NewPCG(seed, 0))
		tx := NewText([]string{stop}, 0)
		var shown strings.Builder
		var fin Finish
		for rest := text; rest != "" && fin == ""; {
			n := 1 + r.IntN(len(rest))
			var e string
			e, fin = tx.Add(rest[:n], false)
			rest = rest[n:]
			shown.WriteString(e)
			if strings.Contains(shown.String(), stop) {
				t.Fatalf("shown %q contains the stop %q", shown.String(), stop)
			}
		}
		if fin == "" {
			shown.WriteString(tx.Flush())
		}
		want := text
		if i := strings.Index(text, stop); i >= 0 {
			want = text[:i]
		}
		if shown.String() != want {
			t.Fatalf("shown %q, want %q (finish %q)", shown.String(), want, fin)
		}
	})
}

// With every token banned there is no distribution: the sampler still
// answers, with the first token, at any temperature.
func TestAllBanned(t *testing.T) {
	for _, temp := range []float32{0, 1} {
		logits := make([]float32, 1000)
		for i := range logits {
			logits[i] = float32(math.Inf(-1))
		}
		s := mustNew(t, Params{Temperature: temp})
		if tok := s.Sample(logits); tok.ID != 0 {
			t.Errorf("temperature %v: token %d", temp, tok.ID)
		}
	}
}

// BenchmarkSampleVocab samples from a Qwen-sized vocabulary at temperature 1:
// the whole distribution, with log probabilities, and its nucleus. The
// scheduler does this for every sequence at every step.
func BenchmarkSampleVocab(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 151936)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	work := make([]float32, len(logits))
	for _, c := range []struct {
		name string
		p    Params
	}{
		{"all", Params{Temperature: 1}},
		{"logprobs", Params{Temperature: 1, Logprobs: true}},
		{"top_p=0.9", Params{Temperature: 1, TopP: 0.9}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := New(c.p)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				copy(work, logits)
				s.Sample(work)
			}
		})
	}
}
