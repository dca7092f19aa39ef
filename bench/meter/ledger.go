package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"aigrid"
	"aigrid/internal/serveproc"
	"aigrid/meter"
	"aigrid/sqlite"
)

// settleTarget is the settlements per second the ledger alone must sustain.
const settleTarget = 20_000

// openingBalance is each bench tenant's prepaid credit, in minor units: far
// more than any run spends, so that no reservation is refused.
const openingBalance aigrid.Money = 10_000_000_000_000

// kes is the bench grid's currency.
var kes = aigrid.Currency{Code: "KES", Exponent: 2}

// benchTariff is the example tariff: a free lifeline block, two
// priced blocks, half price at night.
func benchTariff() *aigrid.Tariff {
	return &aigrid.Tariff{Name: "public",
		Effective: time.Now().AddDate(0, -2, 0).Truncate(24 * time.Hour),
		Blocks: []aigrid.Block{
			{UpTo: 200_000},
			{UpTo: 5_000_000, Input: 20 * aigrid.RateScale, Output: 60 * aigrid.RateScale},
			{Input: 30 * aigrid.RateScale, Output: 90 * aigrid.RateScale},
		},
		OffPeak: &aigrid.TimeOfUse{From: 22 * 60, To: 6 * 60, Factor: 500}}
}

// benchLimits are set so that every check runs and none refuses.
// (The meter's rate limiter divides a minute by the limit in nanoseconds, so a
// limit must stay well under 6e10.)
var benchLimits = aigrid.Limits{RPM: 100_000_000, TPM: 10_000_000_000, TokensPerMonth: 1_000_000_000_000_000}

// countingLedger counts the meter's group commits and the time spent in
// them, to show how many settlements share one database transaction and
// whether the one committer is the bottleneck.
type countingLedger struct {
	aigrid.LedgerService
	batches, txs, busy atomic.Int64
}

func (c *countingLedger) CommitTxs(ctx context.Context, txs []*aigrid.LedgerTx) ([]bool, error) {
	start := time.Now()
	defer func() { c.busy.Add(int64(time.Since(start))) }()
	c.batches.Add(1)
	c.txs.Add(int64(len(txs)))
	return c.LedgerService.CommitTxs(ctx, txs)
}

// openLedger creates a store in dir with the tariff and n prepaid tenants.
func openLedger(ctx context.Context, dir string, n int) (*sqlite.DB, []*aigrid.Tenant, error) {
	db, err := sqlite.Open(filepath.Join(dir, "aigrid.db"))
	if err != nil {
		return nil, nil, err
	}
	if err := db.PutTariff(ctx, benchTariff()); err != nil {
		db.Close()
		return nil, nil, err
	}
	tenants := make([]*aigrid.Tenant, n)
	for i := range tenants {
		t := &aigrid.Tenant{Name: fmt.Sprintf("bench-%d", i)}
		if err := db.CreateTenant(ctx, t); err != nil {
			db.Close()
			return nil, nil, err
		}
		if err := db.PutAccount(ctx, &aigrid.Account{TenantID: t.ID, Type: aigrid.Prepaid, Tariff: "public", Limits: benchLimits}); err != nil {
			db.Close()
			return nil, nil, err
		}
		tenants[i] = t
	}
	return db, tenants, nil
}

// settleResult is one run of Reserve+Settle through the meter.
type settleResult struct {
	Bench       string  `json:"bench"`
	Workers     int     `json:"workers"`
	Tenants     int     `json:"tenants"`
	Settlements int64   `json:"settlements"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"settlements_per_s"`
	// CPUus is this process's CPU time (user and system) per settlement:
	// the meter's own cost, reservations included.
	CPUus       float64 `json:"cpu_us_per_settlement"`
	Target      int     `json:"target_per_s"`
	Ratio       float64 `json:"ratio_to_target"`
	SettleP50ms float64 `json:"settle_p50_ms"`
	SettleP99ms float64 `json:"settle_p99_ms"`
	// GroupCommits is how many database transactions the meter wrote: its
	// applies of the journal to the ledger.
	GroupCommits int64   `json:"group_commits"`
	MeanBatch    float64 `json:"mean_batch"`
	// CommitMs is the mean time of one apply; CommitterBusy the share of
	// the run the applier spent in them (1: saturated).
	CommitMs      float64 `json:"commit_mean_ms"`
	CommitterBusy float64 `json:"committer_busy"`
	ledgerCheck
}

