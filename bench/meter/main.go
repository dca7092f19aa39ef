// Command meter measures what metering costs, in one run on loopback:
//
//  1. The ledger alone: settlements per second through the meter (many
//     concurrent calls, each a Reserve then a Settle, made durable in the
//     meter's journal and applied to a real SQLite file), against the target
//     of 20,000;
//     and, for reference, raw CommitTxs batches per second at a few sizes.
//  2. The gateway: a real `aigrid serve` with metering on beside one with
//     --unmetered, the same mock upstream and the same clients, non-streaming
//     and streaming; the ratio of their requests per second (target ≥ 0.9).
//     Throughput is measured with enough clients to keep the machine busy
//     (128; each line reports the machine's idle share), and again with
//     fewer (32), where each call's wait for its settlement's sync shows.
//
// After each part it checks the ledger: every settlement is in it once, every
// transaction balances, balances and revenue add up. It prints one JSON line
// per measurement and a summary line with both ratios.
//
//	go run ./bench/meter [-gateway=false] [-ledger-duration 5s] [-workers 64] [-duration 3s] [-rounds 3] [-concurrency 128] [-light-concurrency 32] [-cpuprofile FILE] [-server-profiles DIR]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"time"

	"aigrid/internal/serveproc"
	"aigrid/sqlite"
)

func main() {
	var o options
	flag.DurationVar(&o.ledgerDuration, "ledger-duration", 5*time.Second, "how long the meter's settlement benchmark runs")
	flag.IntVar(&o.workers, "workers", 64, "concurrent calls in the settlement benchmark")
	flag.IntVar(&o.tenants, "tenants", 1, "tenants the settlement benchmark's calls are spread over")
	flag.DurationVar(&o.commitDuration, "commit-duration", 2*time.Second, "how long each raw CommitTxs batch size runs")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "how long each gateway round runs, per setup")
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds of metered and unmetered per mode")
	flag.IntVar(&o.concurrency, "concurrency", 128, "closed-loop clients against each gateway for the throughput ratio")
	flag.IntVar(&o.lightConcurrency, "light-concurrency", 32, "closed-loop clients for a second comparison under lighter load (0: none)")
	flag.BoolVar(&o.gateway, "gateway", true, "run the gateway comparison after the ledger benchmarks")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the settlement benchmark to this file")
	flag.StringVar(&o.serverProfiles, "server-profiles", "", "write both servers' CPU profiles, and the clients', over the first round of each comparison to this directory")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "meter:", err)
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

type options struct {
	ledgerDuration, commitDuration, duration time.Duration
	workers, tenants, rounds, concurrency    int
	lightConcurrency                         int
	cpuProfile, serverProfiles               string
	gateway                                  bool
}

func (o *options) check() error {
	for name, n := range map[string]int{"workers": o.workers, "tenants": o.tenants, "rounds": o.rounds, "concurrency": o.concurrency} {
		if n < 1 {
			return fmt.Errorf("-%s must be at least 1, got %d", name, n)
		}
	}
	if o.lightConcurrency < 0 || o.lightConcurrency == o.concurrency {
		return fmt.Errorf("-light-concurrency must be 0 (none) or another number of clients than -concurrency, got %d", o.lightConcurrency)
	}
	for name, d := range map[string]time.Duration{"ledger-duration": o.ledgerDuration, "commit-duration": o.commitDuration, "duration": o.duration} {
		if d <= 0 {
			return fmt.Errorf("-%s must be positive, got %s", name, d)
		}
	}
	return nil
}

// commitSizes are the batch sizes of the raw CommitTxs reference: one
// transaction per commit (no grouping), and two group sizes.
var commitSizes = []int{1, 64, 512}

func run(o options) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "aigrid-bench-meter-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	dir, err := os.MkdirTemp(work, "settle-")
	if err != nil {
		return err
	}
	var profile io.Writer
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		profile = f
	}
	settle, err := benchSettle(ctx, dir, o.workers, o.tenants, 0, o.ledgerDuration, profile)
	if err != nil {
		return fmt.Errorf("settlement benchmark: %w", err)
	}
	if settle.UsageRows != settle.Settlements || len(settle.Unbalanced) > 0 {
		return fmt.Errorf("settlement benchmark: %d settlements, %d in the ledger, unbalanced %v", settle.Settlements, settle.UsageRows, settle.Unbalanced)
	}
	emit(settle)
	for _, size := range commitSizes {
		dir, err := os.MkdirTemp(work, "commit-")
		if err != nil {
			return err
		}
		r, err := benchCommit(ctx, dir, size, 0, o.commitDuration)
		if err != nil {
			return fmt.Errorf("CommitTxs benchmark: %w", err)
		}
		emit(r)
	}

	var ratios, light map[string]float64
	if o.gateway {
		byClients, err := benchGateway(ctx, work, o)
		if err != nil {
			return err
		}
		ratios, light = byClients[o.concurrency], byClients[o.lightConcurrency]
	}
	emit(map[string]any{
		"summary":                       "meter",
		"settlements_per_s":             settle.PerSecond,
		"settle_ratio_to_target":        settle.Ratio,
		"settle_target_per_s":           settleTarget,
		"gateway_ratio_non_streaming":   ratios["non_streaming"],
		"gateway_ratio_streaming":       ratios["streaming"],
		"gateway_ratio_target":          gatewayTarget,
		"settle_target_met":             settle.Ratio >= 1,
		"gateway_target_met":            o.gateway && ratios["non_streaming"] >= gatewayTarget && ratios["streaming"] >= gatewayTarget,
		"group_commits_mean_batch":      settle.MeanBatch,
		"gateway_concurrency":           o.concurrency,
		"light_ratio_non_streaming":     light["non_streaming"],
		"light_ratio_streaming":         light["streaming"],
		"light_concurrency":             o.lightConcurrency,
		"settlement_benchmark_workers":  o.workers,
		"settlement_benchmark_duration": o.ledgerDuration.String(),
	})
	return nil
}

