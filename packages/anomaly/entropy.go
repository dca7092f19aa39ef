package anomaly

import (
	"encoding/json"
	"errors"
	"math"
)

// RelativeEntropy is the detector of Wang et al., "Statistical techniques for
// online anomaly detection in data centers" (2011), as NAB runs it: values are
// quantised into Bins bins, and the histogram of the last Window values is
// compared with every histogram seen before as "normal" (a hypothesis) by the
// relative entropy test statistic 2·Window·KL(P̂‖P), which is χ² distributed
// with Bins-1 degrees of freedom when P̂ is drawn from P. A window that agrees
// with no hypothesis at the 1% level becomes a new hypothesis and is anomalous.
//
// Two changes make it streaming: the bin range is the range of the first
// values (NAB gives the detector the whole file's range, which a live series
// does not have), values outside it fall into the edge bins; and at most
// maxHypotheses are kept, the least used giving way. Each point costs
// O(hypotheses·Bins).
type RelativeEntropy struct {
	s entropyState
}

type entropyState struct {
	Window     int         `json:"window"`
	Bins       int         `json:"bins"`
	RangeAfter int         `json:"range_after"` // values seen before the range is fixed
	Seen       int         `json:"seen"`
	Min        float64     `json:"min"`
	Max        float64     `json:"max"`
	Ring       []float64   `json:"ring"` // the last Window values
	Head       int         `json:"head"`
	Hyp        [][]float64 `json:"hyp"`   // hypotheses: bin probabilities
	Count      []int       `json:"count"` // windows that agreed with each
	counts     []int       // bin counts of Ring; rebuilt on load
}

const (
	maxHypotheses = 64
	entropyLevel  = 0.01 // significance of the agreement test
)

// NewRelativeEntropy returns the detector with a window of `window` values
// (NAB uses 52) and `bins` bins (NAB uses 5); the bin range is fixed after
// rangeAfter values (at least one window).
func NewRelativeEntropy(window, bins, rangeAfter int) *RelativeEntropy {
	window, bins = max(window, 2), max(bins, 2)
	return &RelativeEntropy{s: entropyState{
		Window: window, Bins: bins, RangeAfter: max(rangeAfter, window),
		Ring: make([]float64, 0, window), counts: make([]int, bins),
	}}
}

// Update scores x and adds it: 1 minus the χ² tail probability of the
// current window's statistic against its closest hypothesis.
func (d *RelativeEntropy) Update(x float64) float64 {
	lp, _ := d.update(x)
	return 1 - math.Exp(lp)
}

// update adds x and returns the log tail probability of the window, and
// whether there was a hypothesis to test it against.
func (d *RelativeEntropy) update(x float64) (float64, bool) {
	s := &d.s
	s.Seen++
	ranged := s.Seen > s.RangeAfter
	switch {
	case s.Seen == 1:
		s.Min, s.Max = x, x
	case !ranged:
		s.Min, s.Max = min(s.Min, x), max(s.Max, x)
	}
	if len(s.Ring) < s.Window {
		s.Ring = append(s.Ring, x)
	} else {
		if ranged {
			s.counts[d.bin(s.Ring[s.Head])]--
		}
		s.Ring[s.Head] = x
		s.Head = (s.Head + 1) % s.Window
	}
	switch {
	case !ranged:
		return 0, false
	case s.Seen == s.RangeAfter+1:
		d.rebin()
	default:
		s.counts[d.bin(x)]++
	}
	return d.test()
}

// bin quantises x into the fixed range.
func (d *RelativeEntropy) bin(x float64) int {
	s := &d.s
	span := s.Max - s.Min
	if span <= 0 {
		// A flat start: one bin for the flat value, the edges for any change.
		switch {
		case x < s.Min:
			return 0
		case x > s.Max:
			return s.Bins - 1
		}
		return s.Bins / 2
	}
	b := int(math.Floor((x - s.Min) / span * float64(s.Bins)))
	return min(max(b, 0), s.Bins-1)
}

// rebin counts the window's bins once the range is fixed.
func (d *RelativeEntropy) rebin() {
	s := &d.s
	s.counts = make([]int, s.Bins)
	for _, v := range s.Ring {
		s.counts[d.bin(v)]++
	}
}

// test compares the window's histogram with the hypotheses, updates them,
// and returns the log tail probability of the best agreement and whether
// there was any hypothesis.
func (d *RelativeEntropy) test() (float64, bool) {
	s := &d.s
	n := float64(len(s.Ring))
	bestStat, best := math.Inf(1), -1
	for i, h := range s.Hyp {
		kl := 0.0
		for b, c := range s.counts {
			if c > 0 {
				p := float64(c) / n
				kl += p * math.Log(p/h[b])
			}
		}
		if stat := 2 * n * kl; stat < bestStat {
			bestStat, best = stat, i
		}
	}
	lp := logChi2Tail(bestStat, s.Bins-1)
	if best < 0 {
		lp = 0 // the first window defines normal
	}
	if best >= 0 && lp >= math.Log(entropyLevel) {
		s.Count[best]++
		return lp, true
	}
	// A new hypothesis, smoothed so that a later window with a bin this one
	// lacks gets a large but finite statistic.
	h := make([]float64, s.Bins)
	for b, c := range s.counts {
		h[b] = (float64(c) + 0.5) / (n + 0.5*float64(s.Bins))
	}
	if len(s.Hyp) < maxHypotheses {
		s.Hyp = append(s.Hyp, h)
		s.Count = append(s.Count, 1)
	} else {
		least := 0
		for i, c := range s.Count {
			if c < s.Count[least] {
				least = i
			}
		}
		s.Hyp[least], s.Count[least] = h, 1
	}
	return lp, best >= 0
}

// MarshalJSON saves the detector.
func (d *RelativeEntropy) MarshalJSON() ([]byte, error) { return json.Marshal(&d.s) }

// UnmarshalJSON restores a detector saved by MarshalJSON.
func (d *RelativeEntropy) UnmarshalJSON(b []byte) error {
	var s entropyState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	ok := s.Window >= 2 && s.Bins >= 2 && s.Bins <= 1000 && s.RangeAfter >= s.Window && s.Seen >= 0 &&
		len(s.Ring) <= s.Window && len(s.Ring) == min(s.Seen, s.Window) &&
		s.Head >= 0 && s.Head < s.Window && (len(s.Ring) == s.Window || s.Head == 0) &&
		len(s.Hyp) == len(s.Count) && len(s.Hyp) <= maxHypotheses
	for _, h := range s.Hyp {
		ok = ok && len(h) == s.Bins
		for _, p := range h {
			ok = ok && p > 0
		}
	}
	ok = ok && (s.Seen == 0 || s.Min <= s.Max)
	if !ok {
		return errors.New("anomaly: corrupt relative entropy state")
	}
	d.s = s
	d.rebin()
	return nil
}
