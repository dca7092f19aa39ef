package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file implements the Numenta Anomaly Benchmark's scoring (NAB v1.1,
// nab/sweeper.py): anomaly windows, the scaled sigmoid reward of a detection's
// position relative to a window, the application profiles' cost matrices, the
// probationary period, the threshold optimised over the whole corpus, and the
// normalisation between the null and the perfect detector.

// CostMatrix holds one application profile's weights.
type CostMatrix struct {
	TP float64 `json:"tpWeight"`
	FP float64 `json:"fpWeight"`
	FN float64 `json:"fnWeight"`
	TN float64 `json:"tnWeight"`
}

// Profile is one of NAB's application profiles.
type Profile struct {
	Name string
	Cost CostMatrix
}

// profileOrder is the order in which NAB reports its profiles.
var profileOrder = []string{"standard", "reward_low_FP_rate", "reward_low_FN_rate"}

// readProfiles reads NAB's profiles.json.
func readProfiles(path string) ([]Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]struct {
		CostMatrix CostMatrix
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []Profile
	for _, name := range profileOrder {
		p, ok := raw[name]
		if !ok {
			return nil, fmt.Errorf("%s: profile %q is missing", path, name)
		}
		out = append(out, Profile{Name: name, Cost: p.CostMatrix})
	}
	return out, nil
}

// parseTime reads NAB's timestamps ("2014-04-10 07:15:00" in the data,
// "2014-04-10 07:15:00.000000" in windows.json).
func parseTime(s string) (time.Time, error) {
	return time.Parse("2006-01-02 15:04:05.999999", strings.TrimSpace(s))
}

// readWindows reads windows.json: relative data path to a list of [start, end].
func readWindows(path string) (map[string][][2]time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string][][2]string
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make(map[string][][2]time.Time, len(raw))
	for file, ws := range raw {
		out[file] = [][2]time.Time{}
		for _, w := range ws {
			a, err := parseTime(w[0])
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, file, err)
			}
			b, err := parseTime(w[1])
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, file, err)
			}
			out[file] = append(out[file], [2]time.Time{a, b})
		}
	}
	return out, nil
}

// Series is one CSV file: timestamps and one numeric column.
type Series struct {
	Times  []time.Time
	Values []float64
}

// readColumn reads the timestamp column and the named numeric column of a CSV file.
func readColumn(path, column string) (Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return Series{}, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return Series{}, fmt.Errorf("%s: %w", path, err)
	}
	col := slices.Index(head, column)
	if col < 0 || head[0] != "timestamp" {
		return Series{}, fmt.Errorf("%s: want columns timestamp and %s, have %v", path, column, head)
	}
	var s Series
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			return Series{}, fmt.Errorf("%s: %w", path, err)
		}
		t, err := parseTime(rec[0])
		if err != nil {
			return Series{}, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		v, err := strconv.ParseFloat(rec[col], 64)
		if err != nil {
			return Series{}, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		s.Times = append(s.Times, t)
		s.Values = append(s.Values, v)
	}
	return s, nil
}

// dataFiles lists the CSV files under dir as slash-separated relative paths, sorted.
func dataFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".csv") {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	slices.Sort(out)
	return out, err
}

// probationLength is NAB's probationary period: the first 15% of a file, at
// most 750 rows, in which detections are neither rewarded nor penalised.
func probationLength(rows int) int {
	return min(int(math.Floor(0.15*float64(rows))), 750)
}

// scaledSigmoid is NAB's reward for a detection at a position relative to a
// window's right edge: -1 is the window's left edge (0.987), 0 its right edge
// (0), positive positions are false positives after it (down to -1 at 3 and beyond).
func scaledSigmoid(pos float64) float64 {
	if pos >= 3 {
		return -1
	}
	return 2/(1+math.Exp(5*pos)) - 1
}

// Window labels of a scored row.
const (
	outside     = -1 // not in any window
	probationer = -2 // in the probationary period
)

// row is one data row ready for scoring: its anomaly score, the reward or
// penalty if it were a detection, and its window (an index unique in the corpus).
type row struct {
	score  float64
	sweep  float64
	window int
}

