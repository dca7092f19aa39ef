package model

import (
	"testing"
	"time"
)

// Growing the cache keeps every layer's keys and values in place, doubles
// the capacity up to the context, and Free leaves a sequence that grows again.
func TestSeqGrows(t *testing.T) {
	m := tinyModel(t, tiny)
	kv := m.KVDim()
	s := m.NewSeq()
	// add appends n positions as forward does: reserve, then append.
	add := func(n int) {
		s.reserve(n)
		for l := range s.k {
			for range n * kv {
				p := len(s.k[l])
				s.k[l] = append(s.k[l], float32(l*1e4+p))
				s.v[l] = append(s.v[l], -float32(l*1e4+p))
			}
		}
		for range n {
			s.tokens = append(s.tokens, int32(len(s.tokens)))
		}
	}
	check := func(capacity int) {
		t.Helper()
		if got, want := s.Bytes(), capacity*m.KVBytesPerToken(); got != want {
			t.Fatalf("%d positions: Bytes %d, want %d", s.Len(), got, want)
		}
		for l := range s.k {
			if len(s.k[l]) != s.Len()*kv || len(s.v[l]) != s.Len()*kv {
				t.Fatalf("layer %d: %d keys and %d values for %d positions", l, len(s.k[l]), len(s.v[l]), s.Len())
			}
			for p := range s.k[l] {
				if s.k[l][p] != float32(l*1e4+p) || s.v[l][p] != -float32(l*1e4+p) {
					t.Fatalf("layer %d, value %d: key %g, value %g after growing", l, p, s.k[l][p], s.v[l][p])
				}
			}
		}
	}
	add(3)
	check(16)
	add(13)
	check(16)
	add(1)
	check(32)
	s.Truncate(20)
	add(30)
	check(m.Context) // 64, not 2×32 rounded past the context
	s.Free()
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Fatalf("after Free: Len %d, Bytes %d", s.Len(), s.Bytes())
	}
	add(5)
	check(16)
	s.Free()
	s.Free()
}

// Sequences dropped without Free are collected as their mappings pile up,
// though the heap alone would not call for a collection.
func TestSeqPacing(t *testing.T) {
	spec := tiny
	spec.Context = 1 << 16
	m := tinyModel(t, spec)
	const seqs = 40
	per := int64(1<<15) * int64(m.KVBytesPerToken()) // mapped, never touched
	for range seqs {
		m.NewSeq().reserve(1 << 15)
	}
	limit := 2*kvMinGC + 2*per
	for range 500 {
		if kvMapped.Load() <= limit {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d MiB still mapped after dropping %d sequences of %d MiB", kvMapped.Load()>>20, seqs, per>>20)
}
