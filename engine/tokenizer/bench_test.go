package tokenizer

import (
	"bytes"
	"strings"
	"testing"

	"aigrid/engine/gguf"
	"aigrid/internal/shareddata"
)

// Benchmarks on the real vocabularies (skipped without the shared data):
//
//	go test ./engine/tokenizer -run '^$' -bench . -benchmem
//
// Encode goes through the word cache as a server does once warm; Merge
// merges every word afresh (the cache's misses: the merge table and the
// vocabulary lookups); Load parses the file's metadata and builds the
// tokenizer.

// benchText is the corpus, every case once, as one text.
var benchText = strings.Join(append(append([]string(nil), corpus...), specialCorpus...), "\n")

func BenchmarkEncode(b *testing.B) {
	for _, v := range vocabs {
		b.Run(v.name, func(b *testing.B) {
			tok := tokenizerFor(b, v.name)
			b.SetBytes(int64(len(benchText)))
			for b.Loop() {
				tok.Encode(benchText, false, true)
			}
		})
	}
}

func BenchmarkMerge(b *testing.B) {
	for _, v := range vocabs {
		b.Run(v.name, func(b *testing.B) {
			tok := tokenizerFor(b, v.name)
			b.SetBytes(int64(len(benchText)))
			var words []string
			if !tok.spm {
				words = tok.split(benchText, nil)
			}
			var out []int32
			for b.Loop() {
				out = out[:0]
				if tok.spm {
					out = tok.encodeSPM(benchText, true, out)
					continue
				}
				for _, w := range words {
					out = tok.mergeWord(w, out)
				}
			}
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	dir := shareddata.Require(b, "vocab")
	for _, v := range vocabs {
		b.Run(v.name, func(b *testing.B) {
			w, err := v.load(dir)
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := w.WriteTo(&buf); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				f, err := gguf.Parse(buf.Bytes())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := FromGGUF(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