// FileRows labels one file's rows as NAB's sweeper does. windows[i] gets the
// corpus-wide index firstWindow+i. Window limits must be timestamps of the file.
func fileRows(times []time.Time, scores []float64, windows [][2]time.Time, firstWindow int, cost CostMatrix) ([]row, error) {
	if len(times) != len(scores) {
		return nil, fmt.Errorf("%d timestamps but %d scores", len(times), len(scores))
	}
	index := make(map[time.Time]int, len(times))
	for i, t := range times {
		index[t] = i
	}
	type span struct{ left, right int }
	spans := make([]span, len(windows))
	for k, w := range windows {
		l, ok1 := index[w[0]]
		r, ok2 := index[w[1]]
		if !ok1 || !ok2 || r < l || (k > 0 && l <= spans[k-1].right) {
			return nil, fmt.Errorf("window %v..%v does not match the file's timestamps", w[0], w[1])
		}
		spans[k] = span{l, r}
	}
	maxTP := scaledSigmoid(-1)
	probation := probationLength(len(times))
	rows := make([]row, len(times))
	k := 0           // next or current window
	prevRight := -1  // right edge of the last window passed
	prevWidth := 0.0 // its width
	for i := range times {
		var sweep float64
		win := outside
		if k < len(spans) && i >= spans[k].left {
			width := float64(spans[k].right - spans[k].left + 1)
			sweep = scaledSigmoid(-float64(spans[k].right-i+1)/width) * cost.TP / maxTP
			win = firstWindow + k
			if i == spans[k].right {
				prevRight, prevWidth = i, width
				k++
			}
		} else {
			pos := 3.0
			if prevRight >= 0 {
				pos = float64(i-prevRight) / (prevWidth - 1)
			}
			sweep = scaledSigmoid(pos) * cost.FP
		}
		if i < probation {
			win = probationer
		}
		rows[i] = row{score: scores[i], sweep: sweep, window: win}
	}
	return rows, nil
}

// Result is a score at one threshold with the row counts behind it.
type Result struct {
	Threshold      float64
	Score          float64
	TP, TN, FP, FN int
}

// scoreAt scores rows with detections where score >= threshold. windows lists
// the window indices the rows may use; each is worth -FN unless detected, and
// then its earliest detection's reward.
func scoreAt(rows []row, windows []int, threshold float64, cost CostMatrix) Result {
	best := make(map[int]float64, len(windows))
	for _, w := range windows {
		best[w] = -cost.FN
	}
	res := Result{Threshold: threshold}
	fp := 0.0
	for _, r := range rows {
		if r.window == probationer {
			continue
		}
		hit := r.score >= threshold
		switch {
		case r.window == outside && hit:
			res.FP++
			fp += r.sweep
		case r.window == outside:
			res.TN++
		case hit:
			res.TP++
			best[r.window] = max(best[r.window], r.sweep)
		default:
			res.FN++
		}
	}
	res.Score = fp
	for _, w := range windows {
		res.Score += best[w]
	}
	return res
}

// scoredWindows lists the windows that have rows after the probationary period.
func scoredWindows(rows []row) []int {
	var out []int
	for _, r := range rows {
		if r.window >= 0 && (len(out) == 0 || out[len(out)-1] != r.window) {
			out = append(out, r.window)
		}
	}
	return out
}

// optimize sweeps the threshold down through every distinct anomaly score of
// the corpus and returns the best total score, preferring the highest
// threshold among equals, as NAB's optimiser does. Starting at 1.1 (no
// detection at all) is NAB's choice too.
func optimize(rows []row, cost CostMatrix) Result {
	scorable := make([]row, 0, len(rows))
	for _, r := range rows {
		if r.window != probationer {
			scorable = append(scorable, r)
		}
	}
	slices.SortStableFunc(scorable, func(a, b row) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	windows := make(map[int]float64)
	cur := Result{Threshold: 1.1}
	for _, r := range scorable {
		if r.window >= 0 {
			windows[r.window] = -cost.FN
			cur.FN++
		} else {
			cur.TN++
		}
	}
	// The running score is the FP sum plus each window's best; windowSum is
	// kept incrementally so that the sweep is O(n log n).
	fp := 0.0
	windowSum := -cost.FN * float64(len(windows))
	cur.Score = windowSum
	best := cur
	for i, r := range scorable {
		if r.window >= 0 {
			cur.TP++
			cur.FN--
			if r.sweep > windows[r.window] {
				windowSum += r.sweep - windows[r.window]
				windows[r.window] = r.sweep
			}
		} else {
			cur.FP++
			cur.TN--
			fp += r.sweep
		}
		if i+1 < len(scorable) && scorable[i+1].score == r.score {
			continue
		}
		cur.Threshold = r.score
		cur.Score = fp + windowSum
		if cur.Score > best.Score {
			best = cur
		}
	}
	return best
}

// normalized maps a raw corpus score to NAB's 0..100 scale: 0 is the null
// detector (no detection: every window missed), 100 the perfect one (every
// window detected at its left edge, no false positive).
func normalized(raw float64, windows int, cost CostMatrix) float64 {
	null := -cost.FN * float64(windows)
	perfect := cost.TP * float64(windows)
	return 100 * (raw - null) / (perfect - null)
}
