package engine

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"aigrid/engine/model"
	"aigrid/engine/tensor"
)

// BenchmarkStreams measures aggregate decoding through the scheduler: N
// requests with short prompts generating together, against one alone. It
// runs on the GGUF named by AIGRID_BENCH_MODEL, for instance a
// Qwen2.5-0.5B-shaped one from go run ./bench/engine -write-model DIR:
//
//	AIGRID_BENCH_MODEL=DIR/qwen2.5-0.5b-random-q8_0.gguf GOEXPERIMENT=simd \
//	    go test -run - -bench Streams -benchtime 3x ./engine
func BenchmarkStreams(b *testing.B) {
	path := os.Getenv("AIGRID_BENCH_MODEL")
	if path == "" {
		b.Skip("set AIGRID_BENCH_MODEL to a GGUF file")
	}
	m, err := model.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	pool := tensor.NewPool(2)
	defer pool.Close()
	s := New(m, pool, Options{Context: 1024})
	defer s.Close()
	const gen = 32
	// One round: n requests started together, each generating gen tokens.
	round := func(n int) (tokens int, d time.Duration) {
		start := time.Now()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				p := make([]int32, 16)
				for j := range p {
					p[j] = int32((300 + (i*16+j)*7919) % m.Vocab)
				}
				res, err := s.Generate(context.Background(), &Request{Prompt: p, MaxTokens: gen}, func(Output) error { return nil })
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				tokens += res.CompletionTokens
				mu.Unlock()
			})
		}
		wg.Wait()
		return tokens, time.Since(start)
	}
	round(1) // warm the mapping
	// Rounds of 1 and 8 streams alternate, so that a machine shared with
	// other work slows both alike.
	var t1, t8 int
	var d1, d8 time.Duration
	for range b.N {
		n, d := round(1)
		t1, d1 = t1+n, d1+d
		n, d = round(8)
		t8, d8 = t8+n, d8+d
	}
	one, eight := float64(t1)/d1.Seconds(), float64(t8)/d8.Seconds()
	b.ReportMetric(one, "tokens/s(1)")
	b.ReportMetric(eight, "tokens/s(8)")
	b.ReportMetric(eight/one, "ratio")
}
