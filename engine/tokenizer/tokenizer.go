// Package tokenizer turns text into token ids and back, as described by a GGUF
// file's tokenizer.ggml.* metadata, matching llama.cpp: byte-level BPE (model
// "gpt2", with the pre-tokenizer named by tokenizer.ggml.pre) and SentencePiece
// BPE (model "llama", scores-driven, with byte fallback).
package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"aigrid/engine/gguf"
)

// TokenType is a token's type (tokenizer.ggml.token_type), as numbered by llama.cpp.
type TokenType int32

// Token types.
const (
	Normal      TokenType = 1
	Unknown     TokenType = 2
	Control     TokenType = 3
	UserDefined TokenType = 4
	Unused      TokenType = 5
	Byte        TokenType = 6
)

// Tokenizer encodes and decodes text. It is safe for concurrent use.
type Tokenizer struct {
	spm bool // SentencePiece ("llama") rather than byte-level BPE ("gpt2")
	// text holds every token's text as stored in the file: token i is
	// text[textOffs[i]:textOffs[i+1]].
	text     string
	textOffs []uint32
	types    []uint8 // TokenType; 0 for a type outside 0..255
	scores   []float32
	ids      idIndex // token text → id

	// pieces holds every token's decoded bytes: piece i is pieces[offs[i]:offs[i+1]].
	pieces []byte
	offs   []uint32

	bos, eos, unk  int32 // -1 when absent
	eog            map[int32]bool
	addBOS, addEOS bool
	specials       []int32 // control, user-defined and unknown tokens, longest first

	// byte-level BPE
	merges       mergeIndex // (left id, right id) → merge
	byteID       [256]int32 // the token of each single byte, -1 if none
	split        func(s string, words []string) []string
	ignoreMerges bool // a word that is a whole token is not merged (llama3)
	cache        *wordCache

	// SentencePiece
	addSpacePrefix bool
}

// FromGGUF builds the tokenizer that f's metadata describes.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{bos: -1, eos: -1, unk: -1}
	tokens, err := f.StringArray("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	n := tokens.Len()
	if n == 0 || n > 1<<30 {
		return nil, fmt.Errorf("tokenizer: %d tokens", n)
	}
	if err := t.setText(tokens); err != nil {
		return nil, err
	}
	if t.scores, err = optional(f.Float32s("tokenizer.ggml.scores")); err != nil {
		return nil, err
	}
	rawTypes, err := optional(f.Int32s("tokenizer.ggml.token_type"))
	if err != nil {
		return nil, err
	}
	if (t.scores != nil && len(t.scores) != n) || (rawTypes != nil && len(rawTypes) != n) {
		return nil, fmt.Errorf("tokenizer: %d tokens but %d scores and %d token types", n, len(t.scores), len(rawTypes))
	}
	t.types = make([]uint8, n)
	for i := range t.types {
		typ := int32(Normal)
		if rawTypes != nil {
			typ = rawTypes[i]
		}
		if typ == int32(uint8(typ)) { // else 0, like any type unknown here
			t.types[i] = uint8(typ)
		}
	}
	t.indexIDs()

	switch model {
	case "llama":
		t.spm = true
		t.bos, t.eos, t.unk = 1, 2, 0
		t.addBOS, t.addSpacePrefix = true, true
	case "gpt2":
		pre, err := optional(f.String("tokenizer.ggml.pre"))
		if err != nil {
			return nil, err
		}
		if err := t.setPre(pre); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("tokenizer: unsupported tokenizer model %q", model)
	}

	for _, k := range []struct {
		key string
		id  *int32
	}{{"bos_token_id", &t.bos}, {"eos_token_id", &t.eos}, {"unknown_token_id", &t.unk}} {
		if err := tokenID(f, k.key, n, k.id); err != nil {
			return nil, err
		}
	}
	for _, k := range []struct {
		key string
		b   *bool
	}{{"add_bos_token", &t.addBOS}, {"add_eos_token", &t.addEOS}, {"add_space_prefix", &t.addSpacePrefix}} {
		v, err := f.Bool("tokenizer.ggml." + k.key)
		if err == nil {
			*k.b = v
		} else if !errors.Is(err, gguf.ErrMissing) {
			return nil, err
		}
	}
	t.eog = map[int32]bool{}
	for _, key := range []string{"eos_token_id", "eot_token_id", "eom_token_id"} {
		id := int32(-1)
		if err := tokenID(f, key, n, &id); err != nil {
			return nil, err
		}
		if id >= 0 {
			t.eog[id] = true
		}
	}

	for i := range int32(n) {
		typ, s := t.Type(i), t.Token(i)
		if eog, ok := controlLooking[s]; ok {
			typ, t.types[i] = Control, uint8(Control)
			if eog {
				t.eog[i] = true
			}
		}
		if (typ == Control || typ == UserDefined || typ == Unknown) && s != "" {
			t.specials = append(t.specials, i)
		}
	}
	// Longest first, as llama.cpp partitions text on special tokens in that order.
	sort.SliceStable(t.specials, func(a, b int) bool {
		return len(t.Token(t.specials[a])) > len(t.Token(t.specials[b]))
	})

	if t.spm {
		for b := range t.byteID {
			id, ok := t.id(fmt.Sprintf("<0x%02X>", b))
			if !ok {
				id = t.unk
			}
			t.byteID[b] = id
		}
	} else {
		merges, err := f.StringArray("tokenizer.ggml.merges")
		if err != nil {
			return nil, err
		}
		if merges.Len() > 1<<30 {
			return nil, fmt.Errorf("tokenizer: %d merges", merges.Len())
		}
		t.initBPE(merges)
		t.cache = newWordCache()
	}
	t.initPieces()
	return t, nil
}

