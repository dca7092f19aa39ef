package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// Qwen2.5-0.5B's matrix shapes, as cols→rows: attention and MLP input (896),
// MLP output (4864), and the output head (896→151936). K-quant rows must be a
// whole number of 256-value super-blocks, which 896 is not (llama.cpp stores
// those tensors as Q5_0/Q8_0 instead), so the K-quants run at 1024 columns.
var benchShapes = []struct{ cols, rows int }{{896, 4864}, {4864, 896}, {896, 151936}}

// benchMatrix tiles a few quantized random rows to the full size: quantizing
// 136M values one by one would dominate the run, and the content does not
// matter to the speed.
func benchMatrix(b *testing.B, typ Type, rows, cols int) Matrix {
	r := rand.New(rand.NewPCG(1, 1))
	const tile = 64
	m, _ := randMatrix(b, r, typ, tile, cols)
	data := make([]byte, rows*typ.RowBytes(cols))
	for off := 0; off < len(data); off += copy(data[off:], m.Data) {
	}
	return Matrix{Type: typ, Rows: rows, Cols: cols, Data: data}
}

func benchCols(typ Type, cols int) int {
	if typ.BlockSize() == QKK && cols%QKK != 0 {
		return (cols + QKK - 1) / QKK * QKK
	}
	return cols
}

// BenchmarkMatVec reports the weights streamed per second (MB/s); this machine's
// roofline is about 34 GB/s on two threads.
func BenchmarkMatVec(b *testing.B) {
	p := NewPool(2)
	defer p.Close()
	for _, typ := range []Type{Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16} {
		for _, s := range benchShapes {
			cols := benchCols(typ, s.cols)
			b.Run(fmt.Sprintf("%v/%dx%d", typ, cols, s.rows), func(b *testing.B) {
				m := benchMatrix(b, typ, s.rows, cols)
				x := randVec(rand.New(rand.NewPCG(2, 2)), cols)
				out := make([]float32, s.rows)
				b.SetBytes(int64(len(m.Data)))
				b.ResetTimer()
				for b.Loop() {
					p.MatVec(out, m, x)
				}
			})
		}
	}
}

// BenchmarkMatMulBatch8 times a batch of 8 against 8 single products in the same
// run and reports the speedup per sequence.
func BenchmarkMatMulBatch8(b *testing.B) {
	const batch = 8
	p := NewPool(2)
	defer p.Close()
	for _, typ := range []Type{Q8_0, Q4_0, Q4_K, Q6_K, F16} {
		cols := benchCols(typ, 896)
		const rows = 4864
		b.Run(fmt.Sprintf("%v/%dx%d", typ, cols, rows), func(b *testing.B) {
			m := benchMatrix(b, typ, rows, cols)
			xs := randVec(rand.New(rand.NewPCG(3, 3)), batch*cols)
			out := make([]float32, batch*rows)
			var one, many time.Duration
			b.SetBytes(int64(len(m.Data)))
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				p.MatVec(out[:rows], m, xs[:cols])
				t1 := time.Now()
				p.MatMul(out, m, xs, batch)
				one += t1.Sub(t0)
				many += time.Since(t1)
			}
			b.ReportMetric(float64(many.Nanoseconds())/float64(b.N)/batch, "ns/seq")
			b.ReportMetric(float64(one)/(float64(many)/batch), "speedup/seq")
		})
	}
}

// BenchmarkKernel times one thread's row dot products on weights that stay in
// cache (a 4864-value row, 16 rows): the compute ceiling of each kernel, which
// must be well above a thread's share of the memory bandwidth for the products
// to be memory-bound.
func BenchmarkKernel(b *testing.B) {
	const cols, rows = 4864, 16
	r := rand.New(rand.NewPCG(4, 4))
	x := randVec(r, cols)
	for _, typ := range []Type{Q8_0, Q4_0, Q4_K, Q6_K, F16, BF16, F32} {
		b.Run(typ.String(), func(b *testing.B) {
			m, _ := randMatrix(b, r, typ, rows, cols)
			out := make([]float32, rows)
			var a acts
			rb := typ.RowBytes(cols)
			j := job{w: m, rowBytes: rb, out: out, xs: x, batch: 1, acts: &a}
			switch typ {
			case Q8_0, Q4_0:
				a.quantize(x, cols, 1, QK, QK)
			case Q4_K, Q6_K:
				a.quantize(x, cols, 1, QKK, 16)
			}
			b.SetBytes(int64(len(m.Data)))
			var sc scratch
			for b.Loop() {
				j.rowRange(&sc, 0, rows)
			}
		})
	}
}

// BenchmarkKernelBatch8 is BenchmarkKernel for a batch of 8 vectors (the
// weights' bytes per second, each used 8 times): the ceiling of decoding 8
// streams and of prefill.
func BenchmarkKernelBatch8(b *testing.B) {
	const cols, rows, batch = 4864, 16, 8
	r := rand.New(rand.NewPCG(4, 4))
	xs := randVec(r, batch*cols)
	for _, typ := range []Type{Q8_0, Q4_0, Q4_K, Q6_K} {
		b.Run(typ.String(), func(b *testing.B) {
			m, _ := randMatrix(b, r, typ, rows, cols)
			var a acts
			block, sums := QK, QK
			if typ.BlockSize() == QKK {
				block, sums = QKK, 16
			}
			a.quantize(xs, cols, batch, block, sums)
			a.group(cols, batch, block)
			if typ == Q8_0 {
				a.packGroups(cols, batch)
			}
			j := job{w: m, rowBytes: typ.RowBytes(cols), out: make([]float32, batch*rows), xs: xs, batch: batch, acts: &a}
			b.SetBytes(int64(len(m.Data)))
			var sc scratch
			for b.Loop() {
				j.rowRange(&sc, 0, rows)
			}
		})
	}
}

// BenchmarkStream sums 256 MiB on two goroutines: the memory bandwidth
// available in this run, the roofline the MatVec figures compare against.
func BenchmarkStream(b *testing.B) {
	buf := make([]uint64, 32<<20)
	for i := range buf {
		buf[i] = uint64(i)
	}
	b.SetBytes(int64(8 * len(buf)))
	var sink [2]uint64
	for b.Loop() {
		done := make(chan struct{})
		for t := range 2 {
			go func() {
				part := buf[t*len(buf)/2 : (t+1)*len(buf)/2]
				var s0, s1, s2, s3 uint64
				for i := 0; i+4 <= len(part); i += 4 {
					s0 += part[i]
					s1 += part[i+1]
					s2 += part[i+2]
					s3 += part[i+3]
				}
				sink[t] = s0 + s1 + s2 + s3
				done <- struct{}{}
			}()
		}
		<-done
		<-done
	}
}
