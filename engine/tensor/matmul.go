package tensor

import "fmt"

// Matrix is a row-major matrix of Rows rows of Cols values of Type, encoded row
// after row in Data; a 2-D tensor of a GGUF file is one, with Cols its first
// dimension.
type Matrix struct {
	Type       Type
	Rows, Cols int
	Data       []byte
}

// Check reports whether m's type and shape fit its data and the products.
func (m Matrix) Check() error {
	switch m.Type {
	case F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K:
	default:
		return fmt.Errorf("tensor: no product for %v weights", m.Type)
	}
	rb := m.Type.RowBytes(m.Cols)
	if m.Rows < 0 || rb < 0 {
		return fmt.Errorf("tensor: %v matrix of %d×%d: columns not a whole number of blocks", m.Type, m.Rows, m.Cols)
	}
	if len(m.Data) != m.Rows*rb {
		return fmt.Errorf("tensor: %v matrix of %d×%d needs %d bytes, has %d", m.Type, m.Rows, m.Cols, m.Rows*rb, len(m.Data))
	}
	return nil
}

// MatVec computes out[r] = Σ_c w[r][c]·x[c].
func (p *Pool) MatVec(out []float32, w Matrix, x []float32) { p.MatMul(out, w, x, 1) }

// MatMul computes the product for a batch of vectors, stored one after another:
// out[b*w.Rows+r] = Σ_c w[r][c]·xs[b*w.Cols+c]. Each weight row is read from
// memory once and used for the whole batch, so a batch costs little more than
// one vector while the weights dominate the traffic.
//
// Quantized weights are multiplied as llama.cpp does: the activations are
// quantized to 8 bits once (blocks of 32 for Q8_0 and Q4_0, Q8_K super-blocks
// for the K-quants) and each block's dot product is an exact integer sum. It
// panics if the shapes disagree or w fails Check.
func (p *Pool) MatMul(out []float32, w Matrix, xs []float32, batch int) {
	if err := w.Check(); err != nil {
		panic(err)
	}
	if batch < 1 || len(xs) != batch*w.Cols || len(out) != batch*w.Rows {
		panic(fmt.Sprintf("tensor: MatMul of %d×%d by %d values into %d, batch %d", w.Rows, w.Cols, len(xs), len(out), batch))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quantize(w, xs, batch)
	p.job = job{w: w, rowBytes: w.Type.RowBytes(w.Cols), out: out, xs: xs, batch: batch, acts: &p.acts}
	p.parallel(w.Rows, p.tiles(p.grain(w)))
	p.job = job{} // drop the references to the caller's memory
}

// Product is one matrix of MatMuls and where its result goes (as MatMul's out).
type Product struct {
	Out []float32
	W   Matrix
}

// MatMuls computes several products of the same activations as one, as MatMul
// computes each: the query, key and value projections, or the gate and up
// projections, share one quantization of the activations and one hand-off to
// the threads, and the small ones no longer leave threads idle. Products that
// differ in Cols or in how their activations are quantized run one after
// another.
func (p *Pool) MatMuls(xs []float32, batch int, ps ...Product) {
	same := true
	for _, q := range ps {
		same = same && q.W.Cols == ps[0].W.Cols && actBlock(q.W.Type) == actBlock(ps[0].W.Type)
	}
	if !same || len(ps) < 2 {
		for _, q := range ps {
			p.MatMul(q.Out, q.W, xs, batch)
		}
		return
	}
	rows := 0
	for _, q := range ps {
		if err := q.W.Check(); err != nil {
			panic(err)
		}
		if batch < 1 || len(xs) != batch*q.W.Cols || len(q.Out) != batch*q.W.Rows {
			panic(fmt.Sprintf("tensor: MatMuls of %d×%d by %d values into %d, batch %d", q.W.Rows, q.W.Cols, len(xs), len(q.Out), batch))
		}
		rows += q.W.Rows
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quantize(ps[0].W, xs, batch)
	p.parts = append(p.parts[:0], ps...)
	p.job = job{xs: xs, batch: batch, acts: &p.acts, parts: p.parts}
	p.parallel(rows, p.tiles(p.grain(Matrix{Type: ps[0].W.Type, Rows: rows, Cols: ps[0].W.Cols})))
	p.job = job{}
	clear(p.parts)
}

// actBlock is the block in which the activations of a product with t are
// quantized (0: not quantized).
func actBlock(t Type) int {
	block, _ := actBlocks(t)
	return block
}

// actBlocks is actBlock and how many values each sum of quants kept with
// the activations covers: a block for the 32-value types, 16 (a K-quant
// sub-block) for the others.
func actBlocks(t Type) (block, sumEvery int) {
	switch t {
	case Q8_0, Q4_0:
		return QK, QK
	case Q4_K, Q6_K:
		return QKK, 16
	}
	return 0, 0
}

// quantize prepares p.acts for products of w's type.
func (p *Pool) quantize(w Matrix, xs []float32, batch int) {
	p.acts.amx.nb = 0
	block, sumEvery := actBlocks(w.Type)
	if block == 0 {
		return
	}
	a := &p.acts
	a.resize(w.Cols*batch, block, sumEvery)
	// A batch's blocks are split among the threads as rows are; a vector or
	// two stays on the caller, where waking the workers would cost more.
	n := w.Cols * batch / block
	p.job = job{fn: func(_, lo, hi int) { a.quantizeBlocks(xs, lo, hi, block, sumEvery) }}
	p.parallel(n, max(8192/block, (n+4*p.threads-1)/(4*p.threads)))
	p.job = job{}
	p.acts.vgroups = p.acts.vgroups[:0]
	if w.Type == Q8_0 && kern.q8_0amx != nil && batch > 1 && w.Cols > 0 {
		// The AMX kernel takes the whole batch, laid out by the threads a
		// block of a group each (two groups or more, else on the caller).
		b := &a.amx
		units := b.resize(w.Cols, batch)
		p.job = job{fn: func(_, lo, hi int) { b.packBlocks(a.qs, a.d, w.Cols, batch, lo, hi) }}
		p.parallel(units, max(2*b.nb, (units+4*p.threads-1)/(4*p.threads)))
		p.job = job{}
		return
	}
	if batch > 1 {
		a.group(w.Cols, batch, block)
	}
	if w.Type == Q8_0 {
		a.packGroups(w.Cols, batch)
	}
}

// grain picks rows per chunk: about eight chunks per thread for balance, each
// at least 16 KiB of weights so that the shared counter stays cold, and one
// chunk in all for matrices too small to repay waking the workers.
func (p *Pool) grain(w Matrix) int {
	rb := max(1, w.Type.RowBytes(w.Cols))
	if w.Rows*rb < 64<<10 || p.threads == 1 {
		return max(1, w.Rows)
	}
	g := (w.Rows + 8*p.threads - 1) / (8 * p.threads)
	return max(g, (16<<10+rb-1)/rb)
}

// tiles rounds a grain up to whole tiles of 16 rows when the AMX kernel
// runs the product, so that only a matrix's last tile can be short.
func (p *Pool) tiles(grain int) int {
	if p.acts.amx.nb > 0 {
		return (grain + 15) / 16 * 16
	}
	return grain
}

// job is one product, split by rows among the threads.
type job struct {
	w           Matrix
	rowBytes    int
	out, xs     []float32
	batch       int
	acts        *acts
	rows, grain int
	fn          func(th, lo, hi int) // instead of a product, for Run
	parts       []Product            // instead of w and out, for MatMuls: rows one after another
}

// partRange runs rows [lo, hi) of the parts' rows one after another.
func (j *job) partRange(sc *scratch, lo, hi int) {
	first := 0
	for _, q := range j.parts {
		n := q.W.Rows
		if lo < first+n && hi > first {
			s := *j
			s.parts = nil
			s.w, s.out, s.rowBytes = q.W, q.Out, q.W.Type.RowBytes(q.W.Cols)
			s.rowRange(sc, max(lo, first)-first, min(hi, first+n)-first)
		}
		first += n
	}
}

// scratch is one thread's memory for the kernels' results (which would escape
// to the heap on every call if declared in rowRange: the kernels are called
// through function values).
type scratch struct {
	o    [4]float32
	t    [4][4]float32
	ws   []float32 // row scales for the tile kernels
	corr []int32   // and corrections for the VNNI kernels
	amx  amxScratch
}

func (j *job) rowRange(sc *scratch, lo, hi int) {
	var dot func(w []byte, qs []int8, d []float32, sums []int16) float32
	var fdot func(w []byte, x []float32) float32
	switch j.w.Type {
	case Q8_0:
		dot = kern.q8_0
	case Q4_0:
		dot = kern.q4_0
	case Q4_K:
		dot = kern.q4_K
	case Q6_K:
		dot = kern.q6_K
	case F16:
		fdot = kern.f16
	case BF16:
		fdot = kern.bf16
	case F32:
		fdot = kern.f32
	}
	rows, cols := j.w.Rows, j.w.Cols
	if fdot != nil {
		for r := lo; r < hi; r++ {
			row := j.w.Data[r*j.rowBytes : (r+1)*j.rowBytes]
			for b := range j.batch {
				j.out[b*rows+r] = fdot(row, j.xs[b*cols:(b+1)*cols])
			}
		}
		return
	}
	a := j.acts
	if a.amx.nb > 0 && j.w.Type == Q8_0 {
		for r := lo; r < hi; r += 16 {
			kern.q8_0amx(j.w.Data[r*j.rowBytes:], j.rowBytes, min(16, hi-r), &a.amx, j.out[r:], rows, &sc.amx)
		}
		return
	}
	nd, ns := len(a.d)/j.batch, len(a.sums)/j.batch
	if r4 := j.rowsKernel(); r4 != nil {
		// Four rows a call: for Q8_0, Q4_0 and Q4_K by four vectors (a last group of two or
		// three padded, see quads), else, and for a last single vector, one
		// vector a call. The four rows are a quarter of the range apart, so
		// that each is read as a long sequential stream of its own: rows side
		// by side would interleave four streams in one page, which the
		// hardware prefetcher does not follow. The last one to three rows are
		// left to the loop below.
		o, t := &sc.o, &sc.t
		lane := (hi - lo) / 4
		stride := lane * j.rowBytes
		t4 := j.tileKernel()
		tiles := t4 != nil
		// The Q8_0 and Q4_0 tiles take the rows' block scales converted once.
		scales := tiles && j.w.Type.BlockSize() == QK
		var ws []float32
		if scales {
			sc.ws = grow(sc.ws, 4*(cols/QK))
			ws = sc.ws
		}
		// Q8_0 batches take the VNNI kernels where the CPU has them (then
		// a.vgroups covers the whole batch).
		vnni := j.w.Type == Q8_0 && len(a.vgroups) > 0
		if vnni {
			j.groupRange(sc, lo, lane)
		}
		for r := lo; r < lo+lane && !vnni; r++ {
			w := j.w.Data[r*j.rowBytes : (r+3*lane+1)*j.rowBytes]
			if scales {
				kern.scales4(w, stride, cols/QK, j.w.Type.BytesPerBlock(), ws)
			}
			b := 0
			for g := 0; tiles && g < len(a.quads); g++ {
				n := min(4, j.batch-4*g)
				if n < 2 {
					break
				}
				t4(w, stride, ws, &a.quads[g], t)
				for i := range 4 {
					for k := range n {
						j.out[(b+k)*rows+r+i*lane] = t[i][k]
					}
				}
				b += n
			}
			for ; b < j.batch; b++ {
				r4(w, stride, a.qs[b*cols:(b+1)*cols], a.d[b*nd:(b+1)*nd], a.sums[b*ns:(b+1)*ns], o)
				for i := range 4 {
					j.out[b*rows+r+i*lane] = o[i]
				}
			}
		}
		lo += 4 * lane
	}
	for r := lo; r < hi; r++ {
		row := j.w.Data[r*j.rowBytes : (r+1)*j.rowBytes]
		b := 0
		if quad := j.quadKernel(); quad != nil {
			// Four vectors a call; a last group of two or three is padded
			// (see quads), a last single vector is left to dot.
			o := &sc.o
			for g := range a.quads {
				if n := min(4, j.batch-4*g); n > 1 {
					quad(row, &a.quads[g], o)
					for k := range n {
						j.out[(b+k)*rows+r] = o[k]
					}
					b += n
				}
			}
		}
		for ; b < j.batch; b++ {
			j.out[b*rows+r] = dot(row, a.qs[b*cols:(b+1)*cols], a.d[b*nd:(b+1)*nd], a.sums[b*ns:(b+1)*ns])
		}
	}
}

// rowsKernel is the kernel that takes four rows at once for this product: for
// one vector, or for Q8_0, Q4_0 and Q4_K any batch (with the tile kernels).
// Q6_K takes a batch a row at a time with the quad kernel.
func (j *job) rowsKernel() func([]byte, int, []int8, []float32, []int16, *[4]float32) {
	switch {
	case j.w.Type == Q8_0:
		return kern.q8_0r4
	case j.w.Type == Q4_0:
		return kern.q4_0r4
	case j.w.Type == Q4_K:
		return kern.q4_Kr4
	case j.batch > 1:
		return nil
	case j.w.Type == Q6_K:
		return kern.q6_Kr4
	}
	return nil
}

// tileKernel is the kernel that takes four rows by four vectors, if the
// product has one and a batch.
func (j *job) tileKernel() func([]byte, int, []float32, *quad, *[4][4]float32) {
	if j.batch < 2 {
		return nil
	}
	switch j.w.Type {
	case Q8_0:
		return kern.q8_0t4
	case Q4_0:
		return kern.q4_0t4
	case Q4_K:
		return kern.q4_Kt4
	}
	return nil
}

// quadKernel is the kernel that takes four vectors at once for this product,
// if one does and the batch has more than one.
func (j *job) quadKernel() func([]byte, *quad, *[4]float32) {
	if j.batch < 2 {
		return nil
	}
	switch j.w.Type {
	case Q8_0:
		return kern.q8_0x4
	case Q4_0:
		return kern.q4_0x4
	case Q4_K:
		return kern.q4_Kx4
	case Q6_K:
		return kern.q6_Kx4
	}
	return nil
}

// quad is four activation vectors for the kernels that take a weight row
// against several at once: their quants, and their block scales interleaved as
// d[8i+k] = d[8i+4+k] = scale of block i of vector k, the lane order in which
// the SIMD kernel reduces the four products of a block.
type quad struct {
	qs   [4][]int8
	sums [4][]int16
	d    []float32
	offs []int32 // blocks of 32: 4·Σx in the lanes of d, the offset of Q4_0's 8 split in two
}

// group splits the batch into quads. A last group of two or three repeats its
// last vector with zero scales: computing a padding vector costs less than the
// single-vector kernel for the others.
func (a *acts) group(cols, batch, block int) {
	nb, ns := cols/block, len(a.sums)/batch
	ng := (batch + 3) / 4
	a.quads = grow(a.quads, ng)
	a.quadD = grow(a.quadD, ng*nb*8)
	if block == QK {
		a.quadOffs = grow(a.quadOffs, ng*nb*8)
	}
	for g := range a.quads {
		q := &a.quads[g]
		q.d = a.quadD[g*nb*8 : (g+1)*nb*8]
		if block == QK {
			q.offs = a.quadOffs[g*nb*8 : (g+1)*nb*8]
		}
		for k := range 4 {
			v := min(4*g+k, batch-1)
			q.qs[k] = a.qs[v*cols : (v+1)*cols]
			q.sums[k] = a.sums[v*ns : (v+1)*ns]
			for i := range nb {
				d := float32(0)
				if 4*g+k < batch {
					d = a.d[v*nb+i]
				}
				q.d[8*i+k], q.d[8*i+4+k] = d, d
				if block == QK {
					o := 4 * int32(a.sums[v*ns+i])
					q.offs[8*i+k], q.offs[8*i+4+k] = o, o
				}
			}
		}
	}
}

// acts is a batch of activation vectors quantized to int8 in blocks, with a
// float32 scale per block and the sum of the quants of every sumEvery values
// (at most 32·127, so int16, which the SIMD kernels multiply pairwise).
type acts struct {
	qs   []int8
	d    []float32
	sums []int16

	quads    []quad    // the batch by fours, when the kernel takes four at once
	quadD    []float32 // the quads' interleaved scales
	quadOffs []int32   // and offsets
	vgroups  []vgroup  // the batch by eights or sixteens, for the VNNI kernels
	amx      amxBatch  // or by sixteens for the AMX kernel, if amx.nb > 0
}

// resize makes room for n values quantized in blocks.
func (a *acts) resize(n, block, sumEvery int) {
	a.qs = grow(a.qs, n)
	a.d = grow(a.d, n/block)
	a.sums = grow(a.sums, n/sumEvery)
}

// quantizeBlocks quantizes blocks [lo, hi) of xs into room made by resize.
func (a *acts) quantizeBlocks(xs []float32, lo, hi, block, sumEvery int) {
	if block == QK && sumEvery == QK {
		kern.quant32(xs[lo*QK:hi*QK], a.qs[lo*QK:hi*QK], a.d[lo:hi], a.sums[lo:hi])
		return
	}
	for i := lo; i < hi; i++ {
		a.d[i] = quantizeBlock8(a.qs[i*block:(i+1)*block], a.sums[i*block/sumEvery:(i+1)*block/sumEvery], xs[i*block:(i+1)*block])
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
