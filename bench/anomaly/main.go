// Command anomaly runs the anomaly package's ensemble detector on the Numenta
// Anomaly Benchmark (NAB) corpus and scores it with NAB's own method (nab.go),
// next to NAB's published numenta output rescored by the same code and the
// published per-file scores of numenta and ARTime restricted to the corpus.
//
//	go run ./bench/anomaly [-data ../shared/data/nab/data] [-out DIR] [-config JSON] [-files]
//
// Each input CSV (timestamp,value) gets a detector of its own with the same
// parameters; its output (timestamp,value,anomaly_score) goes under the same
// relative path in -out. Each detector's warm-up is the file's NAB
// probationary period, which NAB hands to every detector. The program prints
// each profile's normalised score (null detector 0, perfect detector 100) and
// the threshold NAB's optimiser chose over the corpus.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"aigrid/packages/anomaly"
)

func main() {
	data := flag.String("data", "../shared/data/nab/data", "directory of NAB data CSV files (timestamp,value)")
	out := flag.String("out", "", "directory to write the detector's output to (none if empty)")
	windows := flag.String("windows", "", "NAB labels (default: windows.json beside -data)")
	profiles := flag.String("profiles", "", "NAB profiles (default: profiles.json beside -data)")
	numenta := flag.String("numenta", "", "NAB's published numenta output (default: results/numenta beside -data; none if absent)")
	published := flag.String("published", "", "directory of NAB's published DETECTOR_PROFILE_scores.csv files (default: beside -data; none if absent)")
	config := flag.String("config", "", "detector parameters as JSON, over anomaly.DefaultConfig")
	perFile := flag.Bool("files", false, "print each file's standard-profile score too")
	flag.Parse()
	root := filepath.Dir(filepath.Clean(*data))
	def := func(p *string, rel string) {
		if *p == "" {
			*p = filepath.Join(root, rel)
		}
	}
	def(windows, "windows.json")
	def(profiles, "profiles.json")
	def(numenta, filepath.Join("results", "numenta"))
	def(published, ".")
	cfg := anomaly.DefaultConfig()
	if *config != "" {
		if err := json.Unmarshal([]byte(*config), &cfg); err != nil {
			log.Fatalf("-config: %v", err)
		}
	}
	if err := run(*data, *out, *windows, *profiles, *numenta, *published, cfg, *perFile); err != nil {
		log.Fatal(err)
	}
}

