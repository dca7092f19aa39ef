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
// tenant's state is read from the ledger, and starts a new segment. Each
// record goes with its position, so that the ledger applies only those
// after the position it has applied: those before were applied by a run
// that stopped before it could delete their segment.
func (m *Meter) openJournal(ctx context.Context) error {
	mark, err := m.ledger.JournalApplied(ctx)
	if err != nil {
		return fmt.Errorf("meter: journal: %w", err)
	}
	j, segs, err := openJournal(m.set.JournalDir, mark.Segment)
	if err != nil {
		return err
	}
	var txs []*aigrid.LedgerTx
	for _, seg := range segs {
		if seg.cut > 0 {
			// A group cut by a crash: its calls were never told they were recorded.
			m.set.Logger.Warn("meter: journal segment ends in an incomplete group, which is dropped",
				"segment", seg.path, "bytes", seg.cut)
		}
		var end int64
		for _, rec := range seg.records {
			end += frameHeader + int64(len(rec))
			tx, err := decodeSettlement(rec)
			if err != nil {
				j.close(true)
				return fmt.Errorf("meter: journal %s: %w", seg.path, err)
			}
			tx.Journal = aigrid.JournalPos{Segment: seg.seq, Offset: end}
			txs = append(txs, tx)
		}
	}
	replayed := 0
	for lo := 0; lo < len(txs); lo += m.set.MaxBatch {
		applied, err := m.ledger.CommitTxs(ctx, txs[lo:min(len(txs), lo+m.set.MaxBatch)])
		if err != nil {
			j.close(true)
			return fmt.Errorf("meter: apply the settlement journal left by the last run: %w", err)
		}
		for _, a := range applied {
			if a {
				replayed++
			}
		}
	}
	for _, seg := range segs {
		if err := os.Remove(seg.path); err != nil {
			j.close(true)
			return fmt.Errorf("meter: journal: %w", err)
		}
	}
	if len(txs) > 0 {
		m.set.Logger.Info("meter: applied the settlement journal left by the last run", "settlements", replayed,
			"applied_before", len(txs)-replayed, "segments", len(segs))
	}
	m.journal = j
	return nil
}

// group is the journal group that settlements join while the one before
// it is being written. Its first settlement writes it (see record).
type group struct {
	frames []byte
	sts    []*settlement
	// lead tells the group's first settlement that the group before is
	// written, and that it is its turn to write this one.
	lead chan struct{}
	// done is closed once the group is durable, or has failed with err.
	done chan struct{}
	err  error
}

// newGroup makes a group whose frames and settlements go in the buffers
// given, emptied.
func newGroup(frames []byte, sts []*settlement) *group {
	return &group{frames: frames[:0], sts: sts[:0], lead: make(chan struct{}, 1), done: make(chan struct{})}
}

var errClosed = errors.New("meter: closed")

// callEnded counts a call out of those in flight, at its settlement or
// release, with gmu held (locked says whether the caller holds it). When it
// was the last, a write that waits for more calls to join its group need
// wait no longer.
func (m *Meter) callEnded(locked bool) {
	if m.inFlight.Add(-1) != 0 {
		return
	}
	if !locked {
		m.gmu.Lock()
		defer m.gmu.Unlock()
	}
	if m.pacing {
		m.pacing = false
		m.full <- struct{}{}
	}
}

// record adds a settlement to the open journal group and waits until it is
// durable. No goroutine sits between the calls and the disk: the first
// settlement of a group writes it, at once when no write is running, or
// else when the writer of the group before hands over (unless that writer
// writes it too: see write), and the group's other settlements wait on its
// one channel.
func (m *Meter) record(st *settlement) error {
	start := time.Now()
	m.gmu.Lock()
	m.callEnded(true)
	if m.closed {
		m.gmu.Unlock()
		return errClosed
	}
	if !st.tx.Balanced() {
		m.gmu.Unlock()
		return fmt.Errorf("meter: transaction %s does not balance", st.tx.Key)
	}
	g := m.open
	at := len(g.frames)
	g.frames = closeFrame(encodeSettlement(openFrame(g.frames), &st.tx), at)
	// The record's end in the group, until write adds where the group lands.
	st.tx.Journal = aigrid.JournalPos{Offset: int64(len(g.frames))}
	g.sts = append(g.sts, st)
	first, writing := len(g.sts) == 1, m.writing
	m.writing = true
	m.gmu.Unlock()
	switch {
	case !writing:
		m.write(g)
	case first:
		select {
		case <-g.lead:
			m.write(g)
		case <-g.done:
		}
	default:
		<-g.done
	}
	m.metrics.settle.Observe(time.Since(start).Seconds())
	return g.err
}

