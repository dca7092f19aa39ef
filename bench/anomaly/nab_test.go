package main

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"aigrid/internal/shareddata"
)

func TestScaledSigmoid(t *testing.T) {
	for _, c := range []struct{ pos, want float64 }{
		{-1, 0.98661}, {-0.5, 0.84828}, {0, 0}, {1, -0.98661}, {3, -1}, {7, -1},
	} {
		if got := scaledSigmoid(c.pos); math.Abs(got-c.want) > 1e-5 {
			t.Errorf("scaledSigmoid(%v) = %v, want %v", c.pos, got, c.want)
		}
	}
}

func TestProbationLength(t *testing.T) {
	for _, c := range []struct{ rows, want int }{{4032, 604}, {1243, 186}, {15833, 750}, {10, 1}} {
		if got := probationLength(c.rows); got != c.want {
			t.Errorf("probationLength(%d) = %d, want %d", c.rows, got, c.want)
		}
	}
}

// A hand-made file of 20 rows (probation 3) with one window of 5 rows at
// rows 10..14: an early detection, a late false positive, and a miss.
func TestScoreSmallFile(t *testing.T) {
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	times := make([]time.Time, 20)
	for i := range times {
		times[i] = base.Add(time.Duration(i) * time.Minute)
	}
	windows := [][2]time.Time{{times[10], times[14]}}
	cost := CostMatrix{TP: 1, FP: 0.11, FN: 1}
	scores := make([]float64, 20)
	scores[1] = 1  // in probation: ignored
	scores[10] = 1 // left edge of the window: full reward
	scores[12] = 1 // a later detection in the same window counts once
	scores[16] = 1 // 2 rows after the window of width 5: position 2/4
	rows, err := fileRows(times, scores, windows, 0, cost)
	if err != nil {
		t.Fatal(err)
	}
	got := scoreAt(rows, scoredWindows(rows), 0.5, cost)
	want := 1 + scaledSigmoid(0.5)*0.11
	if math.Abs(got.Score-want) > 1e-12 || got.TP != 2 || got.FP != 1 || got.FN != 3 || got.TN != 11 {
		t.Errorf("got %+v, want score %v TP 2 FP 1 FN 3 TN 11", got, want)
	}
	if miss := scoreAt(rows, scoredWindows(rows), 2, cost); miss.Score != -1 {
		t.Errorf("no detection scores %v, want -1", miss.Score)
	}
	if best := optimize(rows, cost); best.Threshold != 1 || math.Abs(best.Score-want) > 1e-12 {
		t.Errorf("optimize = %+v, want threshold 1, score %v", best, want)
	}
}

// TestReproducePublished scores the numenta detector's published raw output
// at the published thresholds and compares every file's score and counts with
// NAB's published per-file results, for the three profiles. It also checks
// the null detector (constant 0.5), whose published files use threshold 0.6.
func TestReproducePublished(t *testing.T) {
	dir := shareddata.Require(t, "nab")
	c, err := loadCorpus(filepath.Join(dir, "data"), filepath.Join(dir, "windows.json"), filepath.Join(dir, "profiles.json"))
	if err != nil {
		t.Fatal(err)
	}
	times := map[string][]time.Time{}
	numenta := map[string][]float64{}
	null := map[string][]float64{}
	for _, f := range c.Files {
		s, err := readColumn(numentaPath(filepath.Join(dir, "results", "numenta"), "numenta", f), "anomaly_score")
		if err != nil {
			t.Fatal(err)
		}
		times[f], numenta[f] = s.Times, s.Values
		null[f] = make([]float64, len(s.Values))
		for i := range null[f] {
			null[f][i] = 0.5
		}
	}
	for _, det := range []struct {
		name   string
		scores map[string][]float64
	}{{"numenta", numenta}, {"null", null}} {
		for _, p := range c.Profiles {
			published, err := readPublished(filepath.Join(dir, det.name+"_"+p.Name+"_scores.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if len(published) != len(c.Files) {
				t.Fatalf("%s %s: %d published files, corpus has %d", det.name, p.Name, len(published), len(c.Files))
			}
			s, err := c.label(times, det.scores, p.Cost)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range c.Files {
				want, ok := published[f]
				if !ok {
					t.Errorf("%s %s: %s not published", det.name, p.Name, f)
					continue
				}
				got := scoreAt(s.files[f], s.windows[f], want.Threshold, p.Cost)
				if math.Abs(got.Score-want.Score) > 1e-9 || got.TP != want.TP || got.TN != want.TN || got.FP != want.FP || got.FN != want.FN {
					t.Errorf("%s %s %s:\n got %+v\nwant %+v", det.name, p.Name, f, got, want)
				}
			}
		}
	}
}

// The corpus threshold that optimize finds for numenta's output scores at
// least as well on these files as NAB's published threshold (chosen on the
// whole 7-category corpus), and its score is what scoreAt gives there.
func TestOptimizeOnNumenta(t *testing.T) {
	dir := shareddata.Require(t, "nab")
	c, err := loadCorpus(filepath.Join(dir, "data"), filepath.Join(dir, "windows.json"), filepath.Join(dir, "profiles.json"))
	if err != nil {
		t.Fatal(err)
	}
	times := map[string][]time.Time{}
	scores := map[string][]float64{}
	for _, f := range c.Files {
		s, err := readColumn(numentaPath(filepath.Join(dir, "results", "numenta"), "numenta", f), "anomaly_score")
		if err != nil {
			t.Fatal(err)
		}
		times[f], scores[f] = s.Times, s.Values
	}
	reports, err := c.evaluate(times, scores)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range c.Profiles {
		published, err := c.publishedScore(filepath.Join(dir, "numenta_"+p.Name+"_scores.csv"), p.Cost)
		if err != nil {
			t.Fatal(err)
		}
		r := reports[i]
		sum := 0.0
		for _, f := range c.Files {
			sum += r.Files[f].Score
		}
		if r.Normalized < published-1e-9 || math.Abs(sum-r.Best.Score) > 1e-9 {
			t.Errorf("%s: optimised %.3f (raw %.4f, files sum to %.4f), published threshold %.3f", p.Name, r.Normalized, r.Best.Score, sum, published)
		}
	}
}