// controlLooking lists the tokens that llama.cpp recognises by their text and
// makes control tokens whatever their stored type; true marks those that end
// generation.
var controlLooking = map[string]bool{
	"<|eot_id|>": true, "<|im_end|>": true, "<|end|>": true, "<end_of_turn>": true, "<|endoftext|>": true,
	"<|eom_id|>": true, "<EOT>": true, "_<EOT>": true, "<|end_of_text|>": true, "<|return|>": true,
	"<|call|>": true, "<end_of_utterance>": true, "<｜end▁of▁sentence｜>": true,
	"<|fim_prefix|>": false, "<fim-prefix>": false, "<｜fim▁begin｜>": false, "<PRE>": false, "▁<PRE>": false,
	"<|fim_suffix|>": false, "<fim-suffix>": false, "<｜fim▁hole｜>": false, "<SUF>": false, "▁<SUF>": false,
	"<|fim_middle|>": false, "<fim-middle>": false, "<｜fim▁end｜>": false, "<MID>": false, "▁<MID>": false,
	"<|fim_pad|>": false, "<fim-pad>": false, "<PAD>": false,
	"<|fim_repo|>": false, "<|repo_name|>": false, "<fim-repo>": false, "<REPO>": false,
	"<|file_sep|>": false, "<fim-separator>": false,
}

func optional[T any](v T, err error) (T, error) {
	if errors.Is(err, gguf.ErrMissing) {
		return v, nil
	}
	return v, err
}

func tokenID(f *gguf.File, key string, n int, id *int32) error {
	x, err := f.Uint32("tokenizer.ggml." + key)
	if errors.Is(err, gguf.ErrMissing) {
		return nil
	}
	if err != nil {
		return err
	}
	if x >= uint32(n) {
		return fmt.Errorf("tokenizer: %s %d is not a token (vocabulary of %d)", key, x, n)
	}
	*id = int32(x)
	return nil
}

// setText copies the tokens' texts out of the file into one string.
func (t *Tokenizer) setText(tokens gguf.StringArray) error {
	total := 0
	for _, s := range tokens.All() {
		total += len(s)
	}
	if uint64(total) > math.MaxUint32 {
		return fmt.Errorf("tokenizer: %d bytes of token text", total)
	}
	var b strings.Builder
	b.Grow(total)
	t.textOffs = make([]uint32, tokens.Len()+1)
	for i, s := range tokens.All() {
		b.Write(s)
		t.textOffs[i+1] = uint32(b.Len())
	}
	t.text = b.String()
	return nil
}

// Len is the number of tokens in the vocabulary.
func (t *Tokenizer) Len() int { return len(t.types) }

