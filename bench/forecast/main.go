// Command forecast runs aigrid's forecast package over an M4 training file.
// It writes one row per series (the id, then the forecasts), or with
// -validate holds out the last horizon of each series and prints sMAPE, MASE
// and OWA against Naive2 for the automatic choice and for each method alone.
//
//	go run ./bench/forecast -data ../shared/data/m4/Hourly-train.csv -horizon 48 -season 24 -validate
//	go run ./bench/forecast -data ../shared/data/m4/Weekly-train.csv -horizon 13 -season 1 -out weekly.csv
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"aigrid/packages/forecast"
)

type series struct {
	id     string
	values []float64
}

func main() {
	data := flag.String("data", "", "an M4 training CSV (\"V1\" id column, then values)")
	horizon := flag.Int("horizon", 0, "steps to forecast")
	season := flag.String("season", "1", "seasonal period (24 hourly, 1 weekly), or a list of periods, the main one first (24,168)")
	out := flag.String("out", "", "where to write the forecasts (default standard output)")
	validate := flag.Bool("validate", false, "hold out the last horizon of each series and print accuracy")
	methodList := flag.String("methods", "", "with -validate: methods to score (default: auto, naive2 and every candidate of the automatic choice)")
	limit := flag.Int("limit", 0, "use only the first N series (0: all)")
	scores := flag.String("scores", "", "with -validate: also write each series' sMAPE and MASE per method to this CSV")
	flag.Parse()
	seasons, err := parseSeasons(*season)
	if *data == "" || *horizon < 1 || err != nil {
		flag.Usage()
		os.Exit(2)
	}
	all, err := readM4(*data)
	if err != nil {
		log.Fatal(err)
	}
	if *limit > 0 && *limit < len(all) {
		all = all[:*limit]
	}
	if *validate {
		names := []string{forecast.MethodAuto, forecast.MethodNaive2}
		if *methodList != "" {
			names = strings.Split(*methodList, ",")
		} else {
			for _, c := range forecast.Candidates(seasons) {
				if !contains(names, c) {
					names = append(names, c)
				}
			}
		}
		validateAll(all, *horizon, seasons, names, *scores)
		return
	}
	if *out == "" {
		err = writeForecasts(os.Stdout, all, *horizon, seasons)
	} else {
		var f *os.File
		if f, err = os.Create(*out); err != nil {
			log.Fatal(err)
		}
		err = writeForecasts(f, all, *horizon, seasons)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		log.Fatal(err)
	}
}

// parseSeasons reads -season: one period, which gets forecast.DefaultSeasons,
// or a list of periods taken as given.
func parseSeasons(text string) ([]int, error) {
	var seasons []int
	for _, f := range strings.Split(text, ",") {
		m, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		seasons = append(seasons, m)
	}
	if len(seasons) == 1 {
		return forecast.DefaultSeasons(seasons[0]), nil
	}
	return seasons, nil
}

func readM4(path string) ([]series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("%s: no series under the header row", path)
	}
	var all []series
	for _, row := range rows[1:] {
		s := series{id: row[0]}
		for _, cell := range row[1:] {
			if cell == "" {
				break
			}
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: series %s: %v", path, s.id, err)
			}
			s.values = append(s.values, v)
		}
		all = append(all, s)
	}
	return all, nil
}