// ledgerCheck is what the ledger holds after a run.
type ledgerCheck struct {
	// UsageRows counts the metered calls in the ledger.
	UsageRows int64 `json:"usage_rows"`
	// Charged is the usage revenue, in minor units.
	Charged aigrid.Money `json:"charged_minor"`
	// Unbalanced lists transactions whose entries do not sum to zero.
	Unbalanced []string `json:"unbalanced,omitempty"`
	// CheckSeconds is how long the store's CheckLedger took; CheckSkipped
	// says why it was not done.
	CheckSeconds float64 `json:"check_ledger_s"`
	CheckSkipped string  `json:"check_ledger_skipped,omitempty"`
}

// checkTimeout bounds the store's CheckLedger, which reads the whole
// ledger: past it the run reports the check as not done rather than hang.
const checkTimeout = 20 * time.Second

// checkLedger sums the usage of calls made in [from, to) and checks that
// every transaction balances.
func checkLedger(ctx context.Context, l aigrid.LedgerService, from, to time.Time) (ledgerCheck, error) {
	var c ledgerCheck
	lines, err := l.Revenue(ctx, from, to)
	if err != nil {
		return c, err
	}
	for _, line := range lines {
		c.UsageRows += line.Calls
		c.Charged += line.Revenue
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	start := time.Now()
	c.Unbalanced, err = l.CheckLedger(ctx)
	if err != nil && ctx.Err() != nil {
		c.CheckSkipped = fmt.Sprintf("CheckLedger did not finish in %s", checkTimeout)
		return c, nil
	}
	c.CheckSeconds = round(time.Since(start).Seconds())
	return c, err
}

// served is what every bench call used: a chat turn big enough that its
// price, past the lifeline block, is a few minor units and not rounded away.
var served = aigrid.Served{Service: "chat", Provider: "mock", Model: "fast",
	Cost:  aigrid.Price{Input: 5 * aigrid.RateScale, Output: 10 * aigrid.RateScale},
	Usage: aigrid.Usage{PromptTokens: 500, CompletionTokens: 500, TotalTokens: 1000}}

// benchSettle runs workers concurrent calls, each a Reserve then a Settle,
// through a meter over a fresh SQLite store in dir, for d or until limit
// calls (0: no limit), whichever comes first, under the CPU profiler when
// profile is not nil. It then checks that every settlement is in the ledger
// once and that the balances add up.
func benchSettle(ctx context.Context, dir string, workers, tenants int, limit int64, d time.Duration, profile io.Writer) (settleResult, error) {
	r := settleResult{Bench: "ledger_settle", Workers: workers, Tenants: tenants, Target: settleTarget}
	db, ts, err := openLedger(ctx, dir, tenants)
	if err != nil {
		return r, err
	}
	defer db.Close()
	counted := &countingLedger{LedgerService: db}
	m, err := meter.New(ctx, counted, meter.Settings{Currency: kes, Location: time.UTC, JournalDir: filepath.Join(dir, "journal")})
	if err != nil {
		return r, err
	}
	defer m.Close()
	for _, t := range ts {
		if _, err := m.TopUp(ctx, t.ID, openingBalance, fmt.Sprintf("opening-%d", t.ID), "bench"); err != nil {
			return r, err
		}
	}
	// The top-ups were commits too; count only the settlements'.
	counted.batches.Store(0)
	counted.txs.Store(0)
	counted.busy.Store(0)

	var (
		issued, settled atomic.Int64
		mu              sync.Mutex
		lat             []float64
		firstErr        error
		wg              sync.WaitGroup
	)
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return r, err
		}
	}
	start, cpu0 := time.Now(), serveproc.CPUTime(os.Getpid())
	stop := start.Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			var err error
			for time.Now().Before(stop) {
				n := issued.Add(1)
				if limit > 0 && n > limit {
					break
				}
				call := &aigrid.Call{ID: fmt.Sprintf("call-%d", n), Tenant: ts[int(n)%len(ts)], Service: "chat"}
				var h *aigrid.Hold
				if h, err = m.Reserve(ctx, call, aigrid.Estimate{PromptTokens: 500, MaxTokens: 1000}); err != nil {
					break
				}
				t0 := time.Now()
				if err = m.Settle(ctx, h, served); err != nil {
					break
				}
				mine = append(mine, ms(time.Since(t0)))
				settled.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	// A settlement is durable in the journal when Settle returns; the run
	// counts until the last one is in the ledger too.
	if err := m.Sync(ctx); err != nil {
		return r, err
	}
	elapsed := time.Since(start).Seconds()
	if profile != nil {
		pprof.StopCPUProfile()
	}
	if firstErr != nil {
		return r, firstErr
	}
	r.Settlements, r.Seconds = settled.Load(), round(elapsed)
	r.PerSecond = round(float64(r.Settlements) / elapsed)
	if r.Settlements > 0 {
		r.CPUus = round(float64((serveproc.CPUTime(os.Getpid()) - cpu0).Microseconds()) / float64(r.Settlements))
	}
	r.Ratio = round(r.PerSecond / settleTarget)
	r.SettleP50ms, r.SettleP99ms = pct(lat, 50), pct(lat, 99)
	r.GroupCommits = counted.batches.Load()
	if r.GroupCommits > 0 {
		r.MeanBatch = round(float64(counted.txs.Load()) / float64(r.GroupCommits))
		busy := time.Duration(counted.busy.Load())
		r.CommitMs = round(ms(busy) / float64(r.GroupCommits))
		r.CommitterBusy = round(busy.Seconds() / elapsed)
	}

	// The meter's live balances must be what the ledger says, and together
	// with the revenue they must make up what was topped up.
	var total aigrid.Money
	for _, t := range ts {
		live, err := m.Balance(ctx, t.ID)
		if err != nil {
			return r, err
		}
		stored, err := db.AccountBalance(ctx, aigrid.TenantAccount(t.ID), time.Time{})
		if err != nil {
			return r, err
		}
		if live.BalanceMinor != stored {
			return r, fmt.Errorf("tenant %d: the meter says %d, the ledger %d", t.ID, live.BalanceMinor, stored)
		}
		total += stored
	}
	if r.ledgerCheck, err = checkLedger(ctx, db, start.Add(-time.Minute), time.Now().Add(time.Minute)); err != nil {
		return r, err
	}
	if want := openingBalance * aigrid.Money(len(ts)); total+r.Charged != want {
		return r, fmt.Errorf("balances %d plus revenue %d make %d, not the %d topped up", total, r.Charged, total+r.Charged, want)
	}
	return r, nil
}

