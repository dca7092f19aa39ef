package model

import (
	"runtime"
	"sync/atomic"
)

// Seq is the key/value cache of one sequence: for every layer, the keys and the
// values of each cached position (KVDim float32 each), position after position.
// It is not safe for concurrent use.
//
// The cache lives outside the Go heap (an anonymous mapping where there is
// mmap): the collector lets its heap grow to twice what is live, so a cache in
// it would cost up to twice its size, and each time it doubles the old copy
// would stay resident until a collection. Free returns the mapping at once; a
// Seq dropped without Free returns it when the collector finds it unreachable.
type Seq struct {
	m        *Model
	k, v     [][]float32 // per layer, views of mem
	tokens   []int32
	capacity int // positions that mem holds per layer
	mem      *kvMem
}

// kvMem is a Seq's mapping, apart from the Seq so that a cleanup can release it.
type kvMem struct{ b []float32 }

func (k *kvMem) release() {
	if k.b != nil {
		freeKV(k.b)
		kvPace(-4 * int64(len(k.b)))
		k.b = nil
	}
}

// The collector does not see the mappings, so a program that drops its
// sequences without Free would keep them until some collection that the heap
// alone may take long to call for. As the collector paces the heap, a
// collection starts whenever the mappings of all sequences reach twice what
// they were at their last low (and at least kvMinGC): dropped sequences then
// hold about as much as the live ones, at most.
var kvMapped, kvNextGC atomic.Int64

const kvMinGC = 64 << 20

// kvPace counts n more bytes mapped (fewer when negative).
func kvPace(n int64) {
	total := kvMapped.Add(n)
	next := max(2*total, kvMinGC)
	switch {
	case n < 0 && next < kvNextGC.Load():
		kvNextGC.Store(next)
	case n > 0 && total > max(kvNextGC.Load(), kvMinGC):
		kvNextGC.Store(next)
		go runtime.GC()
	}
}

// NewSeq returns an empty sequence. Its cache grows as tokens are added.
func (m *Model) NewSeq() *Seq {
	s := &Seq{m: m, k: make([][]float32, m.Layers), v: make([][]float32, m.Layers), mem: &kvMem{}}
	runtime.AddCleanup(s, (*kvMem).release, s.mem)
	return s
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
func (s *Seq) Bytes() int { return 4 * len(s.mem.b) }

// Free releases the cache's memory; the sequence is empty afterwards.
func (s *Seq) Free() {
	s.tokens = nil
	clear(s.k)
	clear(s.v)
	s.capacity = 0
	s.mem.release()
}

// reserve makes room for n more positions, doubling the capacity (up to the
// context) so that decoding does not reallocate per token. The layers' keys
// and values are laid out one after the other in one mapping; growing maps a
// new one, copies what is cached and unmaps the old.
func (s *Seq) reserve(n int) {
	want := len(s.tokens) + n
	if want <= s.capacity {
		return
	}
	c := min(max(want, 2*s.capacity, 16), s.m.Context)
	kv := s.m.KVDim()
	per := c * kv
	b := allocKV(2 * len(s.k) * per)
	kvPace(4 * int64(len(b)))
	for l := range s.k {
		k := b[2*l*per : (2*l+1)*per : (2*l+1)*per]
		v := b[(2*l+1)*per : (2*l+2)*per : (2*l+2)*per]
		s.k[l] = k[:copy(k, s.k[l])]
		s.v[l] = v[:copy(v, s.v[l])]
	}
	s.mem.release()
	s.mem.b, s.capacity = b, c
}
