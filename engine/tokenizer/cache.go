package tokenizer

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// wordCache remembers the tokens of the words merged so far, the first
// maxCached of them (most words of a text are common ones that come back).
// Entries sit one after another in chunks of bytes, word then tokens,
// indexed by an open-addressing table: a full cache holds about 2 MiB where
// a sync.Map of strings and slices held 11. Readers take no lock: an entry
// is written before its slot is published with an atomic store.
type wordCache struct {
	seed   maphash.Seed
	slots  []atomic.Uint32 // tag<<offBits | offset+1 of the entry; 0 when empty
	chunks [maxChunks]atomic.Pointer[[chunkSize]byte]
	full   atomic.Bool

	mu    sync.Mutex // held by writers
	used  int        // bytes of entries written
	words int
}

const (
	maxCached = 1 << 16 // words
	slotBits  = 17      // table of twice maxCached slots
	chunkBits = 16
	chunkSize = 1 << chunkBits
	maxChunks = 32
	offBits   = 22 // offset+1 ≤ maxChunks·chunkSize
	maxWord   = 255
)

// An entry is: word length, token count (a byte each), the word, the tokens
// (little-endian uint32 each).

func newWordCache() *wordCache {
	return &wordCache{seed: maphash.MakeSeed(), slots: make([]atomic.Uint32, 1<<slotBits)}
}

// entry returns the bytes of the entry at offset off.
func (c *wordCache) entry(off uint32) []byte {
	return c.chunks[off>>chunkBits].Load()[off&(chunkSize-1):]
}

// find returns w's entry, or else the empty slot where it would go.
func (c *wordCache) find(w string) (e []byte, slot uint64, tag uint32) {
	h := maphash.String(c.seed, w)
	tag = uint32(h >> (64 - (32 - offBits)))
	const mask = 1<<slotBits - 1
	for i := h & mask; ; i = (i + 1) & mask {
		v := c.slots[i].Load()
		if v == 0 {
			return nil, i, tag
		}
		if v>>offBits != tag {
			continue
		}
		if e := c.entry(v&(1<<offBits-1) - 1); string(e[2:2+int(e[0])]) == w {
			return e, i, tag
		}
	}
}

// get appends w's tokens to out if w is cached.
func (c *wordCache) get(w string, out []int32) ([]int32, bool) {
	if len(w) > maxWord {
		return out, false
	}
	e, _, _ := c.find(w)
	if e == nil {
		return out, false
	}
	ids := e[2+int(e[0]):]
	for j := range int(e[1]) {
		out = append(out, int32(binary.LittleEndian.Uint32(ids[4*j:])))
	}
	return out, true
}

// put caches w's tokens, while there is room.
func (c *wordCache) put(w string, ids []int32) {
	if c.full.Load() || len(w) > maxWord || len(ids) > 255 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, i, tag := c.find(w)
	if e != nil {
		return
	}
	size := 2 + len(w) + 4*len(ids)
	if c.used&(chunkSize-1)+size > chunkSize {
		c.used = (c.used + chunkSize - 1) &^ (chunkSize - 1) // entries do not straddle chunks
	}
	k := c.used >> chunkBits
	if k >= maxChunks || c.words >= maxCached {
		c.full.Store(true)
		return
	}
	if c.chunks[k].Load() == nil {
		c.chunks[k].Store(new([chunkSize]byte))
	}
	e = c.chunks[k].Load()[c.used&(chunkSize-1):]
	e[0], e[1] = byte(len(w)), byte(len(ids))
	copy(e[2:], w)
	for j, id := range ids {
		binary.LittleEndian.PutUint32(e[2+len(w)+4*j:], uint32(id))
	}
	c.slots[i].Store(tag<<offBits | uint32(c.used+1))
	c.used += size
	c.words++
}
