package tensor

import "encoding/binary"

// amxBatch is a batch of activation vectors laid out for the AMX kernel
// (amx_linux_amd64.go), in groups of 16 (the last padded with zero quants and
// scales): for group g, block i, group j of 4 values and vector k,
// xs[512·(g·nb+i)+64j+4k:][:4] are the quants (signed: tdpbssd multiplies
// signed by signed), one tile row of B per j; d[16·(g·nb+i)+k] is the
// block's scale. n is how many vectors of the last group are real.
type amxBatch struct {
	xs    []int8
	d     []float32
	nb, n int
}

// resize makes room for a batch of vectors of cols values and returns the
// number of (group, block) units that packBlocks lays out.
func (b *amxBatch) resize(cols, batch int) int {
	nb := cols / QK
	groups := (batch + 15) / 16
	b.nb, b.n = nb, batch-16*(groups-1)
	b.xs = grow(b.xs, groups*nb*512)
	b.d = grow(b.d, groups*nb*16)
	return groups * nb
}

// packBlocks lays out units [lo, hi) (unit u is block u mod nb of group u/nb)
// of a batch of quants qs (cols each) and scales d (nb each).
func (b *amxBatch) packBlocks(qs []int8, d []float32, cols, batch, lo, hi int) {
	nb := b.nb
	for u := lo; u < hi; u++ {
		g, i := u/nb, u%nb
		for k := range 16 {
			v := 16*g + k
			blk := b.xs[512*u+4*k:]
			if v >= batch {
				b.d[16*u+k] = 0
				for j := range 8 {
					clear(blk[64*j : 64*j+4])
				}
				continue
			}
			b.d[16*u+k] = d[v*nb+i]
			x := qs[v*cols+32*i:][:32]
			for j := range 8 {
				blk[64*j], blk[64*j+1], blk[64*j+2], blk[64*j+3] = x[4*j], x[4*j+1], x[4*j+2], x[4*j+3]
			}
		}
	}
}

// amxScratch is one thread's memory for the AMX kernel: the tile
// configuration, room for a tile of sums, and the rows' block scales.
type amxScratch struct {
	cfg [64]byte
	m   int // the rows cfg is for (0: none yet)
	tmp [16 * 16]int32
	ws  []float32
}

// configure sets the tiles for m rows: the sums C (m × 16 int32), the weights A
// (m × 32 bytes), the activations B (8 × 64 bytes: 4 quants of 16 vectors).
func (s *amxScratch) configure(m int) {
	if s.m == m {
		return
	}
	s.m = m
	clear(s.cfg[:])
	s.cfg[0] = 1 // palette
	for t, c := range []struct{ rows, colsb int }{{m, 64}, {m, 32}, {8, 64}} {
		binary.LittleEndian.PutUint16(s.cfg[16+2*t:], uint16(c.colsb))
		s.cfg[48+t] = byte(c.rows)
	}
}