// parallel runs do(i) for i in [0, n) on every core.
func parallel(n int, do func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				do(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func writeForecasts(w io.Writer, all []series, h int, seasons []int) error {
	rows := make([][]string, len(all))
	var failed error
	var mu sync.Mutex
	parallel(len(all), func(i int) {
		res, err := forecast.Forecast(all[i].values, forecast.Options{Horizon: h, Seasons: seasons})
		if err != nil {
			mu.Lock()
			failed = fmt.Errorf("series %s: %w", all[i].id, err)
			mu.Unlock()
			return
		}
		row := []string{all[i].id}
		for _, v := range res.Point {
			row = append(row, strconv.FormatFloat(v, 'g', 8, 64))
		}
		rows[i] = row
	})
	if failed != nil {
		return failed
	}
	cw := csv.NewWriter(w)
	cw.WriteAll(rows)
	return cw.Error()
}

// score is one method's accuracy summed over series.
type score struct{ smape, mase float64 }

func validateAll(all []series, h int, seasons []int, names []string, scoresPath string) {
	m := seasons[0]
	if !contains(names, forecast.MethodNaive2) {
		names = append(names, forecast.MethodNaive2)
	}
	perSeries := make([][]score, len(all))
	chosen := make([]string, len(all))
	// inside[i][l] counts the held-out points of series i inside auto's
	// interval at levels[l].
	levels := []float64{80, 95}
	inside := make([][]int, len(all))
	parallel(len(all), func(i int) {
		v := all[i].values
		if len(v) <= h {
			return
		}
		train, test := v[:len(v)-h], v[len(v)-h:]
		perSeries[i] = make([]score, len(names))
		for j, name := range names {
			res, err := forecast.Forecast(train, forecast.Options{Horizon: h, Seasons: seasons, Method: name, Levels: levels})
			if err != nil {
				log.Fatalf("series %s, %s: %v", all[i].id, name, err)
			}
			if name == forecast.MethodAuto {
				chosen[i] = res.Method
				inside[i] = make([]int, len(levels))
				for l, iv := range res.Intervals {
					for k, a := range test {
						if iv.Lower[k] <= a && a <= iv.Upper[k] {
							inside[i][l]++
						}
					}
				}
			}
			perSeries[i][j] = score{forecast.SMAPE(test, res.Point), forecast.MASE(train, test, res.Point, m)}
		}
	})
	if scoresPath != "" {
		if err := writeScores(scoresPath, all, names, perSeries, chosen); err != nil {
			log.Fatal(err)
		}
	}
	totals := make([]score, len(names))
	count := 0
	for _, s := range perSeries {
		if s == nil {
			continue
		}
		count++
		for j := range names {
			totals[j].smape += s[j].smape
			totals[j].mase += s[j].mase
		}
	}
	base := totals[indexOf(names, forecast.MethodNaive2)]
	order := make([]int, len(names))
	for j := range order {
		order[j] = j
	}
	owa := func(s score) float64 { return (s.smape/base.smape + s.mase/base.mase) / 2 }
	sort.Slice(order, func(a, b int) bool { return owa(totals[order[a]]) < owa(totals[order[b]]) })
	fmt.Printf("%d series, horizon %d, seasons %v\n", count, h, seasons)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tsMAPE\tMASE\tOWA\t")
	for _, j := range order {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t\n", names[j], totals[j].smape/float64(count), totals[j].mase/float64(count), owa(totals[j]))
	}
	tw.Flush()
	if contains(names, forecast.MethodAuto) {
		// How often each method took part in auto's forecast, alone or in
		// a mean: the full choices are too many to read.
		counts, alone := map[string]int{}, 0
		for _, c := range chosen {
			if c == "" {
				continue
			}
			parts := strings.Split(c, "+")
			if len(parts) == 1 {
				alone++
			}
			seen := map[string]bool{}
			for _, p := range parts {
				if !seen[p] {
					seen[p] = true
					counts[p]++
				}
			}
		}
		used := make([]string, 0, len(counts))
		for name := range counts {
			used = append(used, name)
		}
		sort.Slice(used, func(a, b int) bool {
			return counts[used[a]] > counts[used[b]] || counts[used[a]] == counts[used[b]] && used[a] < used[b]
		})
		fmt.Printf("auto used one method alone in %d series, a mean in %d; series in which each method took part:\n", alone, count-alone)
		for _, name := range used {
			fmt.Printf("  %s %d\n", name, counts[name])
		}
		for l, level := range levels {
			in := 0
			for _, c := range inside {
				if c != nil {
					in += c[l]
				}
			}
			fmt.Printf("auto's %g%% intervals held %.1f%% of the held-out points\n", level, 100*float64(in)/float64(count*h))
		}
	}
}

func contains(names []string, name string) bool { return indexOf(names, name) >= 0 }

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

func writeScores(path string, all []series, names []string, perSeries [][]score, chosen []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	w.Write([]string{"id", "method", "smape", "mase", "chosen"})
	for i, s := range perSeries {
		for j, sc := range s {
			w.Write([]string{all[i].id, names[j], strconv.FormatFloat(sc.smape, 'g', 6, 64), strconv.FormatFloat(sc.mase, 'g', 6, 64), chosen[i]})
		}
	}
	w.Flush()
	return w.Error()
}