// write writes the open group g to the journal, and then the group that
// filled meanwhile, if any, itself: its writer is running already, while the
// next group's first settlement is parked, and would start the next sync
// only once the scheduler runs it (0.3 ms on average under bench/gateway's
// load, a third of a sync, with the journal idle meanwhile). After that
// second group it hands the writing on to the first settlement of the group
// opened meanwhile, so that no call's own answer waits behind more than one
// other group.
func (m *Meter) write(g *group) {
	for extra := false; ; extra = true {
		m.writeGroup(g)
		m.gmu.Lock()
		next := m.open
		switch {
		case len(next.sts) == 0:
			m.writing = false
			m.idle.Broadcast()
			m.gmu.Unlock()
			return
		case !extra:
			m.gmu.Unlock()
			g = next
			continue
		}
		next.lead <- struct{}{}
		m.gmu.Unlock()
		return
	}
}

// writeGroup writes and syncs the open group g. While calls settle
// together, a write starts no sooner than SyncInterval after the one before,
// or once every call in flight has joined g, so that one sync serves more of
// them.
func (m *Meter) writeGroup(g *group) {
	if m.set.SyncInterval > 0 && m.lastGroup > 1 {
		if wait := time.Until(m.lastSync.Add(m.set.SyncInterval)); wait > 0 {
			m.gmu.Lock()
			pacing := m.inFlight.Load() > 0
			m.pacing = pacing
			m.gmu.Unlock()
			if pacing {
				m.pace.Reset(wait)
				select {
				case <-m.pace.C:
				case <-m.full:
				}
			}
		}
	}
	m.gmu.Lock()
	m.open = newGroup(m.spareFrames, m.spareSts)
	// The timer may have cut the group, or crossed the signal.
	m.pacing = false
	select {
	case <-m.full:
	default:
	}
	m.gmu.Unlock()

	m.jmu.Lock()
	m.lastSync = time.Now()
	at, err := m.journal.write(g.frames)
	m.metrics.sync.Observe(time.Since(m.lastSync).Seconds())
	if err == nil {
		for _, st := range g.sts {
			st.tx.Journal = aigrid.JournalPos{Segment: at.Segment, Offset: at.Offset + st.tx.Journal.Offset}
		}
		m.pending = append(m.pending, g.sts...)
	}
	m.countWaiting()
	m.jmu.Unlock()
	m.lastGroup = len(g.sts)
	// Nothing reads g's buffers now: the group after next takes them.
	clear(g.sts)
	m.spareFrames, m.spareSts = g.frames, g.sts
	if err != nil {
		m.set.Logger.Error("meter: journal write failed", "error", err.Error(), "settlements", len(g.sts))
	} else {
		m.metrics.group.Observe(float64(len(g.sts)))
	}
	g.err = err
	close(g.done)
	if m.waiting.Load() >= int64(m.set.MaxBatch) {
		select {
		case m.nudge <- struct{}{}:
		default:
		}
	}
}

// applyLoop moves the journal into the ledger every ApplyEvery, or sooner
// when MaxBatch settlements are waiting, and makes the journal's next
// segment ahead.
func (m *Meter) applyLoop() {
	defer close(m.applierDone)
	tick := time.NewTicker(m.set.ApplyEvery)
	defer tick.Stop()
	for {
		if err := m.journal.prepare(); err != nil {
			m.set.Logger.Error("meter: the journal's next segment is made when it is needed", "error", err.Error())
		}
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
	m.pending, m.applying = nil, len(batch)
	// Every record of the segments filled so far is in batch, or applied.
	ended := m.journal.takeEnded()
	m.jmu.Unlock()

	// An apply that reported failure may have committed all the same: what
	// the ledger holds of batch is in it once, and is not taken back as a
	// repeat would be.
	mark, err := m.ledger.JournalApplied(ctx)
	if err != nil {
		m.jmu.Lock()
		m.pending, m.applying = append(batch[:len(batch):len(batch)], m.pending...), 0
		m.journal.keepEnded(ended)
		m.countWaiting()
		m.jmu.Unlock()
		return err
	}
	held := 0
	for held < len(batch) && !mark.Before(batch[held].tx.Journal) {
		held++
	}
	batch = batch[held:]
	m.jmu.Lock()
	m.applying = len(batch)
	m.jmu.Unlock()

	txs := make([]*aigrid.LedgerTx, 0, min(len(batch), m.set.MaxBatch))
	for lo := 0; lo < len(batch); lo += m.set.MaxBatch {
		part := batch[lo:min(len(batch), lo+m.set.MaxBatch)]
		txs = txs[:0]
		for _, st := range part {
			txs = append(txs, &st.tx)
		}
		applied, err := m.ledger.CommitTxs(ctx, txs)
		if err != nil {
			// Keep the rest, ahead of what came since, for the next try.
			m.jmu.Lock()
			m.pending, m.applying = append(batch[lo:len(batch):len(batch)], m.pending...), 0
			m.journal.keepEnded(ended)
			m.countWaiting()
			m.jmu.Unlock()
			return err
		}
		for i, st := range part {
			if !applied[i] {
				m.takeBack(st)
			}
		}
		m.jmu.Lock()
		m.applying -= len(part)
		m.countWaiting()
		m.jmu.Unlock()
	}
	for _, path := range ended {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.set.Logger.Error("meter: remove an applied journal segment", "error", err.Error())
		}
	}
	return nil
}