// commitResult is raw CommitTxs throughput at one batch size.
type commitResult struct {
	Bench     string  `json:"bench"`
	BatchSize int     `json:"batch_size"`
	Batches   int64   `json:"batches"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"batches_per_s"`
	TxsPerSec float64 `json:"txs_per_s"`
}

// benchCommit writes batches of usage transactions, shaped as the meter
// writes them (with journal positions, which make them idempotent), straight
// to a fresh store in dir, one CommitTxs after another, for d or until limit
// batches (0: no limit).
func benchCommit(ctx context.Context, dir string, size int, limit int64, d time.Duration) (commitResult, error) {
	r := commitResult{Bench: "ledger_commit_txs", BatchSize: size}
	db, ts, err := openLedger(ctx, dir, 1)
	if err != nil {
		return r, err
	}
	defer db.Close()
	tenant := ts[0].ID
	account := aigrid.TenantAccount(tenant)
	charge := aigrid.Charge{Total: 3, Blocks: []aigrid.BlockCharge{{Block: 2, Input: 30, Output: 40, Amount: 3}}}
	txs := make([]*aigrid.LedgerTx, size)
	start := time.Now()
	stop := start.Add(d)
	var n int64
	for ; time.Now().Before(stop) && (limit == 0 || r.Batches < limit); r.Batches++ {
		now := time.Now()
		for i := range txs {
			n++
			id := fmt.Sprintf("raw-%d", n)
			txs[i] = &aigrid.LedgerTx{Key: "usage:" + id, Kind: aigrid.TxUsage, TenantID: tenant, At: now,
				Entries: []aigrid.Entry{{Account: account, Amount: -charge.Total}, {Account: aigrid.AccountRevenue, Amount: charge.Total}},
				Usage: &aigrid.UsageRecord{ID: id, TenantID: tenant, At: now, Service: "chat", Provider: "mock", Model: "fast",
					PromptTokens: 30, CompletionTokens: 40, Charge: charge, Cost: 1},
				Journal: aigrid.JournalPos{Segment: 1, Offset: n}}
		}
		applied, err := db.CommitTxs(ctx, txs)
		if err != nil {
			return r, err
		}
		for i, a := range applied {
			if !a {
				return r, fmt.Errorf("transaction %s was not applied", txs[i].Key)
			}
		}
	}
	elapsed := time.Since(start).Seconds()
	r.Seconds = round(elapsed)
	r.PerSecond = round(float64(r.Batches) / elapsed)
	r.TxsPerSec = round(float64(r.Batches) * float64(size) / elapsed)
	return r, nil
}
