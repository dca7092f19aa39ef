package tokenizer

import (
	"hash/maphash"
	"math/bits"
)

// The vocabulary and the merges are held in flat tables rather than Go maps
// of strings: with the texts in one string, Qwen's tokenizer (151,643 tokens,
// 151,387 merges) holds 9 MiB where maps and strings held 22, and lookups
// stay as fast.

// tableBits sizes an open-addressing table for n entries, at most 5/8 full.
func tableBits(n int) int { return max(4, bits.Len(uint(n+n*3/5))) }

// idIndex finds a token by its text: open addressing with linear probing. A
// slot holds id+1 in its low idBits bits (0 when empty) and the high bits of
// the text's hash above, so that a probe compares texts only when those agree.
type idIndex struct {
	slots  []uint32
	mask   uint64
	idBits uint
	seed   maphash.Seed
}

func newIDIndex(n int) idIndex {
	size := 1 << tableBits(n)
	return idIndex{slots: make([]uint32, size), mask: uint64(size - 1), idBits: uint(bits.Len(uint(n))), seed: maphash.MakeSeed()}
}

// tag is the part of a hash kept in a slot.
func (x *idIndex) tag(h uint64) uint32 { return uint32(h >> (32 + x.idBits)) }

// id returns the token whose text is s.
func (t *Tokenizer) id(s string) (int32, bool) {
	x := &t.ids
	h := maphash.String(x.seed, s)
	tag := x.tag(h)
	for i := h & x.mask; ; i = (i + 1) & x.mask {
		v := x.slots[i]
		if v == 0 {
			return -1, false
		}
		if v>>x.idBits == tag {
			if id := int32(v&(1<<x.idBits-1)) - 1; t.Token(id) == s {
				return id, true
			}
		}
	}
}

// indexIDs indexes every token by its text; of tokens with the same text, the
// last one wins, as when filling a map in order.
func (t *Tokenizer) indexIDs() {
	n := t.Len()
	t.ids = newIDIndex(n)
	x := &t.ids
	for id := range int32(n) {
		s := t.Token(id)
		h := maphash.String(x.seed, s)
		v := x.tag(h)<<x.idBits | uint32(id+1)
		i := h & x.mask
		for ; x.slots[i] != 0; i = (i + 1) & x.mask {
			if old := x.slots[i]; old>>x.idBits == v>>x.idBits && t.Token(int32(old&(1<<x.idBits-1))-1) == s {
				break
			}
		}
		x.slots[i] = v
	}
}

// mergeIndex maps a pair of token ids to their merge: open addressing with
// linear probing over the pair's key, entries in the table itself so that a
// probe reads one cache line.
type mergeIndex struct {
	slots []mergeSlot
	shift uint
}

type mergeSlot struct {
	pair uint64 // pairKey(left, right)
	rank int32  // rank+1; 0 for an empty slot
	id   int32
}

type merge struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// slot is where a key's probe starts: Fibonacci hashing, the high bits of
// the key times 2⁶⁴/φ.
func (x *mergeIndex) slot(key uint64) uint64 { return (key * 0x9E3779B97F4A7C15) >> x.shift }

func newMergeIndex(n int) mergeIndex {
	b := tableBits(n)
	return mergeIndex{slots: make([]mergeSlot, 1<<b), shift: uint(64 - b)}
}

func (x *mergeIndex) get(key uint64) (merge, bool) {
	mask := uint64(len(x.slots) - 1)
	for i := x.slot(key); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.rank == 0 {
			return merge{}, false
		}
		if s.pair == key {
			return merge{rank: s.rank - 1, id: s.id}, true
		}
	}
}

// add stores a merge unless the pair has one already (the earlier rank wins).
func (x *mergeIndex) add(key uint64, m merge) {
	mask := uint64(len(x.slots) - 1)
	for i := x.slot(key); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.rank == 0 {
			*s = mergeSlot{pair: key, rank: m.rank + 1, id: m.id}
			return
		}
		if s.pair == key {
			return
		}
	}
}
