package tokenizer

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// initPieces precomputes the bytes that each token decodes to.
func (t *Tokenizer) initPieces() {
	t.offs = make([]uint32, t.Len()+1)
	t.pieces = make([]byte, 0, len(t.text)) // a piece is never longer than its text
	for i := range int32(t.Len()) {
		s := t.Token(i)
		switch typ := t.Type(i); {
		case typ == Byte:
			if b, ok := byteToken(s); ok {
				t.pieces = append(t.pieces, b)
			}
		case t.spm && (typ == Normal || typ == UserDefined):
			// llama.cpp keeps ▁ in user-defined pieces; SentencePiece and a
			// faithful round trip turn it into a space.
			t.pieces = append(t.pieces, strings.ReplaceAll(s, "▁", " ")...)
		case typ == Normal:
			t.pieces, _ = unmapBytes(t.pieces, s)
		case typ == Unused:
		default: // control, user-defined, unknown: their text
			t.pieces = append(t.pieces, s...)
		}
		t.offs[i+1] = uint32(len(t.pieces))
	}
}

// byteToken parses a byte token's text, <0xNN>.
func byteToken(s string) (byte, bool) {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return 0, false
	}
	b, err := strconv.ParseUint(s[3:5], 16, 8)
	return byte(b), err == nil
}

// piece returns the bytes of token id; control and unknown tokens only when
// special is set, as llama.cpp renders them.
func (t *Tokenizer) piece(id int32, special bool) []byte {
	if id < 0 || int(id) >= t.Len() {
		return nil
	}
	if typ := t.Type(id); !special && (typ == Control || typ == Unknown) {
		return nil
	}
	return t.pieces[t.offs[id]:t.offs[id+1]]
}

// Decode returns the text of ids. special renders control tokens' text.
func (t *Tokenizer) Decode(ids []int32, special bool) string {
	d := t.NewDecoder(special)
	var b []byte
	for _, id := range ids {
		b = d.append(b, id)
	}
	return string(append(b, d.pending...))
}

// Decoder turns a stream of tokens into text without ever splitting a UTF-8
// character: bytes of an incomplete character wait for the next tokens.
type Decoder struct {
	t       *Tokenizer
	special bool
	started bool // some text was produced
	pending []byte
}

// NewDecoder returns a streaming decoder. special renders control tokens' text.
func (t *Tokenizer) NewDecoder(special bool) *Decoder {
	return &Decoder{t: t, special: special}
}

// Add decodes one more token and returns the text completed by it.
func (d *Decoder) Add(id int32) string {
	b := d.append(nil, id)
	return string(b)
}

// Flush returns the bytes still held, which can no longer become a complete
// character, and resets the decoder for a new stream.
func (d *Decoder) Flush() string {
	s := string(d.pending)
	d.pending, d.started = d.pending[:0], false
	return s
}

func (d *Decoder) append(dst []byte, id int32) []byte {
	p := d.t.piece(id, d.special)
	if len(p) == 0 {
		return dst
	}
	// SentencePiece added a space before the text; the first one goes.
	if !d.started && d.t.spm && d.t.addSpacePrefix && p[0] == ' ' {
		p = p[1:]
	}
	d.started = true
	d.pending = append(d.pending, p...)
	n := complete(d.pending)
	dst = append(dst, d.pending[:n]...)
	d.pending = d.pending[:copy(d.pending, d.pending[n:])]
	return dst
}

// complete returns the length of the prefix of b that ends on a character
// boundary: a trailing start of a multi-byte character waits for its rest, while
// invalid bytes go through as they are.
func complete(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
