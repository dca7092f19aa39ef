package tensor

import (
	"syscall"
	"unsafe"
)

// The AMX-INT8 kernel for Q8_0 batches, in Go assembly (amx_amd64.s). One
// tdpbssd multiplies 16 rows' block of 32 quants by 16 vectors' (16×16×32
// multiply-adds), where the VNNI tile needs 128 vpdpbusd for the same; the
// block scales are applied per block in AVX-512 as before, so the results are
// those of the other kernels up to the order of float additions.

//go:noescape
func q8_0AMX(cfg *[64]byte, w *byte, rowBytes, nb int, xs *int8, dx *float32, groups int, tmp *int32, ws *float32, out *float32, rows, n, m int)

func init() {
	if hasAMX {
		kern.q8_0amx = dotQ8_0AMX
	}
}

// hasAMX is whether the CPU has AMX-INT8 (with AVX-512 for the scales and
// BMI2), the OS saves the tile state, and Linux lets this process use it:
// tile data is off until asked for with arch_prctl(ARCH_REQ_XCOMP_PERM).
var hasAMX = func() bool {
	if !hasAVX512 {
		return false
	}
	_, b7, _, d7 := cpuid(7, 0)
	const bmi2, amxTile, amxInt8 = 1 << 8, 1 << 24, 1 << 25
	if b7&bmi2 == 0 || d7&amxTile == 0 || d7&amxInt8 == 0 {
		return false
	}
	const tileState = 1<<17 | 1<<18 // XTILECFG, XTILEDATA
	if xgetbv0()&tileState != tileState {
		return false
	}
	const archReqXcompPerm, xfeatureXtileData = 0x1023, 18
	_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtileData, 0)
	return errno == 0
}()

// dotQ8_0AMX is m ≤ 16 rows of w (Q8_0, rowBytes apart) against the batch b:
// row r against vector v into out[v·rows+r].
func dotQ8_0AMX(w []byte, rowBytes, m int, b *amxBatch, out []float32, rows int, s *amxScratch) {
	nb := b.nb
	if m < 1 || m > 16 || rowBytes < nb*34 || len(w) < (m-1)*rowBytes+nb*34 || (m-1)*rowBytes > 1<<30 {
		panic("tensor: rows and activations disagree in length")
	}
	g := len(b.d) / (16 * nb)
	if nb < 1 || g < 1 || len(b.xs) < g*nb*512 || b.n < 1 || b.n > 16 ||
		rows < m || ((g-1)*16+b.n-1)*rows+m > len(out) || 15*rows > 1<<30 {
		panic("tensor: results outside the output")
	}
	s.configure(m)
	s.ws = grow(s.ws, 16*nb)
	q8_0AMX(&s.cfg, unsafe.SliceData(w), rowBytes, nb, unsafe.SliceData(b.xs), unsafe.SliceData(b.d), g, &s.tmp[0], unsafe.SliceData(s.ws), unsafe.SliceData(out), rows, b.n, m)
}
