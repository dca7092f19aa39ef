package tensor

import (
	"encoding/binary"
	"math"
)

// The portable kernels. They are the fallback when no SIMD kernel applies and the
// reference the SIMD kernels are tested against; every block's integer sum is
// exact, so both agree up to the order of float additions.

// kernels are the row dot products in use; simd files replace the entries whose
// SIMD versions the CPU can run.
var kern = kernels{
	q8_0:    dotQ8_0Generic,
	q8_0x4:  dotQ8_0x4Generic,
	q8_0r4:  dotQ8_0r4Generic,
	q4_0r4:  rows4(dotQ4_0Generic),
	q4_Kr4:  rows4(dotQ4_KGeneric),
	q6_Kr4:  rows4(dotQ6_KGeneric),
	q8_0t4:  dotQ8_0t4Generic,
	q4_0t4:  dotQ4_0t4Generic,
	q4_Kt4:  tiles4(dotQ4_Kx4Generic),
	scales4: rowScales4Generic,
	quant32: quant32Generic,
	q4_Kx4:  dotQ4_Kx4Generic,
	q6_Kx4:  dotQ6_Kx4Generic,
	q4_0x4:  dotQ4_0x4Generic,
	q4_0:    dotQ4_0Generic,
	q4_K:    dotQ4_KGeneric,
	q6_K:    dotQ6_KGeneric,
	f16:     dotF16Generic,
	bf16:    dotBF16Generic,
	f32:     dotF32Generic,
}

type kernels struct {
	// Quantized weights against quantized activations: w is one row, qs its
	// int8 activations, d their block scales, sums the sums of their quants
	// (per 32 for Q4_0, per 16 for the K-quants).
	q8_0, q4_0, q4_K, q6_K func(w []byte, qs []int8, d []float32, sums []int16) float32
	// One row against four activation vectors at once, so that each weight
	// block is loaded and unpacked once for all four (see quad).
	q8_0x4, q4_0x4, q4_Kx4, q6_Kx4 func(w []byte, q *quad, out *[4]float32)
	// Four rows, rowBytes apart from w, against one vector, so that each
	// activation block is loaded once for all four.
	q8_0r4, q4_0r4, q4_Kr4, q6_Kr4 func(w []byte, rowBytes int, qs []int8, d []float32, sums []int16, out *[4]float32)
	// Four rows, rowBytes apart from w, against four vectors: out[r][k] is
	// row r against vector k. Each block of either side is loaded once; ws
	// holds the rows' block scales as rowScales4 makes them.
	// (Q4_K's take no ws.)
	q8_0t4, q4_0t4, q4_Kt4 func(w []byte, rowBytes int, ws []float32, q *quad, out *[4][4]float32)
	// Four rows against the first n of the eight or sixteen vectors of a
	// vgroup, row r against vector k into out[k·rows+r·lane], with the rows'
	// block scales as scales4 makes them and corrections as corr4 makes them:
	// nil unless the CPU has a kernel for it (vnni_amd64.go).
	q8_0tv func(w []byte, rowBytes int, ws []float32, corr []int32, o *vgroup, out []float32, rows, lane, n int)
	corr4  func(w []byte, rowBytes, nb int, corr []int32)
	// m ≤ 16 rows, rowBytes apart from w, against a batch laid out by
	// amxBatch: row r against vector v into out[v·rows+r]. Nil unless the
	// CPU has AMX-INT8 and the OS lets the process use it
	// (amx_linux_amd64.go).
	q8_0amx func(w []byte, rowBytes, m int, b *amxBatch, out []float32, rows int, s *amxScratch)
	// The block scales of four rows for the tile kernels: ws[4i+r] is row
	// r's block i, for the first nb blocks of blockBytes (a leading f16 scale).
	scales4 func(w []byte, rowBytes, nb, blockBytes int, ws []float32)
	// Activations quantized in blocks of 32 (Q8_0, Q4_0): len(d) blocks of
	// xs into qs, their scales d and the sums of their quants.
	quant32 func(xs []float32, qs []int8, d []float32, sums []int16)
	// Float weights against float activations.
	f16, bf16, f32 func(w []byte, x []float32) float32
}