// Token returns the text of token id as stored in the vocabulary.
func (t *Tokenizer) Token(id int32) string { return t.text[t.textOffs[id]:t.textOffs[id+1]] }

// Type returns the type of token id.
func (t *Tokenizer) Type(id int32) TokenType { return TokenType(t.types[id]) }

// BOS is the beginning-of-sequence token, or -1.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS is the end-of-sequence token, or -1.
func (t *Tokenizer) EOS() int32 { return t.eos }

// IsEOG reports whether id ends generation: EOS, EOT, EOM, or a control token
// that ends a turn (<|im_end|>, <|eot_id|>, <end_of_turn>, ...).
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// Encode tokenizes text. addSpecial adds BOS and EOS as the metadata asks;
// parseSpecial recognises control tokens written in the text (<|im_start|>, ...).
// User-defined tokens are always recognised, as in llama.cpp.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	return t.encode(t.partition(text, parseSpecial), addSpecial)
}

// Piece is a part of a text to encode with EncodePieces.
type Piece struct {
	Text string
	// Special marks text whose writer means the control tokens written in it
	// (a chat template's markup); elsewhere, as in what users wrote, they are
	// plain text.
	Special bool
}

// EncodePieces tokenizes the concatenation of pieces, recognising control
// tokens only inside the Special ones (user-defined tokens everywhere, as
// Encode does). The text between two special tokens is tokenized as one
// even when it spans pieces, so that the ids are those of
// Encode(concatenation, addSpecial, true) whenever the other pieces hold no
// control-token text: tokenizing each piece apart would break the merges and
// pre-tokenizer splits across piece boundaries ("\n" + "\n" is not "\n\n").
func (t *Tokenizer) EncodePieces(pieces []Piece, addSpecial bool) []int32 {
	var frags []fragment
	var run strings.Builder
	flush := func() {
		if run.Len() > 0 {
			frags = append(frags, fragment{text: run.String(), id: -1})
			run.Reset()
		}
	}
	for _, p := range pieces {
		for _, fr := range t.partition(p.Text, p.Special) {
			if fr.id < 0 {
				run.WriteString(fr.text)
				continue
			}
			flush()
			frags = append(frags, fr)
		}
	}
	flush()
	return t.encode(frags, addSpecial)
}

// encode tokenizes text fragments and special tokens, with BOS and EOS when
// addSpecial is set and the metadata asks for them.
func (t *Tokenizer) encode(frags []fragment, addSpecial bool) []int32 {
	var out []int32
	if addSpecial && t.addBOS && t.bos >= 0 {
		out = append(out, t.bos)
	}
	prevSpecial := true
	var words []string
	for _, fr := range frags {
		if fr.id >= 0 {
			out = append(out, fr.id)
			prevSpecial = true
			continue
		}
		if t.spm {
			out = t.encodeSPM(fr.text, prevSpecial && t.addSpacePrefix, out)
		} else {
			words = t.split(fr.text, words[:0])
			for _, w := range words {
				out = t.encodeWord(w, out)
			}
		}
		prevSpecial = false
	}
	if addSpecial && t.addEOS && t.eos >= 0 {
		out = append(out, t.eos)
	}
	return out
}

// fragment is a piece of text, or a special token when id >= 0.
type fragment struct {
	text string
	id   int32
}

// partition splits text on special tokens: for each special token, longest
// first, every occurrence in the remaining text fragments becomes a token.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	if text == "" {
		return nil
	}
	frags := []fragment{{text: text, id: -1}}
	var next []fragment
	for _, id := range t.specials {
		if !parseSpecial && t.Type(id) != UserDefined {
			continue
		}
		s := t.Token(id)
		if !strings.Contains(text, s) {
			continue
		}
		next = next[:0]
		for _, fr := range frags {
			if fr.id >= 0 {
				next = append(next, fr)
				continue
			}
			rest := fr.text
			for {
				i := strings.Index(rest, s)
				if i < 0 {
					break
				}
				if i > 0 {
					next = append(next, fragment{text: rest[:i], id: -1})
				}
				next = append(next, fragment{id: id})
				rest = rest[i+len(s):]
			}
			if rest != "" {
				next = append(next, fragment{text: rest, id: -1})
			}
		}
		frags, next = next, frags
	}
	return frags
}