// benchGateway compares a metered and an unmetered aigrid, then checks that
// every response a client received from the metered one is in its ledger once.
// The ratios are by concurrency, then by mode.
func benchGateway(ctx context.Context, work string, o options) (map[int]map[string]float64, error) {
	bin, err := serveproc.Build(work)
	if err != nil {
		return nil, err
	}
	mock := startMock()
	defer mock.Close()
	config := filepath.Join(work, "grid.yaml")
	if err := os.WriteFile(config, []byte(gridConfig(mock.URL+"/v1")), 0o600); err != nil {
		return nil, err
	}
	start := time.Now()
	mp, err := startAigrid(bin, filepath.Join(work, "metered"), config)
	if err != nil {
		return nil, err
	}
	defer mp.Stop()
	up, err := startAigrid(bin, filepath.Join(work, "unmetered"), config, "--unmetered")
	if err != nil {
		return nil, err
	}
	defer up.Stop()
	metered := &gateway{name: "metered", url: mp.URL, key: benchKey, pid: mp.PID(), profiles: o.serverProfiles}
	unmetered := &gateway{name: "unmetered", url: up.URL, key: benchKey, pid: up.PID(), profiles: o.serverProfiles}

	ratios := map[int]map[string]float64{}
	for _, clients := range []int{o.concurrency, o.lightConcurrency} {
		if clients == 0 {
			continue
		}
		ratios[clients] = map[string]float64{}
		for _, stream := range []bool{false, true} {
			m, u, ratio := compare(metered, unmetered, stream, clients, o.rounds, 0, o.duration)
			emit(u)
			emit(m)
			ratios[clients][m.Mode] = ratio
			emit(map[string]any{"bench": "gateway_ratio", "mode": m.Mode, "concurrency": clients, "ratio": ratio, "target": gatewayTarget})
		}
	}

	// Read both ledgers once the servers have shut down cleanly.
	if err := mp.Stop(); err != nil {
		return nil, fmt.Errorf("metered aigrid: %w", err)
	}
	if err := up.Stop(); err != nil {
		return nil, fmt.Errorf("unmetered aigrid: %w", err)
	}
	to := time.Now().Add(time.Minute)
	for _, g := range []struct {
		gw   *gateway
		proc *aigridProcess
	}{{metered, mp}, {unmetered, up}} {
		db, err := sqlite.Open(filepath.Join(g.proc.dataDir, "aigrid.db"))
		if err != nil {
			return nil, err
		}
		c, err := checkLedger(ctx, db, start.Add(-time.Minute), to)
		db.Close()
		if err != nil {
			return nil, err
		}
		ok, errs := g.gw.ok.Load(), g.gw.errors.Load()
		emit(map[string]any{"bench": "gateway_ledger", "setup": g.gw.name, "responses_ok": ok, "errors": errs,
			"usage_rows": c.UsageRows, "charged_minor": c.Charged, "unbalanced": len(c.Unbalanced),
			"check_ledger_s": c.CheckSeconds, "check_ledger_skipped": c.CheckSkipped})
		// A complete response is settled exactly once; a failed one may be
		// settled (a stream cut after some output) or not.
		want := ok
		if g.gw == unmetered {
			want, errs = 0, 0
		}
		if c.UsageRows < want || c.UsageRows > want+errs || len(c.Unbalanced) > 0 {
			return nil, fmt.Errorf("%s ledger: %d usage rows for %d complete responses and %d errors; unbalanced %v",
				g.gw.name, c.UsageRows, ok, errs, c.Unbalanced)
		}
	}
	return ratios, nil
}

func emit(v any) {
	line, err := json.Marshal(v)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(line))
}

func round(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct returns the p-th percentile of xs, which it sorts.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return round(xs[int(float64(len(xs)-1)*p/100)])
}
