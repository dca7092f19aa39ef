package model

import "slices"

// Seq is the key/value cache of one sequence: for every layer, the keys and the
// values of each cached position (KVDim float32 each), position after position.
// It is not safe for concurrent use.
type Seq struct {
	m      *Model
	k, v   [][]float32 // per layer
	tokens []int32
}

// NewSeq returns an empty sequence. Its cache grows as tokens are added.
func (m *Model) NewSeq() *Seq {
	return &Seq{m: m, k: make([][]float32, m.Layers), v: make([][]float32, m.Layers)}
}

// Len is the number of cached positions.
func (s *Seq) Len() int { return len(s.tokens) }

// Tokens are the cached tokens, in order. The slice is shared: do not modify it.
func (s *Seq) Tokens() []int32 { return s.tokens }

// Truncate keeps the first n positions (n ≤ Len) and drops the rest.
func (s *Seq) Truncate(n int) {
	n = max(0, min(n, len(s.tokens)))
	s.tokens = s.tokens[:n]
	kv := s.m.KVDim()
	for l := range s.k {
		s.k[l] = s.k[l][:n*kv]
		s.v[l] = s.v[l][:n*kv]
	}
}

// Bytes is the memory the cache holds now, counting spare capacity.
func (s *Seq) Bytes() int {
	n := 0
	for l := range s.k {
		n += 4 * (cap(s.k[l]) + cap(s.v[l]))
	}
	return n
}

// Free releases the cache's memory; the sequence is empty afterwards.
func (s *Seq) Free() {
	s.tokens = nil
	clear(s.k)
	clear(s.v)
}

// reserve makes room for n more positions, doubling the capacity (up to the
// context) so that decoding does not reallocate per token.
func (s *Seq) reserve(n int) {
	kv := s.m.KVDim()
	want := (len(s.tokens) + n) * kv
	for l := range s.k {
		if cap(s.k[l]) >= want {
			continue
		}
		c := min(max(want, 2*cap(s.k[l]), 16*kv), s.m.Context*kv)
		s.k[l] = slices.Grow(s.k[l], c-len(s.k[l]))
		s.v[l] = slices.Grow(s.v[l], c-len(s.v[l]))
	}
}
