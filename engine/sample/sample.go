// Package sample picks the next token from a model's logits (greedy, or
// random after logit bias, repetition/presence/frequency penalties, top-k,
// top-p, min-p and temperature, in llama.cpp's order), reports log
// probabilities with their top alternatives, and cuts the generated text at
// stop strings without ever emitting the start of a stop that is still
// arriving.
package sample

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"aigrid/engine/tensor"
)

// Params are the sampling settings of one request.
type Params struct {
	// Temperature divides the logits; 0 picks the most likely token (greedy).
	Temperature float32
	TopK        int     // keep the K most likely tokens; 0: all
	TopP        float32 // keep the most likely tokens whose mass reaches P; 0 or 1: all
	MinP        float32 // drop tokens less likely than MinP times the most likely; 0: none
	// RepeatPenalty divides positive logits (multiplies negative ones) of the
	// tokens among the last RepeatLastN accepted (default 64, -1: all); 0 or 1: none.
	RepeatPenalty float32
	RepeatLastN   int
	// PresencePenalty is subtracted once from the logit of every token in that
	// window, FrequencyPenalty once per occurrence (OpenAI's definitions).
	PresencePenalty  float32
	FrequencyPenalty float32
	LogitBias        map[int32]float32 // added to the logits; -Inf bans a token
	Seed             uint64            // the same seed gives the same tokens
	// Logprobs asks for each token's log probability, TopLogprobs for that
	// many alternatives too (0 to 20).
	Logprobs    bool
	TopLogprobs int
}

// Validate reports the first setting out of range, as a sentence.
func (p *Params) Validate() error {
	switch {
	case !finite(p.Temperature) || p.Temperature < 0:
		return fmt.Errorf("temperature must be 0 or more, not %v", p.Temperature)
	case p.TopK < 0:
		return fmt.Errorf("top_k must be 0 or more, not %d", p.TopK)
	case !finite(p.TopP) || p.TopP < 0 || p.TopP > 1:
		return fmt.Errorf("top_p must be between 0 and 1, not %v", p.TopP)
	case !finite(p.MinP) || p.MinP < 0 || p.MinP > 1:
		return fmt.Errorf("min_p must be between 0 and 1, not %v", p.MinP)
	case !finite(p.RepeatPenalty) || p.RepeatPenalty < 0:
		return fmt.Errorf("repetition penalty must be 0 or more, not %v", p.RepeatPenalty)
	case p.RepeatLastN < -1:
		return fmt.Errorf("repeat window must be -1 or more, not %d", p.RepeatLastN)
	case !finite(p.PresencePenalty) || p.PresencePenalty < -2 || p.PresencePenalty > 2:
		return fmt.Errorf("presence_penalty must be between -2 and 2, not %v", p.PresencePenalty)
	case !finite(p.FrequencyPenalty) || p.FrequencyPenalty < -2 || p.FrequencyPenalty > 2:
		return fmt.Errorf("frequency_penalty must be between -2 and 2, not %v", p.FrequencyPenalty)
	case p.TopLogprobs < 0 || p.TopLogprobs > 20:
		return fmt.Errorf("top_logprobs must be between 0 and 20, not %d", p.TopLogprobs)
	}
	for id, b := range p.LogitBias {
		if math.IsNaN(float64(b)) || math.IsInf(float64(b), 1) {
			return fmt.Errorf("logit_bias of token %d must be a number, not %v", id, b)
		}
	}
	return nil
}

func finite(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }

// Token is a sampled token. With Params.Logprobs, Logprob is its log
// probability under the model (the softmax of the raw logits, before bias,
// penalties and truncation, as OpenAI reports it) and Top the most likely
// alternatives, best first.
type Token struct {
	ID      int32
	Logprob float32
	Top     []Alt
}

// Alt is an alternative token and its log probability.
type Alt struct {
	ID      int32
	Logprob float32
}

// Sampler samples the tokens of one sequence. It is not safe for concurrent use.
type Sampler struct {
	p       Params
	rng     *rand.Rand
	history []int32
	counts  map[int32]int
	saved   []cand // logits adjust changed, with their raw values
	cands   []cand
	probs   []float32 // the whole vocabulary's probabilities, when sampled untruncated
	// probsScale is the scale of the logits in probs when they are this
	// token's logits unchanged since, or 0: log probabilities and a draw at
	// temperature 1 share one softmax.
	probsScale float32
}

type cand struct {
	id    int32
	logit float32
}

// New returns a sampler for p.
func New(p Params) (*Sampler, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.RepeatLastN == 0 {
		p.RepeatLastN = 64
	}
	if p.TopLogprobs > 0 {
		p.Logprobs = true
	}
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(p.Seed, 0x9e3779b97f4a7c15)), counts: map[int32]int{}}, nil
}