func run(dataDir, outDir, windowsPath, profilesPath, numentaDir, publishedDir string, cfg anomaly.Config, perFile bool) error {
	c, err := loadCorpus(dataDir, windowsPath, profilesPath)
	if err != nil {
		return err
	}
	start := time.Now()
	times, scores, err := detectCorpus(c, dataDir, outDir, cfg)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	ours, err := c.evaluate(times, scores)
	if err != nil {
		return err
	}
	points := 0
	for _, t := range times {
		points += len(t)
	}
	fmt.Printf("%d files, %d points, %d windows; detection took %v (%.1f µs/point)\n",
		len(c.Files), points, countWindows(c), elapsed.Round(time.Millisecond),
		float64(elapsed.Microseconds())/float64(points))
	type line struct {
		name      string
		scores    []float64
		threshold []float64 // nil when NAB chose it
	}
	fromReports := func(name string, rs []Report) line {
		l := line{name: name}
		for _, r := range rs {
			l.scores = append(l.scores, r.Normalized)
			l.threshold = append(l.threshold, r.Best.Threshold)
		}
		return l
	}
	lines := []line{fromReports("aigrid ensemble", ours)}
	var numentaReports []Report
	if _, err := os.Stat(numentaDir); err == nil {
		ns := map[string][]float64{}
		for _, f := range c.Files {
			s, err := readColumn(numentaPath(numentaDir, "numenta", f), "anomaly_score")
			if err != nil {
				return err
			}
			ns[f] = s.Values
		}
		if numentaReports, err = c.evaluate(times, ns); err != nil {
			return err
		}
		lines = append(lines, fromReports("numenta, its output rescored here", numentaReports))
	}
	// NAB's published per-file scores, where present, restricted to this corpus.
	for _, det := range []string{"numenta", "ARTime"} {
		l := line{name: det + ", published per-file scores"}
		for _, p := range c.Profiles {
			path := filepath.Join(publishedDir, det+"_"+p.Name+"_scores.csv")
			if _, err := os.Stat(path); err != nil {
				break
			}
			v, err := c.publishedScore(path, p.Cost)
			if err != nil {
				return err
			}
			l.scores = append(l.scores, v)
		}
		if len(l.scores) == len(c.Profiles) {
			lines = append(lines, l)
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "NAB score\t%s\tthresholds\t\n", strings.Join(profileOrder, "\t"))
	for _, l := range lines {
		fmt.Fprintf(w, "%s\t", l.name)
		for _, v := range l.scores {
			fmt.Fprintf(w, "%.1f\t", v)
		}
		var ts []string
		for _, t := range l.threshold {
			ts = append(ts, strconv.FormatFloat(t, 'f', 4, 64))
		}
		fmt.Fprintf(w, "%s\t\n", strings.Join(ts, " "))
	}
	w.Flush()
	if perFile {
		w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "file\tscore\tTP\tFP\tFN\twindows\tnumenta")
		for _, f := range c.Files {
			r := ours[0].Files[f]
			n := ""
			if numentaReports != nil {
				n = strconv.FormatFloat(numentaReports[0].Files[f].Score, 'f', 3, 64)
			}
			fmt.Fprintf(w, "%s\t%.3f\t%d\t%d\t%d\t%d\t%s\n", f, r.Score, r.TP, r.FP, r.FN, len(c.Windows[f]), n)
		}
		w.Flush()
	}
	return nil
}

func countWindows(c *Corpus) int {
	n := 0
	for _, f := range c.Files {
		n += len(c.Windows[f])
	}
	return n
}

// detectCorpus runs one detector per file, files in parallel, and writes the
// output files when outDir is set.
func detectCorpus(c *Corpus, dataDir, outDir string, cfg anomaly.Config) (map[string][]time.Time, map[string][]float64, error) {
	type result struct {
		file   string
		times  []time.Time
		scores []float64
		err    error
	}
	jobs := make(chan string)
	results := make(chan result)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for f := range jobs {
				t, s, err := detectFile(filepath.Join(dataDir, filepath.FromSlash(f)), outDir, f, cfg)
				results <- result{f, t, s, err}
			}
		})
	}
	go func() {
		for _, f := range c.Files {
			jobs <- f
		}
		close(jobs)
		wg.Wait()
		close(results)
	}()
	times := map[string][]time.Time{}
	scores := map[string][]float64{}
	var first error
	for r := range results {
		if r.err != nil && first == nil {
			first = fmt.Errorf("%s: %w", r.file, r.err)
		}
		times[r.file], scores[r.file] = r.times, r.scores
	}
	return times, scores, first
}

// detectFile scores one file with a fresh detector whose warm-up is the
// file's probationary period.
func detectFile(path, outDir, rel string, cfg anomaly.Config) ([]time.Time, []float64, error) {
	s, err := readColumn(path, "value")
	if err != nil {
		return nil, nil, err
	}
	cfg.Warmup = probationLength(len(s.Values))
	d, err := anomaly.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	scores := make([]float64, len(s.Values))
	for i, v := range s.Values {
		r, err := d.Update(v)
		if err != nil {
			return nil, nil, fmt.Errorf("row %d: %w", i+2, err)
		}
		scores[i] = r.Score
	}
	if outDir == "" {
		return s.Times, scores, nil
	}
	return s.Times, scores, writeOutput(filepath.Join(outDir, filepath.FromSlash(rel)), s, scores)
}

func writeOutput(path string, s Series, scores []float64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "timestamp,value,anomaly_score")
	for i, t := range s.Times {
		fmt.Fprintf(w, "%s,%s,%s\n", t.Format(time.DateTime), strconv.FormatFloat(s.Values[i], 'g', -1, 64), strconv.FormatFloat(scores[i], 'g', -1, 64))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
