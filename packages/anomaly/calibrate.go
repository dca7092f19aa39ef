package anomaly

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
)

// calibrator turns a detector's surprise (-log10 of its nominal p-value) into
// a p-value against the detector's own recent history on this series. The
// detectors' nominal p-values assume normal or χ² statistics that real series
// rarely follow: a robust z-score on a square wave is "surprised" all day.
// Within the history the p-value is empirical; beyond its maximum, the
// excesses over the upper decile are modelled as exponential (peaks over
// threshold, as in Siffer et al.'s SPOT), so that a value beyond everything
// seen still gets a p-value that falls with its size.
type calibrator struct {
	s calibratorState
}

type calibratorState struct {
	Size   int       `json:"size"`
	Ring   []float64 `json:"ring"`
	Head   int       `json:"head"`
	sorted []float64 // Ring in order; rebuilt on load
}

const (
	minCalibrate = 50   // history before a calibrated p-value is given
	tailFrom     = 0.9  // quantile above which the tail is modelled
	minExcess    = 0.05 // decades: mean excess floor, for histories with a flat top
	maxSurprise  = 1e4  // decades: caps an infinitely surprising value
)

func newCalibrator(size int) *calibrator {
	return &calibrator{s: calibratorState{Size: size, Ring: make([]float64, 0, size), sorted: make([]float64, 0, size)}}
}

// update returns the natural log of the calibrated p-value of surprise s,
// then adds s to the history.
func (c *calibrator) update(s float64) float64 {
	s = min(s, maxSurprise)
	lp := c.logP(s)
	st := &c.s
	if len(st.Ring) < st.Size {
		st.Ring = append(st.Ring, s)
	} else {
		old := st.Ring[st.Head]
		st.Ring[st.Head] = s
		st.Head = (st.Head + 1) % st.Size
		i, _ := slices.BinarySearch(st.sorted, old)
		st.sorted = slices.Delete(st.sorted, i, i+1)
	}
	i, _ := slices.BinarySearch(st.sorted, s)
	st.sorted = slices.Insert(st.sorted, i, s)
	return lp
}

func (c *calibrator) logP(s float64) float64 {
	a := c.s.sorted
	n := len(a)
	if n < minCalibrate {
		return 0
	}
	if top := a[n-1]; s > top {
		// Beyond the history: exponential excesses over its upper decile,
		// measured in math.Sqrt(surprise) because surprises are heavy-tailed.
		qi := int(tailFrom * float64(n))
		q := math.Sqrt(a[qi])
		excess := 0.0
		for _, v := range a[qi:] {
			excess += math.Sqrt(v) - q
		}
		excess = max(excess/float64(n-qi), minExcess)
		return -math.Log(float64(n+1)) - (math.Sqrt(s)-math.Sqrt(top))/excess
	}
	i, _ := slices.BinarySearch(a, s) // a[i:] >= s
	return math.Log(float64(n-i+1) / float64(n+1))
}

func (c *calibrator) MarshalJSON() ([]byte, error) { return json.Marshal(&c.s) }

func (c *calibrator) UnmarshalJSON(b []byte) error {
	var s calibratorState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s.Size < 1 || len(s.Ring) > s.Size || s.Head < 0 || s.Head >= s.Size || (len(s.Ring) < s.Size && s.Head != 0) {
		return errors.New("anomaly: corrupt calibrator state")
	}
	s.sorted = slices.Clone(s.Ring)
	slices.Sort(s.sorted)
	c.s = s
	return nil
}
