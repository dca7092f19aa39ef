package anomaly

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
)

// RobustZ scores each value by its distance from the median of the previous
// Window values, in units of their median absolute deviation (MAD) scaled to
// a normal standard deviation. Median and MAD ignore the outliers that would
// inflate a mean and a standard deviation. Each point costs O(Window).
type RobustZ struct {
	s robustState
}

type robustState struct {
	Window int       `json:"window"`
	Ring   []float64 `json:"ring"` // the last Window values, oldest at Head once full
	Head   int       `json:"head"`
	sorted []float64 // Ring in order; rebuilt on load
}

// minRobust is how many values RobustZ needs before it scores.
const minRobust = 8

// NewRobustZ returns a RobustZ over a window of at least minRobust values.
func NewRobustZ(window int) *RobustZ {
	window = max(window, minRobust)
	return &RobustZ{s: robustState{Window: window, Ring: make([]float64, 0, window), sorted: make([]float64, 0, window)}}
}

// Update scores x against the window, then adds it. The score is 1 minus the
// two-sided normal tail probability of the robust z-score.
func (d *RobustZ) Update(x float64) float64 {
	lp, _ := d.update(x)
	return 1 - math.Exp(lp)
}

// update returns the log tail probability of x, and whether the window was
// full enough to give one, and adds x to the window.
func (d *RobustZ) update(x float64) (float64, bool) {
	lp := 0.0
	ok := len(d.s.sorted) >= minRobust
	if ok {
		med, scale := d.medianScale()
		lp = logTwoSided(math.Abs(x-med) / scale)
	}
	s := &d.s
	if len(s.Ring) < s.Window {
		s.Ring = append(s.Ring, x)
	} else {
		old := s.Ring[s.Head]
		s.Ring[s.Head] = x
		s.Head = (s.Head + 1) % s.Window
		i, _ := slices.BinarySearch(s.sorted, old)
		s.sorted = slices.Delete(s.sorted, i, i+1)
	}
	i, _ := slices.BinarySearch(s.sorted, x)
	s.sorted = slices.Insert(s.sorted, i, x)
	return lp, ok
}

// medianScale returns the window's median and a robust standard deviation:
// 1.4826 MAD, or when more than half the values are equal (MAD 0) the mean
// absolute deviation, or when all are equal a tiny scale, so that any change
// of a flat signal stands out.
func (d *RobustZ) medianScale() (float64, float64) {
	a := d.s.sorted
	n := len(a)
	med := (a[(n-1)/2] + a[n/2]) / 2
	// Deviations from the median are two sorted runs (walking out left and
	// right of it): merge them to their middle instead of sorting.
	l, _ := slices.BinarySearch(a, med)
	r := l
	l--
	var lo, hi float64
	for k := 0; k <= n/2; k++ {
		var dev float64
		if r >= n || (l >= 0 && med-a[l] <= a[r]-med) {
			dev = med - a[l]
			l--
		} else {
			dev = a[r] - med
			r++
		}
		if k == (n-1)/2 {
			lo = dev
		}
		hi = dev
	}
	scale := 1.4826 * (lo + hi) / 2
	if scale == 0 {
		sum := 0.0
		for _, v := range a {
			sum += math.Abs(v - med)
		}
		scale = 1.2533 * sum / float64(n)
	}
	return med, max(scale, 1e-9*(1+math.Abs(med)))
}

// MarshalJSON saves the window.
func (d *RobustZ) MarshalJSON() ([]byte, error) { return json.Marshal(&d.s) }

// UnmarshalJSON restores a window saved by MarshalJSON.
func (d *RobustZ) UnmarshalJSON(b []byte) error {
	var s robustState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s.Window < minRobust || len(s.Ring) > s.Window || s.Head < 0 || s.Head >= s.Window || (len(s.Ring) < s.Window && s.Head != 0) {
		return errors.New("anomaly: corrupt robust z-score state")
	}
	s.sorted = slices.Clone(s.Ring)
	slices.Sort(s.sorted)
	d.s = s
	return nil
}