// Accept records tokens as part of the text, for the penalties: the prompt,
// if they should see it (Sample records its own choices).
func (s *Sampler) Accept(ids ...int32) { s.history = append(s.history, ids...) }

// Sample picks the next token from logits, which it may change in place.
// Token ids outside logits are ignored in LogitBias.
func (s *Sampler) Sample(logits []float32) Token {
	var tok Token
	var lse float32
	s.probsScale = 0
	if s.p.Logprobs {
		lse = s.logSumExp(logits)
		if k := min(s.p.TopLogprobs, len(logits)); k > 0 {
			s.cands = s.all(logits)
			topN(s.cands, k)
			tok.Top = make([]Alt, k)
			for i, c := range s.cands[:k] {
				tok.Top[i] = Alt{ID: c.id, Logprob: c.logit - lse}
			}
		}
	}
	s.adjust(logits)
	if s.p.Temperature <= 0 {
		tok.ID = argmax(logits)
	} else {
		tok.ID = s.pick(logits)
	}
	if s.p.Logprobs {
		raw := logits[tok.ID]
		for _, c := range s.saved {
			if c.id == tok.ID {
				raw = c.logit
				break
			}
		}
		tok.Logprob = raw - lse
	}
	s.history = append(s.history, tok.ID)
	return tok
}

// adjust adds the logit bias and applies the penalties over the window of
// recent tokens, saving the raw logit of every token it changes.
func (s *Sampler) adjust(logits []float32) {
	s.saved = s.saved[:0]
	defer func() {
		if len(s.saved) > 0 {
			s.probsScale = 0
		}
	}()
	for id, b := range s.p.LogitBias {
		if id >= 0 && int(id) < len(logits) {
			s.saved = append(s.saved, cand{id, logits[id]})
			logits[id] += b
		}
	}
	rp, pp, fp := s.p.RepeatPenalty, s.p.PresencePenalty, s.p.FrequencyPenalty
	if (rp == 0 || rp == 1) && pp == 0 && fp == 0 {
		return
	}
	win := s.history
	if n := s.p.RepeatLastN; n > 0 && len(win) > n {
		win = win[len(win)-n:]
	}
	clear(s.counts)
	for _, id := range win {
		if id >= 0 && int(id) < len(logits) {
			s.counts[id]++
		}
	}
	for id, n := range s.counts {
		if _, biased := s.p.LogitBias[id]; !biased {
			s.saved = append(s.saved, cand{id, logits[id]})
		}
		l := logits[id]
		if rp != 0 && rp != 1 {
			if l > 0 {
				l /= rp
			} else {
				l *= rp
			}
		}
		logits[id] = l - float32(n)*fp - pp
	}
}

// pick truncates with top-k, top-p and min-p (on the distribution at
// temperature 1, as llama.cpp), then samples at the temperature.
func (s *Sampler) pick(logits []float32) int32 {
	topK := s.p.TopK > 0 && s.p.TopK < len(logits)
	if !topK && (s.p.TopP <= 0 || s.p.TopP >= 1) && s.p.MinP <= 0 {
		return s.pickAll(logits)
	}
	c := s.all(logits)
	if topK {
		topN(c, s.p.TopK)
		c = c[:s.p.TopK]
	}
	mx := float32(math.Inf(-1))
	for _, x := range c {
		if x.logit > mx { // not max(), whose NaN handling costs a third of the loop
			mx = x.logit
		}
	}
	if math.IsInf(float64(mx), -1) {
		return argmax(logits) // every token banned: nothing better to do
	}
	if p := s.p.TopP; p > 0 && p < 1 {
		var weight func(cand) float64
		if topK {
			weight = func(x cand) float64 { return math.Exp(float64(x.logit - mx)) }
		} else {
			// The whole vocabulary: its e^x in the vector kernels.
			probs := s.softmax(logits, 1)
			weight = func(x cand) float64 { return float64(probs[x.id]) }
		}
		c = nucleus(c, float64(p), weight)
	}
	if mp := s.p.MinP; mp > 0 {
		floor := mx + float32(math.Log(float64(mp)))
		kept := c[:0]
		for _, x := range c {
			if x.logit >= floor {
				kept = append(kept, x)
			}
		}
		c = kept
	}
	inv := 1 / s.p.Temperature
	weight := func(x cand) float64 { return math.Exp(float64((x.logit - mx) * inv)) }
	if len(c) > len(logits)/8 {
		// A wide nucleus: e^x of the whole vocabulary in the vector kernels
		// costs less than math.Exp of each candidate.
		probs := s.softmax(logits, inv)
		weight = func(x cand) float64 { return float64(probs[x.id]) }
	}
	sum := 0.0
	for i := range c {
		w := weight(c[i])
		c[i].logit = float32(w)
		sum += w
	}
	u := s.rng.Float64() * sum
	for _, x := range c {
		u -= float64(x.logit)
		if u < 0 {
			return x.id
		}
	}
	return c[len(c)-1].id
}

