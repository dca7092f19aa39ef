package tensor

import "encoding/binary"

// vgroup is eight or sixteen activation vectors (width) laid out for the VNNI
// tile kernels (vnni_amd64.go): for block i, group j of 4 values and vector k,
// xu[32·width·i+4·width·j+4k:][:4] holds the quants plus 128 (as unsigned
// bytes); d[width·i+k] is the block's scale. A padding vector has zero quants
// and scale.
type vgroup struct {
	width int
	xu    []byte
	d     []float32
}

// pack lays out vectors from to from+n (n ≤ width) of a batch's quants qs
// (cols each) and scales d (nb each).
func (o *vgroup) pack(qs []int8, d []float32, cols, nb, from, n, width int) {
	o.width = width
	o.xu = grow(o.xu, nb*32*width)
	o.d = grow(o.d, nb*width)
	for k := range width {
		var x []int8
		if k < n {
			x = qs[(from+k)*cols:][:cols]
		}
		for i := range nb {
			o.d[width*i+k] = 0
			if x != nil {
				o.d[width*i+k] = d[(from+k)*nb+i]
			}
			for j := range 8 {
				v := uint32(0)
				if x != nil {
					g := x[32*i+4*j:][:4]
					v = uint32(uint8(g[0])) | uint32(uint8(g[1]))<<8 | uint32(uint8(g[2]))<<16 | uint32(uint8(g[3]))<<24
				}
				binary.LittleEndian.PutUint32(o.xu[32*width*i+4*width*j+4*k:], v^0x80808080)
			}
		}
	}
}

// packGroups lays out the batch for the VNNI tile kernel, if the CPU has one
// (else it leaves none): by sixteens while twelve or more vectors remain (a
// sixteen-wide call measured 1.4× the time of an eight-wide one), then by
// eights, the last group padded.
func (a *acts) packGroups(cols, batch int) {
	a.vgroups = a.vgroups[:0]
	if kern.q8_0tv == nil || batch < 2 {
		return
	}
	nb := cols / QK
	for from := 0; from < batch; {
		width := 8
		if batch-from >= 12 {
			width = 16
		}
		if len(a.vgroups) < cap(a.vgroups) {
			a.vgroups = a.vgroups[:len(a.vgroups)+1]
		} else {
			a.vgroups = append(a.vgroups, vgroup{})
		}
		n := min(width, batch-from)
		a.vgroups[len(a.vgroups)-1].pack(a.qs, a.d, cols, nb, from, n, width)
		from += n
	}
}

// groupRange is rowRange's four-row loop (rows lo to lo+lane, each with the
// three lane apart) for a batch in vgroups. The scales and corrections of all
// the rows come first; then each group is taken against all the rows, so that
// its activations stay in L1 and the results of consecutive calls fill the
// same cache lines of out (groups outside, the rows inside: the scattered
// stores had been 0.2 of the kernel's time). The kernel stores its results
// into out itself, a scatter a row: storing them one by one from Go had been
// a tenth of a prefill's time.
func (j *job) groupRange(sc *scratch, lo, lane int) {
	a, rows, nb := j.acts, j.w.Rows, j.w.Cols/QK
	stride := lane * j.rowBytes
	sc.ws = grow(sc.ws, 4*nb*lane)
	sc.corr = grow(sc.corr, 4*nb*lane)
	for r := lo; r < lo+lane; r++ {
		w := j.w.Data[r*j.rowBytes : (r+3*lane+1)*j.rowBytes]
		q := 4 * nb * (r - lo)
		kern.scales4(w, stride, nb, j.w.Type.BytesPerBlock(), sc.ws[q:q+4*nb])
		kern.corr4(w, stride, nb, sc.corr[q:q+4*nb])
	}
	b := 0
	for g := range a.vgroups {
		n := min(a.vgroups[g].width, j.batch-b)
		for r := lo; r < lo+lane; r++ {
			w := j.w.Data[r*j.rowBytes : (r+3*lane+1)*j.rowBytes]
			q := 4 * nb * (r - lo)
			kern.q8_0tv(w, stride, sc.ws[q:q+4*nb], sc.corr[q:q+4*nb], &a.vgroups[g], j.out[b*rows+r:], rows, lane, n)
		}
		b += n
	}
}