func dotQ8_0Generic(w []byte, qs []int8, d []float32, _ []int16) float32 {
	sum := float32(0)
	for i, dx := range d {
		b := w[i*34 : i*34+34]
		x := qs[i*QK : i*QK+QK]
		var s0, s1, s2, s3 int32
		for j := 0; j < QK; j += 4 {
			s0 += int32(int8(b[2+j])) * int32(x[j])
			s1 += int32(int8(b[3+j])) * int32(x[j+1])
			s2 += int32(int8(b[4+j])) * int32(x[j+2])
			s3 += int32(int8(b[5+j])) * int32(x[j+3])
		}
		sum += halfScale(b) * dx * float32(s0+s1+s2+s3)
	}
	return sum
}

// dotQ8_0x4Generic does for each vector what dotQ8_0Generic does, in the same
// order of float operations, so a batch gives each vector its result alone.
func dotQ8_0x4Generic(w []byte, q *quad, out *[4]float32) {
	var sum [4]float32
	for i := range len(q.d) / 8 {
		b := w[i*34 : i*34+34]
		x0, x1 := q.qs[0][i*QK:i*QK+QK], q.qs[1][i*QK:i*QK+QK]
		x2, x3 := q.qs[2][i*QK:i*QK+QK], q.qs[3][i*QK:i*QK+QK]
		var s0, s1, s2, s3 int32
		for j, v := range b[2:34] {
			wj := int32(int8(v))
			s0 += wj * int32(x0[j])
			s1 += wj * int32(x1[j])
			s2 += wj * int32(x2[j])
			s3 += wj * int32(x3[j])
		}
		dw, d := halfScale(b), q.d[8*i:8*i+4]
		sum[0] += dw * d[0] * float32(s0)
		sum[1] += dw * d[1] * float32(s1)
		sum[2] += dw * d[2] * float32(s2)
		sum[3] += dw * d[3] * float32(s3)
	}
	*out = sum
}

// dotQ8_0r4Generic does for each row what dotQ8_0Generic does, in the same
// order of float operations, so a row gives the same result in a group of four.
func dotQ8_0r4Generic(w []byte, rowBytes int, qs []int8, d []float32, _ []int16, out *[4]float32) {
	w0, w1, w2, w3 := w[:rowBytes], w[rowBytes:2*rowBytes], w[2*rowBytes:3*rowBytes], w[3*rowBytes:]
	var sum [4]float32
	for i, dx := range d {
		b0, b1, b2, b3 := w0[i*34:i*34+34], w1[i*34:i*34+34], w2[i*34:i*34+34], w3[i*34:i*34+34]
		var s0, s1, s2, s3 int32
		for j, v := range qs[i*QK : i*QK+QK] {
			x := int32(v)
			s0 += int32(int8(b0[2+j])) * x
			s1 += int32(int8(b1[2+j])) * x
			s2 += int32(int8(b2[2+j])) * x
			s3 += int32(int8(b3[2+j])) * x
		}
		sum[0] += halfScale(b0) * dx * float32(s0)
		sum[1] += halfScale(b1) * dx * float32(s1)
		sum[2] += halfScale(b2) * dx * float32(s2)
		sum[3] += halfScale(b3) * dx * float32(s3)
	}
	*out = sum
}

// rows4 makes a four-row kernel of a single-row one, for the portable kernels
// that gain nothing from sharing the activations.
func rows4(dot func([]byte, []int8, []float32, []int16) float32) func([]byte, int, []int8, []float32, []int16, *[4]float32) {
	return func(w []byte, rowBytes int, qs []int8, d []float32, sums []int16, out *[4]float32) {
		for r := range out {
			out[r] = dot(w[r*rowBytes:], qs, d, sums)
		}
	}
}

// tiles4 makes a tile kernel of a four-vector one, for the portable kernels
// that gain nothing from sharing the activations between rows.
func tiles4(dot4 func([]byte, *quad, *[4]float32)) func([]byte, int, []float32, *quad, *[4][4]float32) {
	return func(w []byte, rowBytes int, _ []float32, q *quad, out *[4][4]float32) {
		for r := range out {
			dot4(w[r*rowBytes:], q, &out[r])
		}
	}
}

