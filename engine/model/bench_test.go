package model

import (
	"os"
	"testing"

	"aigrid/engine/tensor"
)

// BenchmarkDecode measures one decoding step of a small Q8_0 model, alone and
// for a batch of 8 sequences, with its allocations (the step should make
// none that grow with the batch or the sequence).
func BenchmarkDecode(b *testing.B) {
	m := tinyModel(b, Spec{Arch: "qwen2", Quant: "Q8_0", Dim: 512, Layers: 4, FFN: 1536, Heads: 8, KVHeads: 2, Vocab: 4096, Seed: 1})
	pool := tensor.NewPool(2)
	defer pool.Close()
	for _, batch := range []int{1, 8} {
		b.Run(map[int]string{1: "batch1", 8: "batch8"}[batch], func(b *testing.B) {
			w := m.NewWorker(pool)
			steps := make([]Step, batch)
			toks := make([]int32, batch)
			for i := range steps {
				steps[i] = Step{Seq: m.NewSeq(), Tokens: []int32{1, 2, 3, 4, 5, 6, 7, 8}}
			}
			if _, err := w.Forward(steps); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%256 == 255 { // stay well inside the context
					for _, s := range steps {
						s.Seq.Truncate(8)
					}
				}
				for j := range steps {
					toks[j] = int32(10 + i%100)
					steps[j].Tokens = toks[j : j+1]
				}
				if _, err := w.Forward(steps); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkPrefill measures a 128-token prompt of one sequence on the GGUF
// named by AIGRID_BENCH_MODEL (for a profile of prefill alone), for instance
//
//	AIGRID_BENCH_MODEL=DIR/qwen2.5-0.5b-random-q8_0.gguf GOEXPERIMENT=simd \
//	  go test -run - -bench Prefill -cpuprofile cpu.out ./engine/model
func BenchmarkPrefill(b *testing.B) {
	path := os.Getenv("AIGRID_BENCH_MODEL")
	if path == "" {
		b.Skip("set AIGRID_BENCH_MODEL to a GGUF file")
	}
	m, err := Load(path)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	pool := tensor.NewPool(2)
	defer pool.Close()
	w := m.NewWorker(pool)
	toks := make([]int32, 128)
	for i := range toks {
		toks[i] = int32((300 + i*7919%20000) % m.Vocab)
	}
	seq := m.NewSeq()
	b.ResetTimer()
	for range b.N {
		seq.Truncate(0)
		if _, err := w.Forward([]Step{{Seq: seq, Tokens: toks}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(toks))/b.Elapsed().Seconds(), "tokens/s")
}
