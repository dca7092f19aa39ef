package model

import (
	"fmt"
	"math"

	"aigrid/engine/tensor"
)

// Want says which tokens of a step need logits.
type Want uint8

const (
	Last Want = iota // the last token's (prefill, decoding)
	All              // every token's (scoring a text)
	None             // none: the step only fills the cache
)

// Step is one sequence's part of a batch: Tokens go into Seq's cache after
// the tokens already there.
type Step struct {
	Seq    *Seq
	Tokens []int32
	Logits Want
}

// Worker runs forward passes. It owns the scratch memory, reused from one call
// to the next, and is used by one goroutine at a time; a model can have many.
type Worker struct {
	m    *Model
	pool *tensor.Pool

	x, xn, q, k, v, att, gate, up []float32
	rope                          []float32 // per token: RopeDim cos/sin values
	tok                           []tokInfo
	scores                        [][]float32 // per thread
	hidden, logits                []float32
	out                           [][]float32
}

// tokInfo places one token of the batch.
type tokInfo struct {
	seq *Seq
	pos int
}

// NewWorker returns a worker computing on pool.
func (m *Model) NewWorker(pool *tensor.Pool) *Worker {
	return &Worker{m: m, pool: pool, scores: make([][]float32, pool.Threads())}
}

// Forward adds each step's tokens to its sequence and returns, for each step,
// the logits its Logits field asks for (Vocab values per token, token after
// token; nil for None). The returned memory is the worker's and is valid until
// the next call. A bad batch (an empty step, an unknown token, a sequence twice
// or past the context) is refused before anything changes.
func (w *Worker) Forward(steps []Step) ([][]float32, error) {
	if err := w.check(steps); err != nil {
		return nil, err
	}
	w.forward(steps, nil)
	return w.out, nil
}

func (w *Worker) check(steps []Step) error {
	if len(steps) == 0 {
		return fmt.Errorf("model: empty batch")
	}
	for i, s := range steps {
		switch {
		case s.Seq == nil || s.Seq.m != w.m:
			return fmt.Errorf("model: step %d: sequence of another model", i)
		case len(s.Tokens) == 0:
			return fmt.Errorf("model: step %d: no tokens", i)
		case s.Seq.Len()+len(s.Tokens) > w.m.Context:
			return fmt.Errorf("model: step %d: %d cached + %d new tokens: %w (%d)", i, s.Seq.Len(), len(s.Tokens), ErrContext, w.m.Context)
		case s.Logits > None:
			return fmt.Errorf("model: step %d: unknown Logits %d", i, s.Logits)
		}
		for _, t := range s.Tokens {
			if t < 0 || int(t) >= w.m.Vocab {
				return fmt.Errorf("model: step %d: token %d is not in the vocabulary of %d", i, t, w.m.Vocab)
			}
		}
		for _, o := range steps[:i] {
			if o.Seq == s.Seq {
				return fmt.Errorf("model: step %d: sequence appears twice in the batch", i)
			}
		}
	}
	return nil
}

// Embed returns the mean of the final hidden states (after the output norm) of
// tokens, L2-normalised: llama.cpp's mean pooling. It uses a sequence of its own.
func (w *Worker) Embed(tokens []int32) ([]float32, error) {
	sum := make([]float32, w.m.Dim)
	seq := w.m.NewSeq()
	defer seq.Free() // its KV mapping goes back at once, not at a later collection
	const chunk = 256
	for i := 0; i < len(tokens) || i == 0; i += chunk {
		step := []Step{{Seq: seq, Tokens: tokens[i:min(i+chunk, len(tokens))], Logits: None}}
		if err := w.check(step); err != nil {
			return nil, err
		}
		w.forward(step, sum)
	}
	norm := float32(math.Sqrt(float64(dot(sum, sum))))
	if norm > 0 {
		for i := range sum {
			sum[i] /= norm
		}
	}
	return sum, nil
}

// forward runs a checked batch. With embed set, it adds every token's final
// hidden state into embed instead of computing logits.
func (w *Worker) forward(steps []Step, embed []float32) {
	m := w.m
	c := &m.Config
	n := 0
	for _, s := range steps {
		n += len(s.Tokens)
	}
	w.x = grow(w.x, n*c.Dim)
	w.xn = grow(w.xn, n*c.Dim)
	w.q = grow(w.q, n*c.QDim())
	w.att = grow(w.att, n*c.QDim())
	w.k = grow(w.k, n*c.KVDim())
	w.v = grow(w.v, n*c.KVDim())
	w.gate = grow(w.gate, n*c.FFN)
	w.up = grow(w.up, n*c.FFN)
	w.rope = grow(w.rope, n*c.RopeDim)
	w.tok = w.tok[:0]

	row := 0
	for _, s := range steps {
		s.Seq.reserve(len(s.Tokens))
		for j, t := range s.Tokens {
			pos := s.Seq.Len() + j
			w.tok = append(w.tok, tokInfo{seq: s.Seq, pos: pos})
			m.ropeTable(w.rope[row*c.RopeDim:(row+1)*c.RopeDim], pos)
			rb := m.embd.Type.RowBytes(c.Dim)
			tensor.Dequantize(m.embd.Type, w.x[row*c.Dim:(row+1)*c.Dim], m.embd.Data[int(t)*rb:(int(t)+1)*rb])
			row++
		}
	}

	for l := range m.layers {
		w.layer(&m.layers[l], l, steps, n)
	}

	for _, s := range steps {
		s.Seq.tokens = append(s.Seq.tokens, s.Tokens...)
	}
	if embed != nil {
		for i := range n {
			rmsNorm(w.xn[:c.Dim], w.x[i*c.Dim:(i+1)*c.Dim], m.outNorm, c.Eps)
			axpy(embed, 1, w.xn[:c.Dim])
		}
		return
	}
	w.logitsOf(steps)
}

