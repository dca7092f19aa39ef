package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"
)

// Corpus is a set of NAB data files with their labels and NAB's profiles.
type Corpus struct {
	Files    []string // relative paths, slash-separated, sorted
	Windows  map[string][][2]time.Time
	Profiles []Profile
}

// loadCorpus lists the CSV files under dataDir and reads the labels and
// profiles. Every file must be labelled (a file without anomalies has an
// empty list in windows.json).
func loadCorpus(dataDir, windowsPath, profilesPath string) (*Corpus, error) {
	files, err := dataFiles(dataDir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no CSV files", dataDir)
	}
	windows, err := readWindows(windowsPath)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if _, ok := windows[f]; !ok {
			return nil, fmt.Errorf("%s: not labelled in %s", f, windowsPath)
		}
	}
	profiles, err := readProfiles(profilesPath)
	if err != nil {
		return nil, err
	}
	return &Corpus{Files: files, Windows: windows, Profiles: profiles}, nil
}

// numentaPath is where NAB keeps a detector's output for a data file:
// results/DETECTOR/CATEGORY/DETECTOR_FILE.
func numentaPath(resultsDir, detector, file string) string {
	dir, name := path.Split(file)
	return filepath.Join(resultsDir, filepath.FromSlash(dir), detector+"_"+name)
}

// Scored is one detector's output over a corpus, labelled for one profile.
type Scored struct {
	rows    []row
	files   map[string][]row
	windows map[string][]int
	total   int // windows in the corpus
}

// label labels every file's detector output (scores[file], one per row) for a profile.
func (c *Corpus) label(times map[string][]time.Time, scores map[string][]float64, cost CostMatrix) (*Scored, error) {
	s := &Scored{files: map[string][]row{}, windows: map[string][]int{}}
	for _, f := range c.Files {
		rows, err := fileRows(times[f], scores[f], c.Windows[f], s.total, cost)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		s.total += len(c.Windows[f])
		s.files[f] = rows
		s.windows[f] = scoredWindows(rows)
		s.rows = append(s.rows, rows...)
	}
	return s, nil
}

// Report is a detector's result on a corpus for one profile.
type Report struct {
	Profile    string
	Best       Result // optimised over the corpus
	Normalized float64
	Files      map[string]Result // at the corpus threshold
}

// evaluate optimises the threshold over the corpus for each profile, scores
// each file at it and normalises the total.
func (c *Corpus) evaluate(times map[string][]time.Time, scores map[string][]float64) ([]Report, error) {
	var out []Report
	for _, p := range c.Profiles {
		s, err := c.label(times, scores, p.Cost)
		if err != nil {
			return nil, err
		}
		best := optimize(s.rows, p.Cost)
		r := Report{Profile: p.Name, Best: best, Normalized: normalized(best.Score, s.total, p.Cost), Files: map[string]Result{}}
		for f, rows := range s.files {
			r.Files[f] = scoreAt(rows, s.windows[f], best.Threshold, p.Cost)
		}
		out = append(out, r)
	}
	return out, nil
}

// readPublished reads one of NAB's DETECTOR_PROFILE_scores.csv files: each
// file's result at the threshold NAB optimised over its whole corpus.
func readPublished(path string) (map[string]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 || len(recs[0]) < 9 || recs[0][2] != "File" {
		return nil, fmt.Errorf("%s: not a NAB scores file", path)
	}
	out := map[string]Result{}
	for _, rec := range recs[1:] {
		if rec[0] == "Totals" {
			continue
		}
		var r Result
		var errs [6]error
		r.Threshold, errs[0] = strconv.ParseFloat(rec[3], 64)
		r.Score, errs[1] = strconv.ParseFloat(rec[4], 64)
		r.TP, errs[2] = strconv.Atoi(rec[5])
		r.TN, errs[3] = strconv.Atoi(rec[6])
		r.FP, errs[4] = strconv.Atoi(rec[7])
		r.FN, errs[5] = strconv.Atoi(rec[8])
		for _, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("%s: %v: %w", path, rec, err)
			}
		}
		out[rec[2]] = r
	}
	return out, nil
}

// publishedScore sums a detector's published per-file scores over the
// corpus's files and normalises the sum: the detector's NAB score restricted
// to this corpus, at the threshold NAB chose on its whole corpus.
func (c *Corpus) publishedScore(path string, cost CostMatrix) (float64, error) {
	pub, err := readPublished(path)
	if err != nil {
		return 0, err
	}
	raw, windows := 0.0, 0
	for _, f := range c.Files {
		r, ok := pub[f]
		if !ok {
			return 0, fmt.Errorf("%s: no score for %s", path, f)
		}
		raw += r.Score
		windows += len(c.Windows[f])
	}
	return normalized(raw, windows, cost), nil
}
