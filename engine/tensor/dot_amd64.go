//go:build goexperiment.simd && amd64

package tensor

import (
	"encoding/binary"
	"math"
	"simd/archsimd"
	"unsafe"
)

// The AVX2 kernels. They follow llama.cpp's x86 kernels: unsigned×signed byte
// products summed in pairs to int16 (vpmaddubsw), then in pairs to int32
// (vpmaddwd, which also applies the K-quants' sub-block scales), one float
// multiply-add per block. No pair sum can saturate: the unsigned side is at most
// 127 (Q8_0, via |w| and sign(x, w)), 15 (Q4) or 63 (Q6).
//
// Two habits keep them fast with Go 1.26's archsimd:
//   - No scalar float arithmetic between vector instructions: Go compiles it to
//     legacy SSE, which stalls while the upper YMM halves are live (an AVX-SSE
//     transition, measured here at 50× the kernel's cost). Scales are broadcast
//     and multiplied as vectors, and hsum clears the upper halves before
//     returning to scalar code.
//   - Blocks are addressed from base pointers after one length check per call:
//     slicing per block costs more bounds checks and spills than the arithmetic.

func init() {
	if !archsimd.X86.AVX2() || !archsimd.X86.FMA() {
		return
	}
	kern.q8_0 = dotQ8_0AVX2
	kern.q8_0x4 = dotQ8_0x4AVX2
	kern.q8_0r4 = dotQ8_0r4AVX2
	kern.q4_0r4 = dotQ4_0r4AVX2
	kern.q4_Kr4 = dotQ4_Kr4AVX2
	kern.q6_Kr4 = rows4(dotQ6_KAVX2) // a four-row kernel measured no faster
	kern.q8_0t4 = dotQ8_0t4AVX2
	kern.q4_0t4 = dotQ4_0t4AVX2
	kern.q4_Kt4 = dotQ4_Kt4AVX2
	kern.scales4 = rowScales4AVX2
	kern.q4_Kx4 = dotQ4_Kx4AVX2
	kern.q6_Kx4 = dotQ6_Kx4AVX2
	kern.q4_0x4 = dotQ4_0x4AVX2
	kern.q4_0 = dotQ4_0AVX2
	kern.q4_K = dotQ4_KAVX2
	kern.q6_K = dotQ6_KAVX2
	kern.f16 = dotF16AVX2
	kern.bf16 = dotBF16AVX2
	kern.f32 = dotF32AVX2
}

func base[T any](s []T) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(s)) }

func u8x32(p unsafe.Pointer, off int) archsimd.Uint8x32 {
	return archsimd.LoadUint8x32((*[32]uint8)(unsafe.Add(p, off)))
}

func u8x16(p unsafe.Pointer, off int) archsimd.Uint8x16 {
	return archsimd.LoadUint8x16((*[16]uint8)(unsafe.Add(p, off)))
}

func i8x32(p unsafe.Pointer, off int) archsimd.Int8x32 {
	return archsimd.LoadInt8x32((*[32]int8)(unsafe.Add(p, off)))
}

func f32x8(p unsafe.Pointer, off int) archsimd.Float32x8 {
	return archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(p, off)))
}

// f32b broadcasts the float32 at p+off.
func f32b(p unsafe.Pointer, off int) archsimd.Float32x8 {
	return archsimd.BroadcastFloat32x8(*(*float32)(unsafe.Add(p, off)))
}

// halfX8 broadcasts the f16 at p+off as float32, converted as f16Fast does
// (in integer registers, then one vector subtraction).
func halfX8(p unsafe.Pointer, off int) archsimd.Float32x8 {
	h := uint32(*(*uint16)(unsafe.Add(p, off)))
	a, sign := h&0x7fff<<13, h&0x8000<<16
	sub := uint32(int32(a-1<<23) >> 31)
	return archsimd.BroadcastUint32x8((a + 112<<23 + sub&(1<<23)) | sign).AsFloat32x8().
		Sub(archsimd.BroadcastUint32x8(sub & (113<<23 | sign)).AsFloat32x8())
}

// halfConst holds the constants of halfVec, made once per kernel call: Go
// 1.26 rebuilds a broadcast constant at each use inside a loop.
type halfConst struct{ mant, sign, one23, e112 archsimd.Int32x8 }

func newHalfConst() halfConst {
	return halfConst{archsimd.BroadcastInt32x8(0x7fff), archsimd.BroadcastInt32x8(0x8000),
		archsimd.BroadcastInt32x8(1 << 23), archsimd.BroadcastInt32x8(112 << 23)}
}

// halfVec converts the halves in the low 16 bits of u's lanes as f16Fast does.
func (c halfConst) halfVec(u archsimd.Int32x8) archsimd.Float32x8 {
	a := u.And(c.mant).ShiftAllLeft(13)
	sign := u.And(c.sign).ShiftAllLeft(16)
	sub := c.one23.Greater(a).ToInt32x8()
	o := a.Add(c.e112).Add(sub.And(c.one23)).Or(sign)
	return o.AsFloat32x8().Sub(sub.And(sign.Or(c.e112.Add(c.one23))).AsFloat32x8())
}

// halves converts the four halves packed in hs to lanes 0-3 and again 4-7.
// Four normal halves, the usual case, only need their exponents rebiased; a
// zero or subnormal one (some zero exponent field, found with the zero-lane
// trick on the 16-bit lanes) takes halfVec.
func (c halfConst) halves(hs uint64) archsimd.Float32x8 {
	u := archsimd.BroadcastUint64x2(hs).AsUint16x8().ExtendToUint32().AsInt32x8()
	e := hs & 0x7c007c007c007c00
	if (e-0x0400040004000400)&^e&0x8000800080008000 != 0 {
		return c.halfVec(u)
	}
	return u.And(c.mant).ShiftAllLeft(13).Add(c.e112).Or(u.And(c.sign).ShiftAllLeft(16)).AsFloat32x8()
}

// shr16 shifts the 16-bit lanes of v right by n. It shifts arithmetically
// because Go 1.26 materialises the count of a logical right shift with a legacy
// SSE MOVQ (golang/go#80835) while an arithmetic shift takes an immediate; every
// caller masks away the bits where the two differ.
func shr16(v archsimd.Uint8x32, n uint64) archsimd.Uint8x32 {
	return v.AsInt16x16().ShiftAllRight(n).AsUint8x32()
}