// pickAll samples from the whole vocabulary at the temperature, with e^x
// in the vector kernels: math.Exp over a 152k vocabulary took 3 ms a token,
// more than a batched forward pass of a small model.
func (s *Sampler) pickAll(logits []float32) int32 {
	if best := argmax(logits); math.IsInf(float64(logits[best]), -1) {
		return best // every token banned: nothing better to do
	}
	p := s.softmax(logits, 1/s.p.Temperature)
	// p sums to 1 only up to float32 rounding over the whole vocabulary: the
	// draw is scaled to its actual sum.
	total := 0.0
	for _, w := range p {
		total += float64(w)
	}
	u := s.rng.Float64() * total
	last := int32(0)
	for i, w := range p {
		if w == 0 {
			continue
		}
		if u -= float64(w); u < 0 {
			return int32(i)
		}
		last = int32(i)
	}
	return last
}

// softmax is the probabilities of logits times scale, in a buffer of the
// sampler's.
func (s *Sampler) softmax(logits []float32, scale float32) []float32 {
	if s.probsScale == scale {
		return s.probs
	}
	s.probs = append(s.probs[:0], logits...)
	tensor.SoftmaxF32(s.probs, scale)
	s.probsScale = scale
	return s.probs
}

// nucleus keeps the fewest most likely candidates whose weight reaches p
// of the total, most likely first. It selects by weight as quickselect
// selects by rank: each round partitions what is left around a pivot and
// goes on in the side that holds the boundary, so that only the nucleus is
// sorted, once. A wide nucleus (a flat distribution) costs a few passes
// over the vocabulary, not a sort of it.
func nucleus(c []cand, p float64, weight func(cand) float64) []cand {
	total := 0.0
	for _, x := range c {
		total += weight(x)
	}
	// c[:lo] is in the nucleus and weighs less than it must; the boundary
	// is in c[lo:hi]; need is the weight still missing.
	need := p * total
	lo, hi := 0, len(c)
	for hi-lo > 1 {
		j := lo + partition(c[lo:hi])
		mass := 0.0
		for _, x := range c[lo:j] {
			mass += weight(x)
		}
		switch {
		case mass >= need:
			hi = j
		case mass+weight(c[j]) >= need:
			lo, hi = j+1, j+1
		default:
			need -= mass + weight(c[j])
			lo = j + 1
		}
	}
	c = c[:max(hi, 1)]
	slices.SortFunc(c, compare)
	return c
}

func (s *Sampler) all(logits []float32) []cand {
	c := s.cands[:0]
	for i, l := range logits {
		c = append(c, cand{int32(i), l})
	}
	s.cands = c
	return c
}

// better orders candidates most likely first, ties by lower id, so that
// the order is total and every result deterministic.
func better(a, b cand) bool { return a.logit > b.logit || a.logit == b.logit && a.id < b.id }

func compare(a, b cand) int {
	switch {
	case better(a, b):
		return -1
	case better(b, a):
		return 1
	}
	return 0
}

// partition moves the candidates better than a pivot (the median of three)
// before it and the others after it, and returns where the pivot ends.
func partition(c []cand) int {
	last := len(c) - 1
	mid := last / 2
	if better(c[mid], c[0]) {
		c[mid], c[0] = c[0], c[mid]
	}
	if better(c[last], c[0]) {
		c[last], c[0] = c[0], c[last]
	}
	if better(c[last], c[mid]) {
		c[last], c[mid] = c[mid], c[last]
	}
	// c[0] ≻ c[mid] ≻ c[last]: the median goes to the end while the others
	// are moved.
	c[mid], c[last] = c[last], c[mid]
	pivot, j := c[last], 0
	for i := range last {
		if better(c[i], pivot) {
			c[i], c[j] = c[j], c[i]
			j++
		}
	}
	c[j], c[last] = c[last], c[j]
	return j
}

// topN moves the k largest candidates to the front of c, largest first.
func topN(c []cand, k int) {
	lo, hi := 0, len(c)
	for hi-lo > 1 {
		j := lo + partition(c[lo:hi])
		switch {
		case j > k-1:
			hi = j
		case j < k-1:
			lo = j + 1
		default:
			lo = hi
		}
	}
	slices.SortFunc(c[:k], compare)
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// logSumExp is log Σ e^x. The most likely token's probability is e^(max − lse),
// so lse = max − log p(max), with the probabilities from the vector kernels.
func (s *Sampler) logSumExp(x []float32) float32 {
	best := argmax(x)
	mx := x[best]
	if math.IsInf(float64(mx), 0) || mx != mx {
		return mx
	}
	p := s.softmax(x, 1)
	return mx - float32(math.Log(float64(p[best])))
}