// rowScales4Generic writes the scales of the first nb Q8_0 blocks of four
// rows, rowBytes apart from w, into ws: ws[4i+r] is row r's block i. A batch's
// products convert them once for all its vectors.
func rowScales4Generic(w []byte, rowBytes, nb, blockBytes int, ws []float32) {
	ws = ws[:4*nb]
	for r := range 4 {
		row := w[r*rowBytes : r*rowBytes+nb*blockBytes]
		for i := range nb {
			ws[4*i+r] = halfScale(row[i*blockBytes:])
		}
	}
}

// dotQ4_0t4Generic does for each row and vector what dotQ4_0Generic does, in
// the same order of float operations.
func dotQ4_0t4Generic(w []byte, rowBytes int, ws []float32, q *quad, out *[4][4]float32) {
	var sum [4][4]float32
	for i := range len(q.d) / 8 {
		for r := range 4 {
			b := w[r*rowBytes+i*18 : r*rowBytes+i*18+18]
			for k := range 4 {
				x := q.qs[k][i*QK : i*QK+QK]
				var s0, s1 int32
				for j := range QK / 2 {
					s0 += int32(b[2+j]&0xf) * int32(x[j])
					s1 += int32(b[2+j]>>4) * int32(x[j+QK/2])
				}
				sum[r][k] += ws[4*i+r] * q.d[8*i+k] * float32(s0+s1-8*int32(q.sums[k][i]))
			}
		}
	}
	*out = sum
}

// dotQ8_0t4Generic does for each row and vector what dotQ8_0Generic does, in
// the same order of float operations.
func dotQ8_0t4Generic(w []byte, rowBytes int, ws []float32, q *quad, out *[4][4]float32) {
	var sum [4][4]float32
	for i := range len(q.d) / 8 {
		var x [4][]int8
		for k := range x {
			x[k] = q.qs[k][i*QK : i*QK+QK]
		}
		d := q.d[8*i : 8*i+4]
		for r := range 4 {
			b := w[r*rowBytes+i*34 : r*rowBytes+i*34+34]
			var s0, s1, s2, s3 int32
			for j, v := range b[2:34] {
				wj := int32(int8(v))
				s0 += wj * int32(x[0][j])
				s1 += wj * int32(x[1][j])
				s2 += wj * int32(x[2][j])
				s3 += wj * int32(x[3][j])
			}
			dw := ws[4*i+r]
			sum[r][0] += dw * d[0] * float32(s0)
			sum[r][1] += dw * d[1] * float32(s1)
			sum[r][2] += dw * d[2] * float32(s2)
			sum[r][3] += dw * d[3] * float32(s3)
		}
	}
	*out = sum
}

func dotQ4_0Generic(w []byte, qs []int8, d []float32, sums []int16) float32 {
	sum := float32(0)
	for i, dx := range d {
		b := w[i*18 : i*18+18]
		x := qs[i*QK : i*QK+QK]
		var s0, s1 int32
		for j := range QK / 2 {
			s0 += int32(b[2+j]&0xf) * int32(x[j])
			s1 += int32(b[2+j]>>4) * int32(x[j+QK/2])
		}
		// The quants are stored offset by 8: Σ(q-8)x = Σqx - 8Σx.
		sum += halfScale(b) * dx * float32(s0+s1-8*int32(sums[i]))
	}
	return sum
}

// dotQ4_0x4Generic does for each vector what dotQ4_0Generic does, in the same
// order of float operations.
func dotQ4_0x4Generic(w []byte, q *quad, out *[4]float32) {
	var sum [4]float32
	for i := range len(q.d) / 8 {
		b := w[i*18 : i*18+18]
		var s [4]int32
		for j, v := range b[2:18] {
			lo, hi := int32(v&0xf), int32(v>>4)
			o := i*QK + j
			for k := range 4 {
				s[k] += lo*int32(q.qs[k][o]) + hi*int32(q.qs[k][o+QK/2])
			}
		}
		for k := range 4 {
			sum[k] += halfScale(b) * q.d[8*i+k] * float32(s[k]-8*int32(q.sums[k][i]))
		}
	}
	*out = sum
}