// hsum adds the lanes of v, clearing the upper YMM halves for the scalar code
// that follows.
func hsum(v archsimd.Float32x8) float32 {
	var a [8]float32
	v.Store(&a)
	archsimd.ClearAVXUpperBits()
	return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

func checkRow(ok bool) {
	if !ok {
		panic("tensor: row and activations disagree in length")
	}
}

// q8_0Block is block i's product as eight float lanes, before the activation
// scale.
func q8_0Block(wp, xp unsafe.Pointer, i int, ones archsimd.Int16x16) archsimd.Float32x8 {
	wv := u8x32(wp, i*34+2).AsInt8x32()
	p := wv.Abs().AsUint8x32().DotProductPairsSaturated(i8x32(xp, i*QK).CopySign(wv)).DotProductPairs(ones)
	return p.ConvertToFloat32().Mul(halfX8(wp, i*34))
}

func dotQ8_0AVX2(w []byte, qs []int8, d []float32, _ []int16) float32 {
	nb := len(d)
	checkRow(len(w) >= nb*34 && len(qs) >= nb*QK)
	wp, xp, dp := base(w), base(qs), base(d)
	ones := archsimd.BroadcastInt16x16(1)
	var acc0, acc1 archsimd.Float32x8
	i := 0
	// Two blocks a step, with two accumulators, to overlap the dependency chains.
	for ; i+2 <= nb; i += 2 {
		acc0 = q8_0Block(wp, xp, i, ones).MulAdd(f32b(dp, 4*i), acc0)
		acc1 = q8_0Block(wp, xp, i+1, ones).MulAdd(f32b(dp, 4*i+4), acc1)
	}
	if i < nb {
		acc0 = q8_0Block(wp, xp, i, ones).MulAdd(f32b(dp, 4*i), acc0)
	}
	return hsum(acc0.Add(acc1))
}

// dotQ8_0x4AVX2 loads, takes the absolute value of and scales each weight block
// once for four vectors. The four products of a block are reduced by pairwise
// adds to one register, lanes 0-3 and 4-7 each holding half of vectors 0-3, so
// a block costs one conversion and one multiply-add for all four.
func dotQ8_0x4AVX2(w []byte, q *quad, out *[4]float32) {
	nb := len(q.d) / 8
	checkRow(len(w) >= nb*34 && len(q.qs[0]) >= nb*QK && len(q.qs[1]) >= nb*QK &&
		len(q.qs[2]) >= nb*QK && len(q.qs[3]) >= nb*QK)
	wp, dp := base(w), base(q.d)
	x0, x1, x2, x3 := base(q.qs[0]), base(q.qs[1]), base(q.qs[2]), base(q.qs[3])
	ones := archsimd.BroadcastInt16x16(1)
	var acc archsimd.Float32x8
	for i := range nb {
		wv := u8x32(wp, i*34+2).AsInt8x32()
		aw := wv.Abs().AsUint8x32()
		o := i * QK
		p0 := aw.DotProductPairsSaturated(i8x32(x0, o).CopySign(wv)).DotProductPairs(ones)
		p1 := aw.DotProductPairsSaturated(i8x32(x1, o).CopySign(wv)).DotProductPairs(ones)
		p2 := aw.DotProductPairsSaturated(i8x32(x2, o).CopySign(wv)).DotProductPairs(ones)
		p3 := aw.DotProductPairsSaturated(i8x32(x3, o).CopySign(wv)).DotProductPairs(ones)
		h := p0.AddPairsGrouped(p1).AddPairsGrouped(p2.AddPairsGrouped(p3))
		s := halfX8(wp, i*34).Mul(f32x8(dp, 32*i))
		acc = h.ConvertToFloat32().MulAdd(s, acc)
	}
	acc.GetLo().Add(acc.GetHi()).Store(out)
	archsimd.ClearAVXUpperBits()
}

// dotQ8_0r4AVX2 is the mirror of dotQ8_0x4AVX2 for one vector: four rows,
// rowBytes apart from w, against it. Each activation block is loaded once for
// the four rows, whose products are reduced pairwise to one register, so a
// block costs one conversion and one multiply-add for all four rows.
func dotQ8_0r4AVX2(w []byte, rowBytes int, qs []int8, d []float32, _ []int16, out *[4]float32) {
	nb := len(d)
	checkRow(rowBytes >= nb*34 && len(w) >= 3*rowBytes+nb*34 && len(qs) >= nb*QK)
	w0, xp, dp := base(w), base(qs), base(d)
	w1, w2, w3 := unsafe.Add(w0, rowBytes), unsafe.Add(w0, 2*rowBytes), unsafe.Add(w0, 3*rowBytes)
	ones := archsimd.BroadcastInt16x16(1)
	hc := newHalfConst()
	var acc archsimd.Float32x8
	for i := range nb {
		o := i * 34
		x := i8x32(xp, i*QK)
		row := func(wp unsafe.Pointer) archsimd.Int32x8 {
			wv := u8x32(wp, o+2).AsInt8x32()
			return wv.Abs().AsUint8x32().DotProductPairsSaturated(x.CopySign(wv)).DotProductPairs(ones)
		}
		h := row(w0).AddPairsGrouped(row(w1)).AddPairsGrouped(row(w2).AddPairsGrouped(row(w3)))
		// The four rows' f16 scales in lanes 0-3 and again in 4-7, converted
		// as halfX8 does.
		hs := uint64(*(*uint16)(unsafe.Add(w0, o))) | uint64(*(*uint16)(unsafe.Add(w1, o)))<<16 |
			uint64(*(*uint16)(unsafe.Add(w2, o)))<<32 | uint64(*(*uint16)(unsafe.Add(w3, o)))<<48
		dw := hc.halves(hs)
		acc = h.ConvertToFloat32().MulAdd(dw.Mul(f32b(dp, 4*i)), acc)
	}
	acc.GetLo().Add(acc.GetHi()).Store(out)
	archsimd.ClearAVXUpperBits()
}

// rowScales4AVX2 converts the four rows' scales of a block at once, as
// dotQ8_0r4AVX2 does.
func rowScales4AVX2(w []byte, rowBytes, nb, blockBytes int, ws []float32) {
	checkRow(blockBytes >= 2 && rowBytes >= nb*blockBytes && len(w) >= 3*rowBytes+nb*blockBytes && len(ws) >= 4*nb)
	w0, sp := base(w), base(ws)
	w1, w2, w3 := unsafe.Add(w0, rowBytes), unsafe.Add(w0, 2*rowBytes), unsafe.Add(w0, 3*rowBytes)
	hc := newHalfConst()
	for i := range nb {
		o := i * blockBytes
		hs := uint64(*(*uint16)(unsafe.Add(w0, o))) | uint64(*(*uint16)(unsafe.Add(w1, o)))<<16 |
			uint64(*(*uint16)(unsafe.Add(w2, o)))<<32 | uint64(*(*uint16)(unsafe.Add(w3, o)))<<48
		v := hc.halves(hs)
		v.GetLo().Store((*[4]float32)(unsafe.Add(sp, 16*i)))
	}
	archsimd.ClearAVXUpperBits()
}

// dotQ8_0t4AVX2 combines dotQ8_0x4AVX2 and dotQ8_0r4AVX2: each block of four
// rows and of four vectors is loaded once for the sixteen products, which are
// reduced pairwise to one register per row (lanes as in dotQ8_0x4AVX2), so a
// block costs four conversions and four multiply-adds for sixteen products.
func dotQ8_0t4AVX2(w []byte, rowBytes int, ws []float32, q *quad, out *[4][4]float32) {
	nb := len(q.d) / 8
	checkRow(rowBytes >= nb*34 && len(w) >= 3*rowBytes+nb*34 && len(ws) >= 4*nb && len(q.qs[0]) >= nb*QK &&
		len(q.qs[1]) >= nb*QK && len(q.qs[2]) >= nb*QK && len(q.qs[3]) >= nb*QK)
	w0, dp, sp := base(w), base(q.d), base(ws)
	w1, w2, w3 := unsafe.Add(w0, rowBytes), unsafe.Add(w0, 2*rowBytes), unsafe.Add(w0, 3*rowBytes)
	x0, x1, x2, x3 := base(q.qs[0]), base(q.qs[1]), base(q.qs[2]), base(q.qs[3])
	ones := archsimd.BroadcastInt16x16(1)
	var acc0, acc1, acc2, acc3 archsimd.Float32x8
	for i := range nb {
		o := i * QK
		v0, v1, v2, v3 := i8x32(x0, o), i8x32(x1, o), i8x32(x2, o), i8x32(x3, o)
		dx := f32x8(dp, 32*i)
		row := func(wp unsafe.Pointer, r int, acc archsimd.Float32x8) archsimd.Float32x8 {
			wv := u8x32(wp, i*34+2).AsInt8x32()
			aw := wv.Abs().AsUint8x32()
			p0 := aw.DotProductPairsSaturated(v0.CopySign(wv)).DotProductPairs(ones)
			p1 := aw.DotProductPairsSaturated(v1.CopySign(wv)).DotProductPairs(ones)
			h := p0.AddPairsGrouped(p1)
			p2 := aw.DotProductPairsSaturated(v2.CopySign(wv)).DotProductPairs(ones)
			p3 := aw.DotProductPairsSaturated(v3.CopySign(wv)).DotProductPairs(ones)
			h = h.AddPairsGrouped(p2.AddPairsGrouped(p3))
			return h.ConvertToFloat32().MulAdd(f32b(sp, 16*i+4*r).Mul(dx), acc)
		}
		acc0 = row(w0, 0, acc0)
		acc1 = row(w1, 1, acc1)
		acc2 = row(w2, 2, acc2)
		acc3 = row(w3, 3, acc3)
	}
	storeTile(out, acc0, acc1, acc2, acc3)
}

// q4_0Quants unpacks the Q4_0 block at byte offset o (its f16 scale, then
// 16 bytes of nibbles) to its 32 quants, 0-15: the low nibbles are values
// 0-15, the high ones 16-31. mask holds 0x0f in every byte.
func q4_0Quants(wp unsafe.Pointer, o int, mask archsimd.Uint8x32) archsimd.Uint8x32 {
	lo := u8x16(wp, o+2)
	hi := lo.AsInt16x8().ShiftAllRight(4).AsUint8x16() // arithmetic: see shr16
	var q archsimd.Uint8x32
	return q.SetLo(lo).SetHi(hi).And(mask)
}

// q4_0Block is block i's product as eight float lanes, before the activation
// scale. The 16 bytes of nibbles hold values 0-15 low and 16-31 high.
func q4_0Block(wp, xp, sp unsafe.Pointer, i int, mask archsimd.Uint8x32, ones archsimd.Int16x16) archsimd.Float32x8 {
	p := q4_0Quants(wp, i*18, mask).DotProductPairsSaturated(i8x32(xp, i*QK)).DotProductPairs(ones)
	// The quants are stored offset by 8: take Σx from each of the 8 lanes.
	p = p.Sub(archsimd.BroadcastInt32x8(int32(*(*int16)(unsafe.Add(sp, 2*i)))))
	return p.ConvertToFloat32().Mul(halfX8(wp, i*18))
}

func dotQ4_0AVX2(w []byte, qs []int8, d []float32, sums []int16) float32 {
	nb := len(d)
	checkRow(len(w) >= nb*18 && len(qs) >= nb*QK && len(sums) >= nb)
	wp, xp, dp, sp := base(w), base(qs), base(d), base(sums)
	ones := archsimd.BroadcastInt16x16(1)
	mask := archsimd.BroadcastUint8x32(0x0f)
	var acc0, acc1 archsimd.Float32x8
	i := 0
	for ; i+2 <= nb; i += 2 {
		acc0 = q4_0Block(wp, xp, sp, i, mask, ones).MulAdd(f32b(dp, 4*i), acc0)
		acc1 = q4_0Block(wp, xp, sp, i+1, mask, ones).MulAdd(f32b(dp, 4*i+4), acc1)
	}
	if i < nb {
		acc0 = q4_0Block(wp, xp, sp, i, mask, ones).MulAdd(f32b(dp, 4*i), acc0)
	}
	return hsum(acc0.Add(acc1))
}

// reduce4w is the pairwise reduction of four products of Q4_0 nibbles (0-15)
// by quants (at most 127 in magnitude) as vpmaddubsw leaves them: sums of
// eight products stay below 8·15·127 = 15240, so the adds are done on 16-bit
// lanes and one vpmaddwd widens at the end, where 32-bit lanes would need one
// for each product. The lanes come out as AddPairsGrouped leaves four 32-bit
// sums: lane k and k+4 each hold half of product k.
func reduce4w(p0, p1, p2, p3 archsimd.Int16x16, ones archsimd.Int16x16) archsimd.Int32x8 {
	return p0.AddPairsGrouped(p1).AddPairsGrouped(p2.AddPairsGrouped(p3)).DotProductPairs(ones)
}

// dotQ4_0x4AVX2 unpacks each block's nibbles once for four vectors and reduces
// the four products pairwise, as dotQ8_0x4AVX2 does. The nibbles (0-15)
// multiply the activations as unsigned bytes, and the offset of 8 is taken from
// the reduced sums with the quad's offsets, one subtraction a block.
func dotQ4_0x4AVX2(w []byte, q *quad, out *[4]float32) {
	nb := len(q.d) / 8
	checkRow(len(w) >= nb*18 && len(q.offs) >= nb*8 && len(q.qs[0]) >= nb*QK && len(q.qs[1]) >= nb*QK &&
		len(q.qs[2]) >= nb*QK && len(q.qs[3]) >= nb*QK)
	wp, dp, op := base(w), base(q.d), base(q.offs)
	x0, x1, x2, x3 := base(q.qs[0]), base(q.qs[1]), base(q.qs[2]), base(q.qs[3])
	ones := archsimd.BroadcastInt16x16(1)
	mask := archsimd.BroadcastUint8x32(0x0f)
	var acc archsimd.Float32x8
	for i := range nb {
		qv := q4_0Quants(wp, i*18, mask)
		o := i * QK
		p0 := qv.DotProductPairsSaturated(i8x32(x0, o))
		p1 := qv.DotProductPairsSaturated(i8x32(x1, o))
		p2 := qv.DotProductPairsSaturated(i8x32(x2, o))
		p3 := qv.DotProductPairsSaturated(i8x32(x3, o))
		h := reduce4w(p0, p1, p2, p3, ones).Sub(archsimd.LoadInt32x8((*[8]int32)(unsafe.Add(op, 32*i))))
		s := halfX8(wp, i*18).Mul(f32x8(dp, 32*i))
		acc = h.ConvertToFloat32().MulAdd(s, acc)
	}
	acc.GetLo().Add(acc.GetHi()).Store(out)
	archsimd.ClearAVXUpperBits()
}

// dotQ4_0t4AVX2 is dotQ8_0t4AVX2 for Q4_0 weights, with the nibbles and the
// offsets of dotQ4_0x4AVX2.
func dotQ4_0t4AVX2(w []byte, rowBytes int, ws []float32, q *quad, out *[4][4]float32) {
	nb := len(q.d) / 8
	checkRow(rowBytes >= nb*18 && len(w) >= 3*rowBytes+nb*18 && len(ws) >= 4*nb && len(q.offs) >= nb*8 &&
		len(q.qs[0]) >= nb*QK && len(q.qs[1]) >= nb*QK && len(q.qs[2]) >= nb*QK && len(q.qs[3]) >= nb*QK)
	w0, dp, sp, op := base(w), base(q.d), base(ws), base(q.offs)
	w1, w2, w3 := unsafe.Add(w0, rowBytes), unsafe.Add(w0, 2*rowBytes), unsafe.Add(w0, 3*rowBytes)
	x0, x1, x2, x3 := base(q.qs[0]), base(q.qs[1]), base(q.qs[2]), base(q.qs[3])
	ones := archsimd.BroadcastInt16x16(1)
	mask := archsimd.BroadcastUint8x32(0x0f)
	var acc0, acc1, acc2, acc3 archsimd.Float32x8
	for i := range nb {
		o := i * QK
		v0, v1, v2, v3 := i8x32(x0, o), i8x32(x1, o), i8x32(x2, o), i8x32(x3, o)
		dx := f32x8(dp, 32*i)
		off := archsimd.LoadInt32x8((*[8]int32)(unsafe.Add(op, 32*i)))
		row := func(wp unsafe.Pointer, r int, acc archsimd.Float32x8) archsimd.Float32x8 {
			// q4_0Quants written out: called from this closure, Go 1.26's
			// compiler makes the tile 20 times slower (KernelBatch8/Q4_0
			// 13.8 -> 294 us), though it inlines it.
			lo := u8x16(wp, i*18+2)
			hi := lo.AsInt16x8().ShiftAllRight(4).AsUint8x16() // arithmetic: see shr16
			var qv archsimd.Uint8x32
			qv = qv.SetLo(lo).SetHi(hi).And(mask)
			h := reduce4w(qv.DotProductPairsSaturated(v0), qv.DotProductPairsSaturated(v1),
				qv.DotProductPairsSaturated(v2), qv.DotProductPairsSaturated(v3), ones).Sub(off)
			return h.ConvertToFloat32().MulAdd(f32b(sp, 16*i+4*r).Mul(dx), acc)
		}
		acc0 = row(w0, 0, acc0)
		acc1 = row(w1, 1, acc1)
		acc2 = row(w2, 2, acc2)
		acc3 = row(w3, 3, acc3)
	}
	storeTile(out, acc0, acc1, acc2, acc3)
}

// dotQ4_0r4AVX2 is dotQ8_0r4AVX2 for Q4_0 weights: the nibbles (0-15) multiply
// the activations as unsigned bytes, and the offset of 8 is taken from the
// pairwise-reduced sums, where each row's sum is split over two lanes.
func dotQ4_0r4AVX2(w []byte, rowBytes int, qs []int8, d []float32, sums []int16, out *[4]float32) {
	nb := len(d)
	checkRow(rowBytes >= nb*18 && len(w) >= 3*rowBytes+nb*18 && len(qs) >= nb*QK && len(sums) >= nb)
	w0, xp, dp, sp := base(w), base(qs), base(d), base(sums)
	w1, w2, w3 := unsafe.Add(w0, rowBytes), unsafe.Add(w0, 2*rowBytes), unsafe.Add(w0, 3*rowBytes)
	ones := archsimd.BroadcastInt16x16(1)
	mask := archsimd.BroadcastUint8x32(0x0f)
	hc := newHalfConst()
	var acc archsimd.Float32x8
	for i := range nb {
		o := i * 18
		x := i8x32(xp, i*QK)
		row := func(wp unsafe.Pointer) archsimd.Int16x16 {
			return q4_0Quants(wp, o, mask).DotProductPairsSaturated(x)
		}
		h := reduce4w(row(w0), row(w1), row(w2), row(w3), ones)
		h = h.Sub(archsimd.BroadcastInt32x8(4 * int32(*(*int16)(unsafe.Add(sp, 2*i)))))
		hs := uint64(*(*uint16)(unsafe.Add(w0, o))) | uint64(*(*uint16)(unsafe.Add(w1, o)))<<16 |
			uint64(*(*uint16)(unsafe.Add(w2, o)))<<32 | uint64(*(*uint16)(unsafe.Add(w3, o)))<<48
		dw := hc.halves(hs)
		acc = h.ConvertToFloat32().MulAdd(dw.Mul(f32b(dp, 4*i)), acc)
	}
	acc.GetLo().Add(acc.GetHi()).Store(out)
	archsimd.ClearAVXUpperBits()
}

// Shuffles for vpshufb: splat[k] repeats byte k; pairs[k] repeats byte 2k
// eight times, then byte 2k+1.
var splat, pairs [8][16]int8

func init() {
	for k := range 8 {
		for i := range 16 {
			splat[k][i] = int8(k)
			pairs[k][i] = int8(2*k + i/8)
		}
	}
}

// highPairs is pairs for 16 bytes repeated in both 128-bit halves: highPairs[k]
// moves byte 2k into the high byte of the lower eight int16 lanes and byte
// 2k+1 into that of the upper eight, zeroing the low bytes.
var highPairs [8][32]int8

func init() {
	for k := range 8 {
		for i := range 32 {
			highPairs[k][i] = -1
			if i&1 == 1 {
				highPairs[k][i] = int8(2*k + i/16)
			}
		}
	}
}

// scalePairs is what pairs[k] and a sign extension make of the scales, from
// the scales in both halves of v (an arithmetic shift does the extension). It
// keeps the scales in a 256-bit register: Go 1.26 spills a 128-bit one with a
// legacy SSE move, which stalls (see the top of this file).
func scalePairs(v archsimd.Int8x32, k int) archsimd.Int16x16 {
	return v.PermuteOrZeroGrouped(archsimd.LoadInt8x32(&highPairs[k])).AsInt16x16().ShiftAllRight(8)
}

// scale16 spreads scale byte k of v to 16 int16 lanes.
func scale16(v archsimd.Int8x16, k int) archsimd.Int16x16 {
	return v.PermuteOrZero(archsimd.LoadInt8x16(&splat[k])).ExtendToInt16()
}

func dotQ4_KAVX2(w []byte, qs []int8, d []float32, sums []int16) float32 {
	nb := len(d)
	checkRow(len(w) >= nb*144 && len(qs) >= nb*QKK && len(sums) >= nb*16)
	wp, xp, dp, sp := base(w), base(qs), base(d), base(sums)
	mask := archsimd.BroadcastUint8x32(0x0f)
	ones := archsimd.BroadcastInt16x16(1)
	var acc, macc archsimd.Float32x8
	for i := range nb {
		o, xo := i*144, i*QKK
		sc, m := scalesK4(unsafe.Slice((*byte)(unsafe.Add(wp, o+4)), 12))
		scv := archsimd.BroadcastUint64x2(sc).AsInt8x16()
		var dots archsimd.Int32x8
		for j := range 4 {
			q := u8x32(wp, o+16+32*j)
			p0 := q.And(mask).DotProductPairsSaturated(i8x32(xp, xo+64*j)).DotProductPairs(scale16(scv, 2*j))
			p1 := shr16(q, 4).And(mask).DotProductPairsSaturated(i8x32(xp, xo+64*j+32)).DotProductPairs(scale16(scv, 2*j+1))
			dots = dots.Add(p0).Add(p1)
		}
		dx := f32b(dp, 4*i)
		acc = dots.ConvertToFloat32().Mul(halfX8(wp, o)).MulAdd(dx, acc)
		// The minimums: lane j gets m[j]·Σx over sub-block j, from the pair
		// sums of the activations' 16 sums.
		bs := archsimd.LoadInt16x16((*[16]int16)(unsafe.Add(sp, 32*i))).DotProductPairs(ones)
		mv := archsimd.BroadcastUint64x2(m).AsUint8x16().ExtendLo8ToUint32().AsInt32x8()
		macc = bs.Mul(mv).ConvertToFloat32().Mul(halfX8(wp, o+2)).MulAdd(dx, macc)
	}
	return hsum(acc.Sub(macc))
}

// reduce4 packs four rows' eight-lane sums pairwise into one register: lane r
// and lane r+4 each hold half of row r's.
func reduce4(a, b, c, d archsimd.Int32x8) archsimd.Int32x8 {
	return a.AddPairsGrouped(b).AddPairsGrouped(c.AddPairsGrouped(d))
}

// halves4 reads the f16 at offset o of four rows, rowBytes apart, packed for
// halfConst.halves.
func halves4(w0 unsafe.Pointer, rowBytes, o int) uint64 {
	return uint64(*(*uint16)(unsafe.Add(w0, o))) | uint64(*(*uint16)(unsafe.Add(w0, rowBytes+o)))<<16 |
		uint64(*(*uint16)(unsafe.Add(w0, 2*rowBytes+o)))<<32 | uint64(*(*uint16)(unsafe.Add(w0, 3*rowBytes+o)))<<48
}

// dotQ4_Kr4AVX2 is dotQ4_KAVX2 for four rows, rowBytes apart from w: the
// integer sums of each row as there, then the four reduced pairwise to one
// register, so that a super-block's float scaling is done once for the four
// and the activations' sub-block sums are paired once.
func dotQ4_Kr4AVX2(w []byte, rowBytes int, qs []int8, d []float32, sums []int16, out *[4]float32) {
	nb := len(d)
	checkRow(rowBytes >= nb*144 && len(w) >= 3*rowBytes+nb*144 && len(qs) >= nb*QKK && len(sums) >= nb*16)
	w0, xp, dp, sp := base(w), base(qs), base(d), base(sums)
	mask := archsimd.BroadcastUint8x32(0x0f)
	ones := archsimd.BroadcastInt16x16(1)
	hc := newHalfConst()
	var acc, macc archsimd.Float32x8
	for i := range nb {
		o, xo := i*144, i*QKK
		bs := archsimd.LoadInt16x16((*[16]int16)(unsafe.Add(sp, 32*i))).DotProductPairs(ones)
		row := func(r int) (archsimd.Int32x8, archsimd.Int32x8) {
			wp := unsafe.Add(w0, r*rowBytes)
			sc, m := scalesK4(unsafe.Slice((*byte)(unsafe.Add(wp, o+4)), 12))
			scv := archsimd.BroadcastUint64x2(sc).AsInt8x16()
			var dots archsimd.Int32x8
			for j := range 4 {
				q := u8x32(wp, o+16+32*j)
				p0 := q.And(mask).DotProductPairsSaturated(i8x32(xp, xo+64*j)).DotProductPairs(scale16(scv, 2*j))
				p1 := shr16(q, 4).And(mask).DotProductPairsSaturated(i8x32(xp, xo+64*j+32)).DotProductPairs(scale16(scv, 2*j+1))
				dots = dots.Add(p0).Add(p1)
			}
			mv := archsimd.BroadcastUint64x2(m).AsUint8x16().ExtendLo8ToUint32().AsInt32x8()
			return dots, bs.Mul(mv)
		}
		d0, m0 := row(0)
		d1, m1 := row(1)
		d2, m2 := row(2)
		d3, m3 := row(3)
		dx := f32b(dp, 4*i)
		acc = reduce4(d0, d1, d2, d3).ConvertToFloat32().Mul(hc.halves(halves4(w0, rowBytes, o))).MulAdd(dx, acc)
		macc = reduce4(m0, m1, m2, m3).ConvertToFloat32().Mul(hc.halves(halves4(w0, rowBytes, o+2))).MulAdd(dx, macc)
	}
	r := acc.Sub(macc)
	r.GetLo().Add(r.GetHi()).Store(out)
	archsimd.ClearAVXUpperBits()
}

// dotQ4_Kx4AVX2 unpacks each super-block's nibbles and sub-block scales once
// for four vectors.
func dotQ4_Kx4AVX2(w []byte, q *quad, out *[4]float32) {
	nb := len(q.d) / 8
	ok := len(w) >= nb*144
	for k := range 4 {
		ok = ok && len(q.qs[k]) >= nb*QKK && len(q.sums[k]) >= nb*16
	}
	checkRow(ok)
	wp, dp := base(w), base(q.d)
	x0, x1, x2, x3 := base(q.qs[0]), base(q.qs[1]), base(q.qs[2]), base(q.qs[3])
	s0, s1, s2, s3 := base(q.sums[0]), base(q.sums[1]), base(q.sums[2]), base(q.sums[3])
	mask := archsimd.BroadcastUint8x32(0x0f)
	ones := archsimd.BroadcastInt16x16(1)
	var a0, a1, a2, a3 archsimd.Float32x8
	for i := range nb {
		o, xo := i*144, i*QKK
		sc, m := scalesK4(unsafe.Slice((*byte)(unsafe.Add(wp, o+4)), 12))
		scv := archsimd.BroadcastUint64x2(sc).AsInt8x16()
		var d0, d1, d2, d3 archsimd.Int32x8
		for j := range 4 {
			qv := u8x32(wp, o+16+32*j)
			lo, hi := qv.And(mask), shr16(qv, 4).And(mask)
			sl, sh := scale16(scv, 2*j), scale16(scv, 2*j+1)
			xl, xh := xo+64*j, xo+64*j+32
			d0 = d0.Add(lo.DotProductPairsSaturated(i8x32(x0, xl)).DotProductPairs(sl)).Add(hi.DotProductPairsSaturated(i8x32(x0, xh)).DotProductPairs(sh))
			d1 = d1.Add(lo.DotProductPairsSaturated(i8x32(x1, xl)).DotProductPairs(sl)).Add(hi.DotProductPairsSaturated(i8x32(x1, xh)).DotProductPairs(sh))
			d2 = d2.Add(lo.DotProductPairsSaturated(i8x32(x2, xl)).DotProductPairs(sl)).Add(hi.DotProductPairsSaturated(i8x32(x2, xh)).DotProductPairs(sh))
			d3 = d3.Add(lo.DotProductPairsSaturated(i8x32(x3, xl)).DotProductPairs(sl)).Add(hi.DotProductPairsSaturated(i8x32(x3, xh)).DotProductPairs(sh))
		}
		// Lane j of the minimums: m[j]·Σx over sub-block j, as in dotQ4_KAVX2.
		dw, dm := halfX8(wp, o), halfX8(wp, o+2)
		mv := archsimd.BroadcastUint64x2(m).AsUint8x16().ExtendLo8ToUint32().AsInt32x8()
		mins := func(sp unsafe.Pointer) archsimd.Float32x8 {
			return archsimd.LoadInt16x16((*[16]int16)(unsafe.Add(sp, 32*i))).DotProductPairs(ones).Mul(mv).ConvertToFloat32().Mul(dm)
		}
		a0 = d0.ConvertToFloat32().Mul(dw).Sub(mins(s0)).MulAdd(f32b(dp, 32*i), a0)
		a1 = d1.ConvertToFloat32().Mul(dw).Sub(mins(s1)).MulAdd(f32b(dp, 32*i+4), a1)
		a2 = d2.ConvertToFloat32().Mul(dw).Sub(mins(s2)).MulAdd(f32b(dp, 32*i+8), a2)
		a3 = d3.ConvertToFloat32().Mul(dw).Sub(mins(s3)).MulAdd(f32b(dp, 32*i+12), a3)
	}
	// Pairwise adds leave lanes 0-3 and 4-7 each with half of vectors 0-3.
	h := a0.AddPairsGrouped(a1).AddPairsGrouped(a2.AddPairsGrouped(a3))
	h.GetLo().Add(h.GetHi()).Store(out)
	archsimd.ClearAVXUpperBits()
}

// Shuffles for vpshufb on 256-bit registers holding the eight Q4_K
// sub-block scales or minimums in the low bytes of both halves: wordSplat[j]
// zero-extends byte j to all sixteen 16-bit lanes; minQuads zero-extends bytes
// 0-3 twice to the lower half's lanes and bytes 4-7 twice to the upper's.
var wordSplat [8][32]int8
var minQuads [32]int8

func init() {
	for i := range 32 {
		minQuads[i] = -1
		if i&1 == 0 {
			minQuads[i] = int8(i/2%4 + 4*(i/16))
		}
		for j := range 8 {
			wordSplat[j][i] = -1
			if i&1 == 0 {
				wordSplat[j][i] = int8(j)
			}
		}
	}
}

// dotQ4_Kt4AVX2 is dotQ4_Kx4AVX2 for four rows, rowBytes apart from w (the
// row scales ws are not used: a super-block's two scales are few beside its
// 256 values). Each row's four integer sums of a super-block are reduced
// pairwise to one register before one conversion and multiply-add (lanes as in
// dotQ8_0x4AVX2), and the minimums of the four vectors come from the
// activations' sub-block sums paired once for the four rows: two vpmaddwd and
// one pairwise add per row instead of four conversions and multiplies.
func dotQ4_Kt4AVX2(w []byte, rowBytes int, _ []float32, q *quad, out *[4][4]float32) {
	nb := len(q.d) / 8
	ok := rowBytes >= nb*144 && len(w) >= 3*rowBytes+nb*144
	for k := range 4 {
		ok = ok && len(q.qs[k]) >= nb*QKK && len(q.sums[k]) >= nb*16
	}
	checkRow(ok)
	w0, dp := base(w), base(q.d)
	w1, w2, w3 := unsafe.Add(w0, rowBytes), unsafe.Add(w0, 2*rowBytes), unsafe.Add(w0, 3*rowBytes)
	x0, x1, x2, x3 := base(q.qs[0]), base(q.qs[1]), base(q.qs[2]), base(q.qs[3])
	s0, s1, s2, s3 := base(q.sums[0]), base(q.sums[1]), base(q.sums[2]), base(q.sums[3])
	mask := archsimd.BroadcastUint8x32(0x0f)
	mq := archsimd.LoadInt8x32(&minQuads)
	var acc0, acc1, acc2, acc3 archsimd.Float32x8
	for i := range nb {
		o, xo := i*144, i*QKK
		sums := func(sp unsafe.Pointer) archsimd.Int16x16 {
			return archsimd.LoadInt16x16((*[16]int16)(unsafe.Add(sp, 32*i)))
		}
		// Sub-block sums (16-bit: at most 2·16·127): vectors 0, 1 and 2, 3,
		// sub-blocks 0-3 in the lower half, 4-7 in the upper.
		p01 := sums(s0).AddPairsGrouped(sums(s1))
		p23 := sums(s2).AddPairsGrouped(sums(s3))
		dx := f32x8(dp, 32*i)
		row := func(wp unsafe.Pointer, acc archsimd.Float32x8) archsimd.Float32x8 {
			sc, m := scalesK4(unsafe.Slice((*byte)(unsafe.Add(wp, o+4)), 12))
			scv := archsimd.BroadcastUint64x4(sc).AsInt8x32()
			var d0, d1, d2, d3 archsimd.Int32x8
			for j := range 4 {
				qv := u8x32(wp, o+16+32*j)
				sl := scv.PermuteOrZeroGrouped(archsimd.LoadInt8x32(&wordSplat[2*j])).AsInt16x16()
				d0, d1, d2, d3 = dot4(qv.And(mask), sl, x0, x1, x2, x3, xo+64*j, d0, d1, d2, d3)
				sh := scv.PermuteOrZeroGrouped(archsimd.LoadInt8x32(&wordSplat[2*j+1])).AsInt16x16()
				d0, d1, d2, d3 = dot4(shr16(qv, 4).And(mask), sh, x0, x1, x2, x3, xo+64*j+32, d0, d1, d2, d3)
			}
			mv := archsimd.BroadcastUint64x4(m).AsInt8x32().PermuteOrZeroGrouped(mq).AsInt16x16()
			mins := p01.DotProductPairs(mv).AddPairsGrouped(p23.DotProductPairs(mv))
			f := reduce4(d0, d1, d2, d3).ConvertToFloat32().Mul(halfX8(wp, o))
			return f.Sub(mins.ConvertToFloat32().Mul(halfX8(wp, o+2))).MulAdd(dx, acc)
		}
		acc0 = row(w0, acc0)
		acc1 = row(w1, acc1)
		acc2 = row(w2, acc2)
		acc3 = row(w3, acc3)
	}
	storeTile(out, acc0, acc1, acc2, acc3)
}

func dotQ6_KAVX2(w []byte, qs []int8, d []float32, sums []int16) float32 {
	nb := len(d)
	checkRow(len(w) >= nb*210 && len(qs) >= nb*QKK && len(sums) >= nb*16)
	wp, xp, dp, sp := base(w), base(qs), base(d), base(sums)
	mask := archsimd.BroadcastUint8x32(0x0f)
	high := archsimd.BroadcastUint8x32(0x30)
	var acc archsimd.Float32x8
	for i := range nb {
		o, xo := i*210, i*QKK
		sc := archsimd.LoadInt8x16((*[16]int8)(unsafe.Add(wp, o+192)))
		var dots archsimd.Int32x8
		for h := range 2 {
			ql0, ql1 := u8x32(wp, o+64*h), u8x32(wp, o+64*h+32)
			qh := u8x32(wp, o+128+32*h)
			// The four groups of 32: low then high nibbles of ql0 and ql1, each
			// with the next two bits of qh moved to bits 4-5.
			q := [4]archsimd.Uint8x32{
				ql0.And(mask).Or(qh.AsUint16x16().ShiftAllLeft(4).AsUint8x32().And(high)),
				ql1.And(mask).Or(qh.AsUint16x16().ShiftAllLeft(2).AsUint8x32().And(high)),
				shr16(ql0, 4).And(mask).Or(qh.And(high)),
				shr16(ql1, 4).And(mask).Or(shr16(qh, 2).And(high)),
			}
			for k := range 4 {
				// One scale per 16 values: the pair sums of the first 16 are
				// the lower eight int16 lanes.
				s := sc.PermuteOrZero(archsimd.LoadInt8x16(&pairs[4*h+k])).ExtendToInt16()
				dots = dots.Add(q[k].DotProductPairsSaturated(i8x32(xp, xo+128*h+32*k)).DotProductPairs(s))
			}
		}
		// The quants are stored offset by 32: subtract 32·Σ scale·Σx.
		off := sc.ExtendToInt16().DotProductPairs(archsimd.LoadInt16x16((*[16]int16)(unsafe.Add(sp, 32*i))))
		dots = dots.Sub(off.ShiftAllLeft(5))
		acc = dots.ConvertToFloat32().Mul(halfX8(wp, o+208)).MulAdd(f32b(dp, 4*i), acc)
	}
	return hsum(acc)
}

// dot4 adds the products of the unpacked weights q, scaled pairwise by s, with
// the 32 quants at offset o of each of four vectors to d0-d3.
func dot4(q archsimd.Uint8x32, s archsimd.Int16x16, x0, x1, x2, x3 unsafe.Pointer, o int, d0, d1, d2, d3 archsimd.Int32x8) (archsimd.Int32x8, archsimd.Int32x8, archsimd.Int32x8, archsimd.Int32x8) {
	return d0.Add(q.DotProductPairsSaturated(i8x32(x0, o)).DotProductPairs(s)),
		d1.Add(q.DotProductPairsSaturated(i8x32(x1, o)).DotProductPairs(s)),
		d2.Add(q.DotProductPairsSaturated(i8x32(x2, o)).DotProductPairs(s)),
		d3.Add(q.DotProductPairsSaturated(i8x32(x3, o)).DotProductPairs(s))
}

// dotQ6_Kx4AVX2 unpacks each super-block's 6-bit quants and scales once for
// four vectors. A super-block's integer sum is at most 256·32·128·127 in
// magnitude, so the four are reduced pairwise to one register before the one
// conversion and multiply-add, as in dotQ8_0x4AVX2.
func dotQ6_Kx4AVX2(w []byte, q *quad, out *[4]float32) {
	nb := len(q.d) / 8
	ok := len(w) >= nb*210
	for k := range 4 {
		ok = ok && len(q.qs[k]) >= nb*QKK && len(q.sums[k]) >= nb*16
	}
	checkRow(ok)
	wp, dp := base(w), base(q.d)
	x0, x1, x2, x3 := base(q.qs[0]), base(q.qs[1]), base(q.qs[2]), base(q.qs[3])
	s0, s1, s2, s3 := base(q.sums[0]), base(q.sums[1]), base(q.sums[2]), base(q.sums[3])
	mask := archsimd.BroadcastUint8x32(0x0f)
	high := archsimd.BroadcastUint8x32(0x30)
	var acc archsimd.Float32x8
	for i := range nb {
		o, xo := i*210, i*QKK
		sc := archsimd.LoadInt8x16((*[16]int8)(unsafe.Add(wp, o+192)))
		var sc2 archsimd.Int8x32
		sc2 = sc2.SetLo(sc).SetHi(sc)
		var d0, d1, d2, d3 archsimd.Int32x8
		for h := range 2 {
			ql0, ql1 := u8x32(wp, o+64*h), u8x32(wp, o+64*h+32)
			qh := u8x32(wp, o+128+32*h)
			xh := xo + 128*h
			// The groups of 32 in the order of dotQ6_KAVX2.
			q0 := ql0.And(mask).Or(qh.AsUint16x16().ShiftAllLeft(4).AsUint8x32().And(high))
			d0, d1, d2, d3 = dot4(q0, scalePairs(sc2, 4*h), x0, x1, x2, x3, xh, d0, d1, d2, d3)
			q1 := ql1.And(mask).Or(qh.AsUint16x16().ShiftAllLeft(2).AsUint8x32().And(high))
			d0, d1, d2, d3 = dot4(q1, scalePairs(sc2, 4*h+1), x0, x1, x2, x3, xh+32, d0, d1, d2, d3)
			q2 := shr16(ql0, 4).And(mask).Or(qh.And(high))
			d0, d1, d2, d3 = dot4(q2, scalePairs(sc2, 4*h+2), x0, x1, x2, x3, xh+64, d0, d1, d2, d3)
			q3 := shr16(ql1, 4).And(mask).Or(shr16(qh, 2).And(high))
			d0, d1, d2, d3 = dot4(q3, scalePairs(sc2, 4*h+3), x0, x1, x2, x3, xh+96, d0, d1, d2, d3)
		}
		// The offset of 32, as in dotQ6_KAVX2, after the pairwise reduction.
		sw := sc2.GetLo().ExtendToInt16()
		off := func(sp unsafe.Pointer) archsimd.Int32x8 {
			return sw.DotProductPairs(archsimd.LoadInt16x16((*[16]int16)(unsafe.Add(sp, 32*i))))
		}
		dots := d0.AddPairsGrouped(d1).AddPairsGrouped(d2.AddPairsGrouped(d3))
		offs := off(s0).AddPairsGrouped(off(s1)).AddPairsGrouped(off(s2).AddPairsGrouped(off(s3)))
		dots = dots.Sub(offs.ShiftAllLeft(5))
		s := halfX8(wp, o+208).Mul(f32x8(dp, 32*i))
		acc = dots.ConvertToFloat32().MulAdd(s, acc)
	}
	acc.GetLo().Add(acc.GetHi()).Store(out)
	archsimd.ClearAVXUpperBits()
}

// f16x8 converts the 8 finite halves at p+off to float32 as f16Fast does. F16
// weights are rarely zero or subnormal, so eight normal halves take a shorter
// way: their exponents rebiased in integers.
func f16x8(p unsafe.Pointer, off int, c halfConst) archsimd.Float32x8 {
	u := u8x16(p, off).AsUint16x8().ExtendToUint32().AsInt32x8()
	a := u.And(c.mant).ShiftAllLeft(13)
	if c.one23.Greater(a).ToBits() != 0 {
		return c.halfVec(u)
	}
	return a.Add(c.e112).Or(u.And(c.sign).ShiftAllLeft(16)).AsFloat32x8()
}

func bf16x8(p unsafe.Pointer, off int) archsimd.Float32x8 {
	return u8x16(p, off).AsUint16x8().ExtendToUint32().ShiftAllLeft(16).AsFloat32x8()
}

func dotF16AVX2(w []byte, x []float32) float32 {
	n := len(x)
	checkRow(len(w) >= 2*n)
	wp, xp := base(w), base(x)
	hc := newHalfConst()
	var a0, a1 archsimd.Float32x8
	i := 0
	for ; i+16 <= n; i += 16 {
		a0 = f16x8(wp, 2*i, hc).MulAdd(f32x8(xp, 4*i), a0)
		a1 = f16x8(wp, 2*i+16, hc).MulAdd(f32x8(xp, 4*i+32), a1)
	}
	s := hsum(a0.Add(a1))
	for ; i < n; i++ {
		s += f16Fast(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s
}

func dotBF16AVX2(w []byte, x []float32) float32 {
	n := len(x)
	checkRow(len(w) >= 2*n)
	wp, xp := base(w), base(x)
	var a0, a1 archsimd.Float32x8
	i := 0
	for ; i+16 <= n; i += 16 {
		a0 = bf16x8(wp, 2*i).MulAdd(f32x8(xp, 4*i), a0)
		a1 = bf16x8(wp, 2*i+16).MulAdd(f32x8(xp, 4*i+32), a1)
	}
	s := hsum(a0.Add(a1))
	for ; i < n; i++ {
		s += BF16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s
}

func dotF32AVX2(w []byte, x []float32) float32 {
	n := len(x)
	checkRow(len(w) >= 4*n)
	wp, xp := base(w), base(x)
	var a0, a1 archsimd.Float32x8
	i := 0
	for ; i+16 <= n; i += 16 {
		a0 = f32x8(wp, 4*i).MulAdd(f32x8(xp, 4*i), a0)
		a1 = f32x8(wp, 4*i+32).MulAdd(f32x8(xp, 4*i+32), a1)
	}
	s := hsum(a0.Add(a1))
	for ; i < n; i++ {
		s += math.Float32frombits(binary.LittleEndian.Uint32(w[4*i:])) * x[i]
	}
	return s
}

// storeTile stores a tile's four row accumulators, each holding the row's
// four vector sums in two halves, and leaves the AVX state clean.
func storeTile(out *[4][4]float32, acc0, acc1, acc2, acc3 archsimd.Float32x8) {
	acc0.GetLo().Add(acc0.GetHi()).Store(&out[0])
	acc1.GetLo().Add(acc1.GetHi()).Store(&out[1])
	acc2.GetLo().Add(acc2.GetHi()).Store(&out[2])
	acc3.GetLo().Add(acc3.GetHi()).Store(&out[3])
	archsimd.ClearAVXUpperBits()
}
