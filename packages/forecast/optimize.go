package forecast

import (
	"math"
	"sort"
)

// minimize finds a low point of f inside the box [lo, hi] by Nelder-Mead,
// starting at x0. Vertices are clamped into the box, which keeps smoothing
// parameters admissible without a penalty term. A non-finite f counts as +Inf.
func minimize(f func([]float64) float64, x0, lo, hi []float64, maxEvals int) []float64 {
	d := len(x0)
	eval := func(x []float64) float64 {
		v := f(x)
		if math.IsNaN(v) {
			return math.Inf(1)
		}
		return v
	}
	clamp := func(x []float64) {
		for i := range x {
			x[i] = math.Min(math.Max(x[i], lo[i]), hi[i])
		}
	}
	type vertex struct {
		x []float64
		v float64
	}
	simplex := make([]vertex, d+1)
	for i := range simplex {
		x := append([]float64(nil), x0...)
		if i > 0 {
			// Step a tenth of the box along each axis, away from the nearer bound.
			step := 0.1 * (hi[i-1] - lo[i-1])
			if x[i-1]+step > hi[i-1] {
				step = -step
			}
			x[i-1] += step
		}
		clamp(x)
		simplex[i] = vertex{x, eval(x)}
	}
	evals := d + 1
	point := func(c []float64, towards []float64, t float64) []float64 {
		x := make([]float64, d)
		for i := range x {
			x[i] = c[i] + t*(towards[i]-c[i])
		}
		clamp(x)
		return x
	}
	centroid := make([]float64, d)
	for evals < maxEvals {
		sort.Slice(simplex, func(a, b int) bool { return simplex[a].v < simplex[b].v })
		best, worst := simplex[0], simplex[d]
		if worst.v-best.v <= 1e-10*(math.Abs(best.v)+1e-20) {
			break
		}
		for i := range centroid {
			centroid[i] = 0
			for _, s := range simplex[:d] {
				centroid[i] += s.x[i]
			}
			centroid[i] /= float64(d)
		}
		r := point(centroid, worst.x, -1)
		rv := eval(r)
		evals++
		switch {
		case rv < best.v:
			e := point(centroid, worst.x, -2)
			ev := eval(e)
			evals++
			if ev < rv {
				simplex[d] = vertex{e, ev}
			} else {
				simplex[d] = vertex{r, rv}
			}
		case rv < simplex[d-1].v:
			simplex[d] = vertex{r, rv}
		default:
			c := point(centroid, worst.x, 0.5)
			if rv < worst.v {
				c = point(centroid, r, 0.5)
			}
			cv := eval(c)
			evals++
			if cv < math.Min(rv, worst.v) {
				simplex[d] = vertex{c, cv}
				continue
			}
			for i := 1; i <= d; i++ {
				simplex[i].x = point(best.x, simplex[i].x, 0.5)
				simplex[i].v = eval(simplex[i].x)
			}
			evals += d
		}
	}
	sort.Slice(simplex, func(a, b int) bool { return simplex[a].v < simplex[b].v })
	return simplex[0].x
}
