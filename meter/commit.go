package meter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"aigrid"
)

// The meter's side of the settlement journal: replaying what a crash left,
// writing groups, and applying them to the ledger.

// openJournal applies what an earlier run left in the journal, before any
// tenant's state is read from the ledger, and starts a new segment.
func (m *Meter) openJournal(ctx context.Context) error {
	j, segs, err := openJournal(m.set.JournalDir)
	if err != nil {
		return err
	}
	var txs []*aigrid.LedgerTx
	for _, seg := range segs {
		if seg.torn > 0 {
			// A group cut by a crash: its calls were never told they were recorded.
			m.set.Logger.Warn("meter: journal segment ends in an incomplete group, which is dropped",
				"segment", seg.path, "bytes", seg.torn)
		}
		for _, rec := range seg.records {
			tx, err := decodeSettlement(rec)
			if err != nil {
				j.close(true)
				return fmt.Errorf("meter: journal %s: %w", seg.path, err)
			}
			txs = append(txs, tx)
		}
	}
	for lo := 0; lo < len(txs); lo += m.set.MaxBatch {
		if _, err := m.ledger.CommitTxs(ctx, txs[lo:min(len(txs), lo+m.set.MaxBatch)]); err != nil {
			j.close(true)
			return fmt.Errorf("meter: apply the settlement journal left by the last run: %w", err)
		}
	}
	for _, seg := range segs {
		if err := os.Remove(seg.path); err != nil {
			j.close(true)
			return fmt.Errorf("meter: journal: %w", err)
		}
	}
	if len(txs) > 0 {
		m.set.Logger.Info("meter: applied the settlement journal left by the last run", "settlements", len(txs), "segments", len(segs))
	}
	m.journal = j
	return nil
}

// commitJob is one settlement waiting for the journal's writer.
type commitJob struct {
	st   *settlement
	err  error
	done chan struct{}
}

var errClosed = errors.New("meter: closed")

// record queues a settlement for the next journal group and waits until it
// is durable.
func (m *Meter) record(ctx context.Context, st *settlement) error {
	if !st.tx.Balanced() {
		return fmt.Errorf("meter: transaction %s does not balance", st.tx.Key)
	}
	j := &commitJob{st: st, done: make(chan struct{})}
	start := time.Now()
	m.sending.RLock()
	if m.closed {
		m.sending.RUnlock()
		return errClosed
	}
	m.jobs <- j
	m.sending.RUnlock()
	select {
	case <-j.done:
		m.metrics.settle.Observe(time.Since(start).Seconds())
		return j.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop writes queued settlements to the journal in groups: whatever
// arrived while the previous group was being synced goes in the next one.
func (m *Meter) commitLoop() {
	defer close(m.stopped)
	batch := make([]*commitJob, 0, m.set.MaxBatch)
	var frames, payload []byte
	var wait *time.Timer
	for j := range m.jobs {
		batch = append(batch[:0], j)
		var expired <-chan time.Time
		if m.set.GroupWait > 0 && m.running.Load() > 0 {
			if wait == nil {
				wait = time.NewTimer(m.set.GroupWait)
			} else {
				wait.Reset(m.set.GroupWait)
			}
			expired = wait.C
		}
	gather:
		for len(batch) < m.set.MaxBatch {
			select {
			case j, ok := <-m.jobs:
				if !ok {
					break gather
				}
				batch = append(batch, j)
				continue
			default:
			}
			if expired == nil {
				break gather
			}
			select {
			case j, ok := <-m.jobs:
				if !ok {
					break gather
				}
				batch = append(batch, j)
			case <-expired:
				expired = nil
			}
		}
		if expired != nil {
			wait.Stop()
		}
		frames = frames[:0]
		for _, j := range batch {
			payload = encodeSettlement(payload[:0], j.st.tx)
			frames = appendFrame(frames, payload)
		}
		m.jmu.Lock()
		start := time.Now()
		err := m.journal.write(frames)
		m.metrics.sync.Observe(time.Since(start).Seconds())
		if err == nil {
			for _, j := range batch {
				m.pending = append(m.pending, j.st)
			}
		}
		waiting := len(m.pending)
		m.jmu.Unlock()
		if err != nil {
			m.set.Logger.Error("meter: journal write failed", "error", err.Error(), "settlements", len(batch))
		} else {
			m.metrics.group.Observe(float64(len(batch)))
			m.metrics.waiting.Set(float64(waiting))
		}
		for _, j := range batch {
			j.err = err
			close(j.done)
		}
		if waiting >= m.set.MaxBatch {
			select {
			case m.nudge <- struct{}{}:
			default:
			}
		}
	}
}

// applyLoop moves the journal into the ledger every ApplyEvery, or sooner
// when MaxBatch settlements are waiting.
func (m *Meter) applyLoop() {
	defer close(m.applierDone)
	tick := time.NewTicker(m.set.ApplyEvery)
	defer tick.Stop()
	for {
		select {
		case <-m.stopApplier:
			return
		case <-tick.C:
		case <-m.nudge:
		}
		if err := m.Sync(context.Background()); err != nil {
			m.metrics.failed.Inc()
			m.set.Logger.Error("meter: apply the journal; retrying", "error", err.Error())
		}
	}
}

// Sync applies every settlement recorded so far to the ledger, so that a
// read of the ledger that follows sees it.
func (m *Meter) Sync(ctx context.Context) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.jmu.Lock()
	if len(m.pending) == 0 && len(m.journal.ended) == 0 {
		m.jmu.Unlock()
		return nil
	}
	batch := m.pending
	m.pending = nil
	// Every record of the segments filled so far is in batch, or applied.
	ended := m.journal.takeEnded()
	m.jmu.Unlock()

	txs := make([]*aigrid.LedgerTx, 0, min(len(batch), m.set.MaxBatch))
	for lo := 0; lo < len(batch); lo += m.set.MaxBatch {
		part := batch[lo:min(len(batch), lo+m.set.MaxBatch)]
		txs = txs[:0]
		for _, st := range part {
			txs = append(txs, st.tx)
		}
		applied, err := m.ledger.CommitTxs(ctx, txs)
		if err != nil {
			// Keep the rest, ahead of what came since, for the next try.
			m.jmu.Lock()
			m.pending = append(batch[lo:len(batch):len(batch)], m.pending...)
			m.journal.keepEnded(ended)
			m.jmu.Unlock()
			return err
		}
		for i, st := range part {
			if !applied[i] {
				m.takeBack(st)
			}
		}
	}
	m.jmu.Lock()
	m.metrics.waiting.Set(float64(len(m.pending)))
	m.jmu.Unlock()
	for _, path := range ended {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.set.Logger.Error("meter: remove an applied journal segment", "error", err.Error())
		}
	}
	return nil
}
