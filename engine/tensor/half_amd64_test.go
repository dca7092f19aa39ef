//go:build goexperiment.simd && amd64

package tensor

import (
	"simd/archsimd"
	"testing"
	"unsafe"
)

// The SIMD conversions of halves agree with F16ToF32 on every finite value,
// subnormals included.
func TestHalfSIMD(t *testing.T) {
	if !archsimd.X86.AVX2() {
		t.Skip("no AVX2")
	}
	var hs [8]uint16
	var got [8]float32
	for h := range 1 << 16 {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		want := F16ToF32(uint16(h))
		v := uint16(h)
		halfX8(unsafe.Pointer(&v), 0).Store(&got)
		archsimd.ClearAVXUpperBits()
		if got[0] != want || got[7] != want {
			t.Fatalf("halfX8(%#04x) = %v, want %v", h, got[0], want)
		}
		// halves, with h in each of the four lanes beside normal halves.
		for lane := range 4 {
			packed := uint64(0x3c003c003c003c00)&^(0xffff<<(16*lane)) | uint64(h)<<(16*lane)
			newHalfConst().halves(packed).Store(&got)
			archsimd.ClearAVXUpperBits()
			if got[lane] != want || got[lane+4] != want || got[(lane+1)%4] != 1 {
				t.Fatalf("halves(%#016x) = %v, want %v in lane %d", packed, got, want, lane)
			}
		}
		hs[h%8] = uint16(h)
		if h%8 == 7 {
			f16x8(unsafe.Pointer(&hs), 0, newHalfConst()).Store(&got)
			archsimd.ClearAVXUpperBits()
			for k, x := range hs {
				if w := F16ToF32(x); got[k] != w {
					t.Fatalf("f16x8 lane %d (%#04x) = %v, want %v", k, x, got[k], w)
				}
			}
		}
	}
}
