package tensor

import "encoding/binary"

// octet is eight activation vectors laid out for the VNNI tile kernel
// (vnni_amd64.go): for block i, group j of 4 values and vector k,
// xu[256i+32j+4k:][:4] holds the quants plus 128 (as unsigned bytes); d[8i+k]
// is the block's scale. A padding vector has zero quants and scale.
type octet struct {
	xu []byte
	d  []float32
}

// pack lays out vectors from to from+n (n ≤ 8) of a batch's quants qs (cols
// each) and scales d (nb each).
func (o *octet) pack(qs []int8, d []float32, cols, nb, from, n int) {
	o.xu = grow(o.xu, nb*256)
	o.d = grow(o.d, nb*8)
	for k := range 8 {
		var x []int8
		if k < n {
			x = qs[(from+k)*cols:][:cols]
		}
		for i := range nb {
			o.d[8*i+k] = 0
			if x != nil {
				o.d[8*i+k] = d[(from+k)*nb+i]
			}
			for j := range 8 {
				v := uint32(0)
				if x != nil {
					g := x[32*i+4*j:][:4]
					v = uint32(uint8(g[0])) | uint32(uint8(g[1]))<<8 | uint32(uint8(g[2]))<<16 | uint32(uint8(g[3]))<<24
				}
				binary.LittleEndian.PutUint32(o.xu[256*i+32*j+4*k:], v^0x80808080)
			}
		}
	}
}

// octets lays out the batch for the VNNI tile kernel, by eights (the last
// padded), if the CPU has one; else it leaves none.
func (a *acts) octets(cols, batch int) {
	a.octs = a.octs[:0]
	if kern.q8_0t8 == nil || batch < 2 {
		return
	}
	nb := cols / QK
	for from := 0; from < batch; from += 8 {
		if len(a.octs) < cap(a.octs) {
			a.octs = a.octs[:len(a.octs)+1]
		} else {
			a.octs = append(a.octs, octet{})
		}
		a.octs[len(a.octs)-1].pack(a.qs, a.d, cols, nb, from, min(8, batch-from))
	}
}

// octetRange is rowRange's four-row loop (rows lo to lo+lane, each with the
// three lane apart) for a batch in octets. The scales and corrections of all
// the rows come first; then each octet is taken against all the rows, so that
// its activations stay in L1 and the results of consecutive calls fill the
// same cache lines of out (octets outside, the rows inside, measured 0.2 of
// the kernel's time in those stores).
func (j *job) octetRange(sc *scratch, lo, lane int) {
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
	for g := range a.octs {
		b, n := 8*g, min(8, j.batch-8*g)
		for r := lo; r < lo+lane; r++ {
			w := j.w.Data[r*j.rowBytes : (r+3*lane+1)*j.rowBytes]
			q := 4 * nb * (r - lo)
			kern.q8_0t8(w, stride, sc.ws[q:q+4*nb], sc.corr[q:q+4*nb], &a.octs[g], &sc.t8)
			for i := range 4 {
				for k := range n {
					j.out[(b+k)*rows+r+i*lane] = sc.t8[i][k]
				}
			}
		}
	}
}
