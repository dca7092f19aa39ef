package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Dequantize decodes len(dst) values of type t from src.
func Dequantize(t Type, dst []float32, src []byte) error {
	n := t.RowBytes(len(dst))
	if n < 0 {
		return fmt.Errorf("tensor: cannot dequantize %d values of %v", len(dst), t)
	}
	if len(src) < n {
		return fmt.Errorf("tensor: %d values of %v need %d bytes, have %d", len(dst), t, n, len(src))
	}
	bs, bb := t.BlockSize(), t.BytesPerBlock()
	for i := 0; i*bs < len(dst); i++ {
		y, b := dst[i*bs:(i+1)*bs], src[i*bb:(i+1)*bb]
		switch t {
		case F32:
			y[0] = math.Float32frombits(binary.LittleEndian.Uint32(b))
		case F16:
			y[0] = F16ToF32(binary.LittleEndian.Uint16(b))
		case BF16:
			y[0] = BF16ToF32(binary.LittleEndian.Uint16(b))
		case Q8_0:
			d := f16At(b, 0)
			for j := range QK {
				y[j] = d * float32(int8(b[2+j]))
			}
		case Q4_0:
			d := f16At(b, 0)
			for j := range QK / 2 {
				y[j] = d * float32(int(b[2+j]&0xf)-8)
				y[j+QK/2] = d * float32(int(b[2+j]>>4)-8)
			}
		case Q4_K:
			dequantQ4_K(y, b)
		case Q6_K:
			dequantQ6_K(y, b)
		case Q8_K:
			d := math.Float32frombits(binary.LittleEndian.Uint32(b))
			for j := range QKK {
				y[j] = d * float32(int8(b[4+j]))
			}
		}
	}
	return nil
}

func f16At(b []byte, off int) float32 {
	return F16ToF32(binary.LittleEndian.Uint16(b[off:]))
}

// Q4_K: f16 d, f16 dmin, 12 bytes of scales and minimums, then 128 bytes where
// each 32 bytes hold 64 values: the low nibbles first, then the high ones.
func dequantQ4_K(y []float32, b []byte) {
	d, dmin := f16At(b, 0), f16At(b, 2)
	qs := b[16:]
	sc, m := scalesK4(b[4:16])
	for j := range QKK / 32 {
		s, o := d*float32(uint8(sc>>(8*j))), dmin*float32(uint8(m>>(8*j)))
		q := qs[32*(j/2) : 32*(j/2)+32]
		shift := 4 * uint(j&1)
		for l := range 32 {
			y[32*j+l] = s*float32(q[l]>>shift&0xf) - o
		}
	}
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales
// (one per 16 values), f16 d. Each half of 128 values uses 64 ql and 32 qh bytes.
func dequantQ6_K(y []float32, b []byte) {
	d := f16At(b, 208)
	for j := range QKK {
		y[j] = d * float32(int8(b[192+j/16])) * float32(q6At(b, j))
	}
}

// q6At is value j (-32..31) of a Q6_K block.
func q6At(b []byte, j int) int8 {
	h, r := j/128, j%128
	k, l := r/32, r%32 // k-th group of 32 within the half
	lo := b[64*h+l+32*(k&1)] >> (4 * uint(k>>1)) & 0xf
	hi := b[128+32*h+l] >> (2 * uint(k)) & 3
	return int8(lo|hi<<4) - 32
}
