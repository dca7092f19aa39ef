package tokenizer

import (
	"bytes"
	"strings"
	"testing"

	"aigrid/engine/gguf"
	"aigrid/internal/shareddata"
)

// parse writes w and parses it back.
func parse(t *testing.T, w *gguf.Writer) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The flat tables answer as Go maps filled in the file's order would: every
// token's text finds its id (the last of equal texts), other texts none, and
// every merge's pair its first rank and the id of the joined text.
func TestIndexesMatchMaps(t *testing.T) {
	for _, name := range []string{"qwen3", "gemma2"} {
		t.Run(name, func(t *testing.T) {
			tok := tokenizerFor(t, name)
			ids := map[string]int32{}
			for i := range int32(tok.Len()) {
				ids[tok.Token(i)] = i
			}
			for s, want := range ids {
				if id, ok := tok.id(s); !ok || id != want {
					t.Fatalf("id(%q) = %d, %v; want %d", s, id, ok, want)
				}
				if id, ok := tok.id(s + "\x00"); ok {
					t.Fatalf("id(%q) = %d for no token", s+"\x00", id)
				}
			}
			if tok.spm {
				return
			}
			merges := map[uint64]merge{}
			var pairs []uint64
			for a := range int32(tok.Len()) {
				for _, b := range []int32{a, a + 1, 220, 1000} {
					if b < int32(tok.Len()) {
						pairs = append(pairs, pairKey(a, b))
					}
				}
			}
			f := parse(t, mustWriter(t, name))
			list, err := f.Strings("tokenizer.ggml.merges")
			if err != nil {
				t.Fatal(err)
			}
			for rank, m := range list {
				i := strings.IndexByte(m[min(1, len(m)):], ' ') + 1
				if i <= 0 {
					continue
				}
				l, okL := ids[m[:i]]
				r, okR := ids[m[i+1:]]
				id, ok := ids[m[:i]+m[i+1:]]
				k := pairKey(l, r)
				if _, dup := merges[k]; okL && okR && ok && !dup {
					merges[k] = merge{rank: int32(rank), id: id}
					pairs = append(pairs, k)
				}
			}
			for _, k := range pairs {
				want, wok := merges[k]
				got, ok := tok.merges.get(k)
				if ok != wok || got != want {
					t.Fatalf("pair %#x: %+v %v, want %+v %v", k, got, ok, want, wok)
				}
			}
		})
	}
}

func mustWriter(t *testing.T, name string) *gguf.Writer {
	t.Helper()
	for _, v := range vocabs {
		if v.name == name {
			w, err := v.load(shareddata.Require(t, "vocab"))
			if err != nil {
				t.Fatal(err)
			}
			return w
		}
	}
	t.Fatalf("no vocabulary %s", name)
	return nil
}

// Tokens of equal text resolve to the last, a pair merged twice keeps its
// first rank, a merge into no token is left out, and a type outside what
// the tokenizer stores reads as 0, an unknown type, whose text is its piece.
func TestDuplicatesAndOddTypes(t *testing.T) {
	w := gguf.NewWriter()
	setTokenizer(w, "gpt2", "qwen2", []string{"a", "b", "ab", "a", "<x>"}, []int32{1, 1, 1, 1, 1 << 20})
	w.Set("tokenizer.ggml.merges", []string{"a c", "b a", "a b", "a b"})
	tok, err := FromGGUF(parse(t, w))
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tok.id("a"); id != 3 {
		t.Errorf("id(a) = %d, want 3 (the last)", id)
	}
	if got := tok.Encode("ab", false, false); len(got) != 1 || got[0] != 2 {
		t.Errorf("Encode(ab) = %v, want [2]", got)
	}
	if m, ok := tok.merges.get(pairKey(3, 1)); !ok || m != (merge{rank: 2, id: 2}) {
		t.Errorf("merge a b = %+v %v, want its first rank, 2", m, ok)
	}
	if m, ok := tok.merges.get(pairKey(1, 3)); ok {
		t.Errorf("merge b a = %+v, want none (ba is no token)", m)
	}
	if tok.Type(4) != 0 || tok.Decode([]int32{4}, false) != "<x>" {
		t.Errorf("odd type: Type %d, Decode %q", tok.Type(4), tok.Decode([]int32{4}, false))
	}
}
