package tokenizer

// spmSymbol is a run of the text's bytes in a doubly linked list.
type spmSymbol struct {
	start, end int32 // byte range; start < 0 once merged away
	prev, next int32
}

type spmPair struct {
	score       float32
	left, right int32
	size        int32
}

// less puts the best-scoring pair first, leftmost among equals.
func (p spmPair) less(o spmPair) bool {
	return p.score > o.score || p.score == o.score && p.left < o.left
}

// encodeSPM appends the SentencePiece tokens of text: spaces become ▁ (with a
// leading one when prefix is set), then neighbouring symbols are merged, best
// score first, while their concatenation is a token; what is left that is not a
// token falls back to byte tokens <0xNN>.
func (t *Tokenizer) encodeSPM(text string, prefix bool, out []int32) []int32 {
	buf := make([]byte, 0, len(text)+len(text)/2+3)
	if prefix {
		buf = append(buf, "▁"...)
	}
	for i := 0; i < len(text); i++ {
		if text[i] == ' ' {
			buf = append(buf, "▁"...)
		} else {
			buf = append(buf, text[i])
		}
	}
	s := string(buf)
	if s == "" {
		return out
	}
	syms := make([]spmSymbol, 0, len(s))
	for i := 0; i < len(s); {
		// A character is as long as its first byte says (llama.cpp's unicode_len_utf8).
		n := min(len(s)-i, utf8Len(s[i]))
		syms = append(syms, spmSymbol{start: int32(i), end: int32(i + n), prev: int32(len(syms) - 1), next: int32(len(syms) + 1)})
		i += n
	}
	syms[len(syms)-1].next = -1
	var h minHeap[spmPair]
	push := func(l int32) {
		if l < 0 || syms[l].next < 0 {
			return
		}
		r := syms[l].next
		if id, ok := t.id(s[syms[l].start:syms[r].end]); ok {
			h.push(spmPair{score: t.score(id), left: l, right: r, size: syms[r].end - syms[l].start})
		}
	}
	for i := range len(syms) - 1 {
		push(int32(i))
	}
	for len(h) > 0 {
		p := h.pop()
		l, r := &syms[p.left], &syms[p.right]
		if l.start < 0 || r.start < 0 || l.next != p.right || r.end-l.start != p.size {
			continue
		}
		l.end, l.next = r.end, r.next
		if r.next >= 0 {
			syms[r.next].prev = p.left
		}
		r.start = -1
		push(l.prev)
		push(p.left)
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		piece := s[syms[i].start:syms[i].end]
		if id, ok := t.id(piece); ok {
			out = append(out, id)
			continue
		}
		for j := 0; j < len(piece); j++ {
			if id := t.byteID[piece[j]]; id >= 0 {
				out = append(out, id)
			}
		}
	}
	return out
}

func (t *Tokenizer) score(id int32) float32 {
	if t.scores == nil {
		return 0
	}
	return t.scores[id]
}

func utf8Len(b byte) int {
	switch {
	case b < 0x80:
		return 1
	case b>>5 == 0x6:
		return 2
	case b>>4 == 0xE:
		return 3
	case b>>3 == 0x1E:
		return 4
	}
	return 1
}
