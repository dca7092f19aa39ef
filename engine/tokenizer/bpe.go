package tokenizer

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"aigrid/engine/gguf"
)

// byteRune is GPT-2's byte-to-unicode mapping: printable Latin-1 bytes stand for
// themselves, the other 68 bytes for U+0100 onwards, so that every token is text.
var byteRune [256]rune

// runeByte inverts byteRune for runes below 0x200 (-1 where none).
var runeByte [0x200]int16

func init() {
	for i := range runeByte {
		runeByte[i] = -1
	}
	n := rune(0)
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			byteRune[b] = rune(b)
		} else {
			byteRune[b] = 0x100 + n
			n++
		}
		runeByte[byteRune[b]] = int16(b)
	}
}

// unmapBytes decodes a byte-level token text to its bytes; ok is false when a
// rune is outside the mapping (then the rune's own UTF-8 is kept).
func unmapBytes(dst []byte, s string) (out []byte, ok bool) {
	ok = true
	for _, r := range s {
		if r < 0x200 && runeByte[r] >= 0 {
			dst = append(dst, byte(runeByte[r]))
		} else {
			dst = utf8.AppendRune(dst, r)
			ok = false
		}
	}
	return dst, ok
}

// setPre picks the pre-tokenizer that tokenizer.ggml.pre names, with llama.cpp's
// per-type settings.
func (t *Tokenizer) setPre(pre string) error {
	switch pre {
	case "llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral":
		t.split, t.ignoreMerges, t.addBOS = splitLlama3, true, true
	case "qwen2", "deepseek-r1-qwen":
		t.split = splitQwen2
	case "smollm":
		t.split = splitSmolLM
	case "", "default", "gpt2", "gpt-2":
		t.split = splitGPT2
	default:
		return fmt.Errorf("tokenizer: unsupported pre-tokenizer %q", pre)
	}
	return nil
}

// initBPE indexes the merges by the ids of their two parts.
func (t *Tokenizer) initBPE(merges gguf.StringArray) {
	var buf [4]byte
	for b := range t.byteID {
		n := utf8.EncodeRune(buf[:], byteRune[b])
		id, ok := t.id(string(buf[:n]))
		if !ok {
			id = -1
		}
		t.byteID[b] = id
	}
	t.merges = newMergeIndex(merges.Len())
	var joined []byte
	for rank, m := range merges.All() {
		// The parts are split at the first space after the first character.
		i := bytes.IndexByte(m[min(1, len(m)):], ' ') + 1
		if i <= 0 {
			continue
		}
		left, okL := t.id(string(m[:i]))
		right, okR := t.id(string(m[i+1:]))
		joined = append(append(joined[:0], m[:i]...), m[i+1:]...)
		id, ok := t.id(string(joined))
		if !okL || !okR || !ok {
			continue
		}
		t.merges.add(pairKey(left, right), merge{rank: int32(rank), id: id})
	}
}

// encodeWord appends the tokens of one pre-tokenized word.
func (t *Tokenizer) encodeWord(w string, out []int32) []int32 {
	if out, ok := t.cache.get(w, out); ok {
		return out
	}
	start := len(out)
	out = t.mergeWord(w, out)
	t.cache.put(w, out[start:])
	return out
}

// bpeSymbol is a run of the word's bytes in a doubly linked list.
type bpeSymbol struct {
	id         int32
	prev, next int32 // -1 at the ends
}

// mergeWord merges the word's bytes pair by pair, lowest rank first (leftmost
// among equals), until no pair of neighbours has a merge.
func (t *Tokenizer) mergeWord(w string, out []int32) []int32 {
	if t.ignoreMerges {
		var buf [64]byte
		mapped := buf[:0]
		for i := 0; i < len(w); i++ {
			mapped = utf8.AppendRune(mapped, byteRune[w[i]])
		}
		if id, ok := t.id(string(mapped)); ok {
			return append(out, id)
		}
	}
	if len(w) == 1 {
		if id := t.byteID[w[0]]; id >= 0 {
			out = append(out, id)
		}
		return out
	}
	syms := make([]bpeSymbol, len(w))
	for i := range syms {
		syms[i] = bpeSymbol{id: t.byteID[w[i]], prev: int32(i - 1), next: int32(i + 1)}
	}
	syms[len(syms)-1].next = -1
	var h minHeap[pairItem]
	push := func(l int32) {
		if l < 0 {
			return
		}
		r := syms[l].next
		if r < 0 || syms[l].id < 0 || syms[r].id < 0 {
			return
		}
		if m, ok := t.merges.get(pairKey(syms[l].id, syms[r].id)); ok {
			h.push(pairItem{rank: m.rank, left: l, right: r, leftID: syms[l].id, rightID: syms[r].id, id: m.id})
		}
	}
	for i := range len(syms) - 1 {
		push(int32(i))
	}
	for len(h) > 0 {
		p := h.pop()
		l, r := &syms[p.left], &syms[p.right]
		// Skip pairs that an earlier merge changed.
		if l.next != p.right || l.id != p.leftID || r.id != p.rightID {
			continue
		}
		l.id, l.next = p.id, r.next
		if r.next >= 0 {
			syms[r.next].prev = p.left
		}
		r.id = -2 // merged away
		push(l.prev)
		push(p.left)
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		if syms[i].id >= 0 {
			out = append(out, syms[i].id)
		}
	}
	return out
}

type pairItem struct {
	rank, left, right int32
	leftID, rightID   int32
	id                int32
}

// less orders candidate merges by rank, then leftmost first.
func (p pairItem) less(o pairItem) bool {
	return p.rank < o.rank || p.rank == o.rank && p.left < o.left
}