func dotQ4_KGeneric(w []byte, qs []int8, d []float32, sums []int16) float32 {
	sum := float32(0)
	for i, dx := range d {
		b := w[i*144 : i*144+144]
		x := qs[i*QKK : i*QKK+QKK]
		bs := sums[i*16 : i*16+16]
		var dots, mins int32
		sc, m := scalesK4(b[4:16])
		for j := range QKK / 32 {
			q := b[16+32*(j/2) : 16+32*(j/2)+32]
			xj := x[32*j : 32*j+32]
			shift := 4 * uint(j&1)
			var s0, s1 int32
			for l := 0; l < 32; l += 2 {
				s0 += int32(q[l]>>shift&0xf) * int32(xj[l])
				s1 += int32(q[l+1]>>shift&0xf) * int32(xj[l+1])
			}
			dots += int32(uint8(sc>>(8*j))) * (s0 + s1)
			mins += int32(uint8(m>>(8*j))) * (int32(bs[2*j]) + int32(bs[2*j+1]))
		}
		sum += dx * (halfScale(b)*float32(dots) - f16At(b, 2)*float32(mins))
	}
	return sum
}

// dotQ4_Kx4Generic does for each vector what dotQ4_KGeneric does, in the same
// order of float operations.
func dotQ4_Kx4Generic(w []byte, q *quad, out *[4]float32) {
	var sum [4]float32
	for i := range len(q.d) / 8 {
		b := w[i*144 : i*144+144]
		var dots, mins [4]int32
		sc, m := scalesK4(b[4:16])
		for j := range QKK / 32 {
			qb := b[16+32*(j/2) : 16+32*(j/2)+32]
			shift := 4 * uint(j&1)
			var s [4]int32
			for l, v := range qb {
				wl := int32(v >> shift & 0xf)
				o := i*QKK + 32*j + l
				s[0] += wl * int32(q.qs[0][o])
				s[1] += wl * int32(q.qs[1][o])
				s[2] += wl * int32(q.qs[2][o])
				s[3] += wl * int32(q.qs[3][o])
			}
			for k := range 4 {
				bs := q.sums[k][i*16+2*j : i*16+2*j+2]
				dots[k] += int32(uint8(sc>>(8*j))) * s[k]
				mins[k] += int32(uint8(m>>(8*j))) * (int32(bs[0]) + int32(bs[1]))
			}
		}
		dw, dm := halfScale(b), f16At(b, 2)
		for k := range 4 {
			sum[k] += q.d[8*i+k] * (dw*float32(dots[k]) - dm*float32(mins[k]))
		}
	}
	*out = sum
}

func dotQ6_KGeneric(w []byte, qs []int8, d []float32, sums []int16) float32 {
	sum := float32(0)
	for i, dx := range d {
		b := w[i*210 : i*210+210]
		x := qs[i*QKK : i*QKK+QKK]
		bs := sums[i*16 : i*16+16]
		var dots int32
		for h := range 2 {
			ql := b[64*h : 64*h+64]
			qh := b[128+32*h : 128+32*h+32]
			xh := x[128*h : 128*h+128]
			// Group k of 32 values: low nibbles of ql[0:32], ql[32:64], then
			// high nibbles; bits 2k, 2k+1 of qh.
			for k := range 4 {
				lq := ql[32*(k&1) : 32*(k&1)+32]
				ls, hs := 4*uint(k>>1), 2*uint(k)
				xk := xh[32*k : 32*k+32]
				for g := range 2 {
					s := int32(0)
					for l := 16 * g; l < 16*g+16; l++ {
						s += int32(lq[l]>>ls&0xf|(qh[l]>>hs&3)<<4) * int32(xk[l])
					}
					// Stored offset by 32: Σ(q-32)x = Σqx - 32Σx.
					n := 8*h + 2*k + g
					dots += int32(int8(b[192+n])) * (s - 32*int32(bs[n]))
				}
			}
		}
		sum += dx * f16At(b, 208) * float32(dots)
	}
	return sum
}

