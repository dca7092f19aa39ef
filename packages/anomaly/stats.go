package anomaly

import "math"

// Tail probabilities are carried as logarithms: the detectors' p-values of
// real anomalies underflow float64 (a 40σ spike is p ≈ 1e-350).

// logUpper is ln P(Z > z) for a standard normal Z, exact where Erfc does not
// underflow and by the asymptotic expansion beyond.
func logUpper(z float64) float64 {
	if z < 30 {
		return math.Log(0.5 * math.Erfc(z/math.Sqrt2))
	}
	return -z*z/2 - math.Log(z) - 0.5*math.Log(2*math.Pi) + math.Log1p(-1/(z*z))
}

// logTwoSided is ln P(|Z| > z) for z >= 0.
func logTwoSided(z float64) float64 { return min(math.Ln2+logUpper(z), 0) }

// logChi2Tail is ln P(X > x) for X χ²-distributed with k degrees of freedom,
// from Q(x; k+2) = Q(x; k) + (x/2)^(k/2) e^(-x/2) / Γ(k/2+1), summed as logs.
func logChi2Tail(x float64, k int) float64 {
	if math.IsInf(x, 1) {
		return math.Inf(-1)
	}
	if x <= 0 {
		return 0
	}
	var lq float64
	j := k % 2
	if j == 1 {
		lq = math.Ln2 + logUpper(math.Sqrt(x))
	} else {
		lq = -x / 2
		j = 2
	}
	for ; j < k; j += 2 {
		h := float64(j) / 2
		lg, _ := math.Lgamma(h + 1)
		lq = logAdd(lq, h*math.Log(x/2)-x/2-lg)
	}
	return min(lq, 0)
}

// logAdd is ln(e^a + e^b).
func logAdd(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}
