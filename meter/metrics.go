package meter

import "github.com/prometheus/client_golang/prometheus"

// metrics tell an operator how settlements are faring: how long a call
// waits for its journal group, how many calls a sync serves, and how far
// the ledger is behind the journal.
type metrics struct {
	settle  prometheus.Histogram
	sync    prometheus.Histogram
	group   prometheus.Histogram
	waiting prometheus.Gauge
	failed  prometheus.Counter
	refused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		settle: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aigrid_meter_settle_seconds", Help: "Time a settlement waits until its journal group is on disk.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		sync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aigrid_meter_journal_sync_seconds", Help: "Time to write one journal group and sync it to disk.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}),
		group: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "aigrid_meter_journal_group_size", Help: "Settlements written to the journal by one sync.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aigrid_meter_journal_waiting", Help: "Settlements in the journal and not yet in the ledger.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aigrid_meter_apply_failures_total", Help: "Applies of the journal to the ledger that failed (and are retried).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "aigrid_meter_ledger_behind_refusals_total", Help: "Calls refused because too many settlements were waiting for the ledger (MaxWaiting).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.settle, m.sync, m.group, m.waiting, m.failed, m.refused)
	}
	return m
}
