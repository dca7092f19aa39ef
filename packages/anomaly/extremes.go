package anomaly

import (
	"encoding/json"
	"errors"
	"math"
)

// Extremes scores a reading by how far it goes beyond the highest or lowest
// reading of the last Blocks·Block readings, in units of the robust z-score's
// scale: a series reaching a level it has not reached in weeks is news even
// when the readings just before it were already high. The window moves a
// block at a time, each block kept as its maximum and minimum, so each point
// costs O(Blocks) and the state is 2·Blocks numbers.
type Extremes struct {
	s extremesState
}

type extremesState struct {
	Block  int       `json:"block"`
	Blocks int       `json:"blocks"`
	Hi     []float64 `json:"hi"` // maxima of the last full blocks, a ring
	Lo     []float64 `json:"lo"`
	Head   int       `json:"head"`
	CurN   int       `json:"cur_n"` // readings in the current block
	CurHi  float64   `json:"cur_hi"`
	CurLo  float64   `json:"cur_lo"`
	Seen   int       `json:"seen"`
}

// minExtremes is how many readings Extremes needs before it scores.
const minExtremes = 20

// NewExtremes returns the detector over blocks·block readings.
func NewExtremes(block, blocks int) *Extremes {
	return &Extremes{s: extremesState{Block: max(block, 1), Blocks: max(blocks, 1)}}
}

// update returns the log tail probability of x's excess over the window's
// range, measured in units of scale, and whether the window had enough
// readings to tell, and adds x.
func (d *Extremes) update(x, scale float64) (float64, bool) {
	s := &d.s
	lp, ok := 0.0, s.Seen >= minExtremes
	if ok {
		hi, lo := math.Inf(-1), math.Inf(1)
		if s.CurN > 0 {
			hi, lo = s.CurHi, s.CurLo
		}
		for i := range s.Hi {
			hi, lo = max(hi, s.Hi[i]), min(lo, s.Lo[i])
		}
		lp = logTwoSided(max(x-hi, lo-x, 0) / scale)
	}
	s.Seen++
	if s.CurN == 0 {
		s.CurHi, s.CurLo = x, x
	} else {
		s.CurHi, s.CurLo = max(s.CurHi, x), min(s.CurLo, x)
	}
	if s.CurN++; s.CurN == s.Block {
		if len(s.Hi) < s.Blocks {
			s.Hi, s.Lo = append(s.Hi, s.CurHi), append(s.Lo, s.CurLo)
		} else {
			s.Hi[s.Head], s.Lo[s.Head] = s.CurHi, s.CurLo
			s.Head = (s.Head + 1) % s.Blocks
		}
		s.CurN = 0
	}
	return lp, ok
}

// MarshalJSON saves the detector.
func (d *Extremes) MarshalJSON() ([]byte, error) { return json.Marshal(&d.s) }

// UnmarshalJSON restores a detector saved by MarshalJSON.
func (d *Extremes) UnmarshalJSON(b []byte) error {
	var s extremesState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	ok := s.Block >= 1 && s.Block <= maxWindow && s.Blocks >= 1 && s.Blocks <= maxWindow &&
		len(s.Hi) == len(s.Lo) && len(s.Hi) <= s.Blocks && s.Head >= 0 && (s.Head == 0 || s.Head < len(s.Hi)) &&
		(len(s.Hi) == s.Blocks || s.Head == 0) && s.CurN >= 0 && s.CurN < s.Block && s.Seen >= 0
	if !ok {
		return errors.New("anomaly: corrupt extremes state")
	}
	d.s = s
	return nil
}