func (w *Worker) layer(ly *layer, l int, steps []Step, n int) {
	c := &w.m.Config
	dim, qd, kvd, hd := c.Dim, c.QDim(), c.KVDim(), c.HeadDim
	for i := range n {
		rmsNorm(w.xn[i*dim:(i+1)*dim], w.x[i*dim:(i+1)*dim], ly.attnNorm, c.Eps)
	}
	w.pool.MatMuls(w.xn, n, tensor.Product{Out: w.q, W: ly.q}, tensor.Product{Out: w.k, W: ly.k}, tensor.Product{Out: w.v, W: ly.v})
	for i := range n {
		q, k, v := w.q[i*qd:(i+1)*qd], w.k[i*kvd:(i+1)*kvd], w.v[i*kvd:(i+1)*kvd]
		if ly.qBias != nil {
			axpy(q, 1, ly.qBias)
			axpy(k, 1, ly.kBias)
			axpy(v, 1, ly.vBias)
		}
		if ly.qNorm != nil {
			for h := range c.Heads {
				rmsNorm(q[h*hd:(h+1)*hd], q[h*hd:(h+1)*hd], ly.qNorm, c.Eps)
			}
			for h := range c.KVHeads {
				rmsNorm(k[h*hd:(h+1)*hd], k[h*hd:(h+1)*hd], ly.kNorm, c.Eps)
			}
		}
		cs := w.rope[i*c.RopeDim : (i+1)*c.RopeDim]
		rope(q, c.Heads, hd, cs, c.RopeNeox)
		rope(k, c.KVHeads, hd, cs, c.RopeNeox)
	}
	row := 0
	for _, s := range steps {
		nt := len(s.Tokens)
		s.Seq.k[l] = append(s.Seq.k[l], w.k[row*kvd:(row+nt)*kvd]...)
		s.Seq.v[l] = append(s.Seq.v[l], w.v[row*kvd:(row+nt)*kvd]...)
		row += nt
	}
	w.attention(l, n)
	w.pool.MatMul(w.xn, ly.o, w.att, n)
	axpy(w.x[:n*dim], 1, w.xn[:n*dim])

	for i := range n {
		rmsNorm(w.xn[i*dim:(i+1)*dim], w.x[i*dim:(i+1)*dim], ly.ffnNorm, c.Eps)
	}
	w.pool.MatMuls(w.xn, n, tensor.Product{Out: w.gate, W: ly.gate}, tensor.Product{Out: w.up, W: ly.up})
	ffn := c.FFN
	w.pool.Run(n*ffn, 1<<14, func(_, lo, hi int) { tensor.SwiGLU(w.gate[lo:hi], w.up[lo:hi]) })
	w.pool.MatMul(w.xn, ly.down, w.gate, n)
	axpy(w.x[:n*dim], 1, w.xn[:n*dim])
}

// attention computes, for every (token, head), softmax(q·K/√d)·V over the
// token's sequence up to and including its position, in parallel.
func (w *Worker) attention(l, n int) {
	c := &w.m.Config
	heads, hd, kvd := c.Heads, c.HeadDim, c.KVDim()
	group := c.Heads / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	// Grain: enough (token, head) pairs per chunk, about 64k multiply-adds,
	// that a chunk is worth handing to another goroutine.
	work := 0
	for _, t := range w.tok[:n] {
		work += t.pos + 1
	}
	grain := max(1, (1<<15)*n/max(1, work*hd))
	w.pool.Run(n*heads, grain, func(th, lo, hi int) {
		for u := lo; u < hi; u++ {
			i, h := u/heads, u%heads
			t := w.tok[i]
			ks, vs := t.seq.k[l], t.seq.v[l]
			kh := (h / group) * hd
			q := w.q[i*c.QDim()+h*hd : i*c.QDim()+(h+1)*hd]
			sc := grow(w.scores[th], t.pos+1)
			w.scores[th] = sc
			tensor.DotsF32(sc, q, ks[kh:], kvd)
			tensor.SoftmaxF32(sc, scale)
			tensor.SumScaledF32(w.att[i*c.QDim()+h*hd:i*c.QDim()+(h+1)*hd], sc, vs[kh:], kvd)
		}
	})
}

// logitsOf normalises the rows that need logits and multiplies them by the
// output matrix in one product.
func (w *Worker) logitsOf(steps []Step) {
	c := &w.m.Config
	rows := 0
	for _, s := range steps {
		switch s.Logits {
		case Last:
			rows++
		case All:
			rows += len(s.Tokens)
		}
	}
	w.out = w.out[:0]
	w.hidden = grow(w.hidden, rows*c.Dim)
	w.logits = grow(w.logits, rows*c.Vocab)
	r, tok := 0, 0
	for _, s := range steps {
		first, nt := tok, len(s.Tokens)
		tok += nt
		if s.Logits == Last {
			first = tok - 1
		}
		if s.Logits == None {
			continue
		}
		for i := first; i < tok; i++ {
			rmsNorm(w.hidden[r*c.Dim:(r+1)*c.Dim], w.x[i*c.Dim:(i+1)*c.Dim], w.m.outNorm, c.Eps)
			r++
		}
	}
	if rows > 0 {
		w.pool.MatMul(w.logits, w.m.output, w.hidden, rows)
	}
	r = 0
	for _, s := range steps {
		k := 0
		switch s.Logits {
		case Last:
			k = 1
		case All:
			k = len(s.Tokens)
		}
		if k == 0 {
			w.out = append(w.out, nil)
			continue
		}
		w.out = append(w.out, w.logits[r*c.Vocab:(r+k)*c.Vocab:(r+k)*c.Vocab])
		r += k
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