// dotQ6_Kx4Generic does for each vector what dotQ6_KGeneric does, in the same
// order of float operations.
func dotQ6_Kx4Generic(w []byte, q *quad, out *[4]float32) {
	var sum [4]float32
	for i := range len(q.d) / 8 {
		b := w[i*210 : i*210+210]
		var dots [4]int32
		for h := range 2 {
			ql := b[64*h : 64*h+64]
			qh := b[128+32*h : 128+32*h+32]
			for k := range 4 {
				lq := ql[32*(k&1) : 32*(k&1)+32]
				ls, hs := 4*uint(k>>1), 2*uint(k)
				for g := range 2 {
					var s [4]int32
					for l := 16 * g; l < 16*g+16; l++ {
						wl := int32(lq[l]>>ls&0xf | (qh[l]>>hs&3)<<4)
						o := i*QKK + 128*h + 32*k + l
						s[0] += wl * int32(q.qs[0][o])
						s[1] += wl * int32(q.qs[1][o])
						s[2] += wl * int32(q.qs[2][o])
						s[3] += wl * int32(q.qs[3][o])
					}
					n := 8*h + 2*k + g
					sc := int32(int8(b[192+n]))
					for v := range 4 {
						dots[v] += sc * (s[v] - 32*int32(q.sums[v][i*16+n]))
					}
				}
			}
		}
		for v := range 4 {
			sum[v] += q.d[8*i+v] * f16At(b, 208) * float32(dots[v])
		}
	}
	*out = sum
}

// halfScale is the f16 scale at the start of a block, converted without
// branches: the products treat the scales as finite.
func halfScale(b []byte) float32 { return f16Fast(binary.LittleEndian.Uint16(b)) }

// f16Fast converts finite half-precision values (normal or subnormal) with
// integer operations and one subtraction, all on normal floats: a route through
// a float32 denormal (bits shifted into place, then multiplied by 2^112) costs
// a microcode assist of about a hundred cycles on x86, and small models' scales
// are often subnormal halves. A normal half only needs its exponent rebiased;
// a subnormal m·2^-24 is built as 2^-14·(1 + m/1024) and 2^-14 taken away.
func f16Fast(h uint16) float32 {
	a := uint32(h&0x7fff) << 13
	sign := uint32(h&0x8000) << 16
	sub := uint32(int32(a-1<<23) >> 31) // all ones when the exponent is 0
	return math.Float32frombits((a+112<<23+sub&(1<<23))|sign) - math.Float32frombits(sub&(113<<23|sign))
}

func dotF16Generic(w []byte, x []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		b := w[2*i : 2*i+8]
		s0 += f16Fast(binary.LittleEndian.Uint16(b[0:])) * x[i]
		s1 += f16Fast(binary.LittleEndian.Uint16(b[2:])) * x[i+1]
		s2 += f16Fast(binary.LittleEndian.Uint16(b[4:])) * x[i+2]
		s3 += f16Fast(binary.LittleEndian.Uint16(b[6:])) * x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += f16Fast(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s0 + s1 + s2 + s3
}

func dotBF16Generic(w []byte, x []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		b := w[2*i : 2*i+8]
		s0 += BF16ToF32(binary.LittleEndian.Uint16(b[0:])) * x[i]
		s1 += BF16ToF32(binary.LittleEndian.Uint16(b[2:])) * x[i+1]
		s2 += BF16ToF32(binary.LittleEndian.Uint16(b[4:])) * x[i+2]
		s3 += BF16ToF32(binary.LittleEndian.Uint16(b[6:])) * x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += BF16ToF32(binary.LittleEndian.Uint16(w[2*i:])) * x[i]
	}
	return s0 + s1 + s2 + s3
}

func dotF32Generic(w []byte, x []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		b := w[4*i : 4*i+16]
		s0 += math.Float32frombits(binary.LittleEndian.Uint32(b[0:])) * x[i]
		s1 += math.Float32frombits(binary.LittleEndian.Uint32(b[4:])) * x[i+1]
		s2 += math.Float32frombits(binary.LittleEndian.Uint32(b[8:])) * x[i+2]
		s3 += math.Float32frombits(binary.LittleEndian.Uint32(b[12:])) * x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += math.Float32frombits(binary.LittleEndian.Uint32(w[4*i:])) * x[i]
	}
	return s0 + s1 + s2 + s3
}
