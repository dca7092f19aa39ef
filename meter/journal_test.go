package meter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"aigrid"
	"aigrid/internal/logbuf"
)

// A segment gives back its whole frames, in order, and stops at a frame cut
// short, one whose checksum fails, or the zeros of an unwritten tail.
func TestJournalReadsWholeFramesOnly(t *testing.T) {
	var whole []byte
	for i := range 3 {
		whole = appendFrame(whole, fmt.Appendf(nil, "record %d", i))
	}
	last := appendFrame(nil, []byte("record 3"))
	corrupt := bytes.Clone(last)
	corrupt[len(corrupt)-1] ^= 1
	for _, c := range []struct {
		name string
		tail []byte
		want int
	}{
		{"complete", last, 4},
		{"cut in the header", last[:5], 3},
		{"cut in the payload", last[:len(last)-2], 3},
		{"checksum fails", corrupt, 3},
		{"zeros", make([]byte, 64), 3},
		{"length past the limit", []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 1}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0000000000000001"+segmentSuffix)
			// The segment's zeroed, unwritten rest follows.
			data := append(append(bytes.Clone(whole), c.tail...), make([]byte, 100)...)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := readSegment(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.records) != c.want {
				t.Fatalf("%d records, want %d", len(r.records), c.want)
			}
			for i, rec := range r.records {
				if string(rec) != fmt.Sprintf("record %d", i) {
					t.Errorf("record %d is %q", i, rec)
				}
			}
			if wantTorn := int64(len(data) - len(whole)); c.want == 3 && r.torn != wantTorn {
				t.Errorf("torn %d bytes, want %d", r.torn, wantTorn)
			}
			// Only bytes a crash cut short are reported, not the zeros.
			if cut := int64(len(bytes.TrimRight(c.tail, "\x00"))); c.want == 3 && r.cut != cut {
				t.Errorf("cut %d bytes, want %d", r.cut, cut)
			}
		})
	}
}

// A segment name that is not a number is refused rather than skipped: it
// could hold settlements.
func TestJournalRefusesStrangeFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "copy"+segmentSuffix), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openJournal(dir, 0); err == nil {
		t.Fatal("opened a journal with a stray segment")
	}
}

// appendFrame adds payload to buf as one frame.
func appendFrame(buf, payload []byte) []byte {
	at := len(buf)
	return closeFrame(append(openFrame(buf), payload...), at)
}

func FuzzParseFrames(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, []byte("a")), []byte("bc")))
	f.Add([]byte{3, 0, 0, 0, 1, 2, 3, 4, 5})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		records, torn := parseFrames(data)
		// What was read is a prefix of the data, frame by frame.
		var again []byte
		for _, rec := range records {
			again = appendFrame(again, rec)
		}
		if !bytes.HasPrefix(data, again) || int64(len(data)-len(again)) != torn {
			t.Fatalf("read %d records and %d torn bytes from %d bytes", len(records), torn, len(data))
		}
	})
}

// A meter that dies with settlements in its journal and none in the ledger
// loses none: the next start applies them, once, before reading any
// balance; a group cut by the crash is dropped; and applying them again
// (the dead meter's work finishing) changes nothing.
func TestJournalReplayAfterCrash(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid, Tariff: "public"})
	if _, err := f.m.TopUp(ctx, f.tenant.ID, 10_000, "opening", "test"); err != nil {
		t.Fatal(err)
	}
	f.m.Close()
	dir := filepath.Join(filepath.Dir(f.path), "journal")
	dead, err := New(ctx, f.db, Settings{Currency: kes, Location: time.UTC, JournalDir: dir, ApplyEvery: time.Hour, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	dead.now = func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }
	const calls = 30
	for i := range calls {
		h, err := dead.Reserve(ctx, f.call(fmt.Sprintf("c%d", i)), aigrid.Estimate{PromptTokens: 100_000, MaxTokens: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if err := dead.Settle(ctx, h, served(100_000, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if rows, _ := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 100); len(rows) != 0 {
		t.Fatalf("%d usage rows before any apply; the test needs them in the journal only", len(rows))
	}
	want, _ := dead.Balance(ctx, f.tenant.ID)

	// What the disk holds at the crash, with half a group written after it.
	crashed := t.TempDir()
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	for _, p := range segs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if p == segs[len(segs)-1] {
			data = append(data, appendFrame(nil, []byte(`{"key":"usage:never-acknowledged"}`))[:20]...)
		}
		if err := os.WriteFile(filepath.Join(crashed, filepath.Base(p)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	restarted, err := New(ctx, f.db, Settings{Currency: kes, Location: time.UTC, JournalDir: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	restarted.now = dead.now
	rows, err := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 100)
	if err != nil || len(rows) != calls {
		t.Fatalf("%d usage rows after the restart, %v; want %d", len(rows), err, calls)
	}
	got, _ := restarted.Balance(ctx, f.tenant.ID)
	if got.BalanceMinor != want.BalanceMinor || got.TokensMonth != want.TokensMonth {
		t.Fatalf("after the restart: %+v; before the crash: %+v", got, want)
	}
	if left, _ := filepath.Glob(filepath.Join(crashed, "*"+segmentSuffix)); len(left) != 1 {
		t.Errorf("segments after the restart: %v; want only the new one", left)
	}

	dead.Close()
	rows, _ = f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 100)
	stored, _ := f.db.AccountBalance(ctx, aigrid.TenantAccount(f.tenant.ID), time.Time{})
	if len(rows) != calls || stored != want.BalanceMinor {
		t.Fatalf("applied twice: %d rows, balance %d; want %d and %d", len(rows), stored, calls, want.BalanceMinor)
	}
	if bad, err := f.db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("ledger check: %v, %v", bad, err)
	}
}

// A settlement the journal cannot make durable is refused, and counts
// nothing: the client is told, and the tenant is not charged.
func TestSettleRefusedWhenTheJournalFails(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid, Tariff: "public"})
	if _, err := f.m.TopUp(ctx, f.tenant.ID, 10_000, "opening", "test"); err != nil {
		t.Fatal(err)
	}
	h, err := f.m.Reserve(ctx, f.call("doomed"), aigrid.Estimate{PromptTokens: 300_000, MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := f.m.Balance(ctx, f.tenant.ID)
	f.m.jmu.Lock()
	f.m.journal.f.Close() // the disk goes away under the writer
	f.m.jmu.Unlock()
	if err := f.m.Settle(ctx, h, served(300_000, 10)); err == nil {
		t.Fatal("settled into a closed journal")
	}
	after, _ := f.m.Balance(ctx, f.tenant.ID)
	if after.BalanceMinor != before.BalanceMinor || after.TokensMonth != before.TokensMonth || after.HeldMinor != 0 {
		t.Fatalf("after a failed settlement: %+v; before: %+v", after, before)
	}
	if err := f.m.Settle(ctx, h, served(1, 1)); err == nil {
		t.Fatal("wrote after the journal broke")
	}
}

// The tests write segments of 16 KiB, so that a few hundred settlements
// fill several and the meter's deletion of applied segments is exercised.
func TestMain(m *testing.M) {
	segmentSize = 16 << 10
	os.Exit(m.Run())
}

// Filled segments are deleted once applied; the one being written stays.
func TestJournalSegmentsDeletedOnceApplied(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Tariff: "public"})
	f.m.Close()
	dir := t.TempDir()
	m, err := New(ctx, f.db, Settings{Currency: kes, Location: time.UTC, JournalDir: dir, ApplyEvery: time.Hour, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := range 400 {
		h, err := m.Reserve(ctx, f.call(fmt.Sprintf("c%d", i)), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Settle(ctx, h, served(10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if len(segs) < 3 {
		t.Fatalf("%d segments for 400 settlements; the test wants several", len(segs))
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix)); len(left) != 1 || left[0] != segs[len(segs)-1] {
		t.Fatalf("after applying: %v; want only %s", left, segs[len(segs)-1])
	}
	rows, _ := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 1000)
	if len(rows) != 400 {
		t.Fatalf("%d usage rows, want 400", len(rows))
	}
}

// Ledger reads through the synced store see a settlement the journal holds
// and the ledger does not yet.
func TestSyncedStoreReadsEverySettlement(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Tariff: "public"})
	f.m.Close()
	m, err := New(ctx, f.db, Settings{Currency: kes, Location: time.UTC, JournalDir: t.TempDir(), ApplyEvery: time.Hour, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h, err := m.Reserve(ctx, f.call("journaled"), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Settle(ctx, h, served(10, 10)); err != nil {
		t.Fatal(err)
	}
	far := time.Now().Add(time.Hour)
	if rows, _ := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, far, 10); len(rows) != 0 {
		t.Fatalf("%d rows in the ledger before any apply; the test wants none", len(rows))
	}
	rows, err := m.SyncedStore(f.db).ListUsage(ctx, f.tenant.ID, time.Time{}, far, 10)
	if err != nil || len(rows) != 1 || rows[0].ID != "journaled" {
		t.Fatalf("through the synced store: %v, %v", rows, err)
	}
}

// The writer moves to the segment made ahead, which takes records like any
// other; a spare that a crash left is removed at the next start.
func TestJournalTakesThePreparedSegment(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.prepare(); err != nil {
		t.Fatal(err)
	}
	spare := j.spare
	frame := appendFrame(nil, []byte("record"))
	n := 0
	for j.seq == 1 {
		if _, err := j.write(frame); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if j.f != spare {
		t.Fatal("the writer made a new segment rather than take the one made ahead")
	}
	if _, err := os.Stat(filepath.Join(dir, spareName)); !os.IsNotExist(err) {
		t.Fatalf("the spare's name is still there: %v", err)
	}
	r, err := readSegment(j.segmentPath(2))
	if err != nil || len(r.records) != 1 || r.torn != segmentSize-int64(len(frame)) {
		t.Fatalf("segment 2: %d records, %d bytes after them, %v", len(r.records), r.torn, err)
	}
	if r, _ := readSegment(j.segmentPath(1)); len(r.records) != n-1 {
		t.Fatalf("segment 1: %d records, want %d", len(r.records), n-1)
	}

	if err := j.prepare(); err != nil {
		t.Fatal(err)
	}
	// A crash: the journal is not closed, and the kernel lets go of the
	// process's lock.
	j.lock.Release()
	again, segs, err := openJournal(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer again.close(true)
	if len(segs) != 2 {
		t.Fatalf("%d segments read, want 2", len(segs))
	}
	if _, err := os.Stat(filepath.Join(dir, spareName)); !os.IsNotExist(err) {
		t.Fatalf("the spare a crash left is still there: %v", err)
	}
}

// A crash after the ledger committed an apply and before the applied
// segments were deleted leaves records the ledger holds: the next start
// applies only those after the position the ledger recorded, over several
// segments, with a spare and a torn group beside them. A meter started
// later on an empty journal numbers its segments after that position, so
// that its records are never taken for applied ones.
func TestReplaySkipsWhatTheLedgerApplied(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid, Tariff: "public"})
	if _, err := f.m.TopUp(ctx, f.tenant.ID, 1_000_000, "opening", "test"); err != nil {
		t.Fatal(err)
	}
	f.m.Close()
	dir := t.TempDir()
	dead, err := New(ctx, f.db, Settings{Currency: kes, Location: time.UTC, JournalDir: dir, ApplyEvery: time.Hour, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	dead.now = func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }
	settle := func(m *Meter, n int, prefix string) {
		t.Helper()
		for i := range n {
			h, err := m.Reserve(ctx, f.call(fmt.Sprintf("%s%d", prefix, i)), aigrid.Estimate{PromptTokens: 100_000, MaxTokens: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Settle(ctx, h, served(100_000, 1000)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// copyJournal copies the journal's files into crashed; segments only
	// grow, so a later copy of one holds all an earlier one did.
	crashed := t.TempDir()
	copyJournal := func() {
		t.Helper()
		names, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, p := range names {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(crashed, filepath.Base(p)), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	settle(dead, 500, "a")
	dead.journal.prepare()
	copyJournal()
	if segs, _ := filepath.Glob(filepath.Join(crashed, "*"+segmentSuffix)); len(segs) < 3 {
		t.Fatalf("%d segments; the test wants several", len(segs))
	}
	if err := dead.Sync(ctx); err != nil { // committed; the crash takes the deletions
		t.Fatal(err)
	}
	settle(dead, 20, "b")
	copyJournal()
	last, _ := filepath.Glob(filepath.Join(crashed, "*"+segmentSuffix))
	torn, err := os.OpenFile(last[len(last)-1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := torn.Seek(0, io.SeekEnd)
	r, _ := readSegment(last[len(last)-1])
	frame := appendFrame(nil, encodeSettlement(nil, sampleSettlement()))
	if _, err := torn.WriteAt(frame[:len(frame)-3], end-r.torn); err != nil {
		t.Fatal(err)
	}
	torn.Close()
	want, _ := dead.Balance(ctx, f.tenant.ID)

	restarted, err := New(ctx, f.db, Settings{Currency: kes, Location: time.UTC, JournalDir: crashed, ApplyEvery: time.Hour, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	restarted.now = dead.now
	rows, err := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 1000)
	if err != nil || len(rows) != 520 {
		t.Fatalf("%d calls after the restart, %v; want 520", len(rows), err)
	}
	got, _ := restarted.Balance(ctx, f.tenant.ID)
	if got.BalanceMinor != want.BalanceMinor || got.TokensMonth != want.TokensMonth {
		t.Fatalf("after the restart: %+v; before the crash: %+v", got, want)
	}
	if left, _ := filepath.Glob(filepath.Join(crashed, "*"+segmentSuffix)); len(left) != 1 || left[0] <= last[len(last)-1] {
		t.Errorf("segments after the restart: %v; want only a new one", left)
	}
	if bad, err := f.db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("ledger check: %v, %v", bad, err)
	}
	dead.Close() // the dead meter's own apply of b* finds them applied
	restarted.Close()
	mark, _ := f.db.JournalApplied(ctx)

	again, err := New(ctx, f.db, Settings{Currency: kes, Location: time.UTC, JournalDir: t.TempDir(), ApplyEvery: time.Hour, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	again.now = dead.now
	if again.journal.seq <= mark.Segment {
		t.Fatalf("a new journal starts at segment %d, at or before the applied %d", again.journal.seq, mark.Segment)
	}
	settle(again, 1, "c")
	if err := again.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if rows, _ := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 1000); len(rows) != 521 {
		t.Fatalf("%d calls after a settlement in a new journal, want 521", len(rows))
	}
}

// failingLedger fails its next CommitTxs when failNext is set: before
// writing anything, or (committed) after writing it all.
type failingLedger struct {
	aigrid.LedgerService
	failNext, committed bool
}

func (l *failingLedger) CommitTxs(ctx context.Context, txs []*aigrid.LedgerTx) ([]bool, error) {
	if !l.failNext {
		return l.LedgerService.CommitTxs(ctx, txs)
	}
	l.failNext = false
	if l.committed {
		if _, err := l.LedgerService.CommitTxs(ctx, txs); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("the apply failed")
}

// An apply that fails is retried by the next Sync: one that wrote nothing
// is applied whole, and one that reported failure after it committed is
// not applied again, and the meter does not take its calls back either.
func TestSyncAfterAFailedApply(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid, Tariff: "public"})
	if _, err := f.m.TopUp(ctx, f.tenant.ID, 1_000_000, "opening", "test"); err != nil {
		t.Fatal(err)
	}
	f.m.Close()
	ledger := &failingLedger{LedgerService: f.db}
	m, err := New(ctx, ledger, Settings{Currency: kes, Location: time.UTC, JournalDir: t.TempDir(), ApplyEvery: time.Hour, SyncInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.now = func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }
	calls := 0
	for _, committed := range []bool{false, true} {
		for range 10 {
			calls++
			h, err := m.Reserve(ctx, f.call(fmt.Sprintf("c%d", calls)), aigrid.Estimate{PromptTokens: 100_000, MaxTokens: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Settle(ctx, h, served(100_000, 1000)); err != nil {
				t.Fatal(err)
			}
		}
		ledger.failNext, ledger.committed = true, committed
		if err := m.Sync(ctx); err == nil {
			t.Fatal("the failed apply reported no error")
		}
		if err := m.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		rows, _ := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 100)
		live, _ := m.Balance(ctx, f.tenant.ID)
		stored, _ := f.db.AccountBalance(ctx, aigrid.TenantAccount(f.tenant.ID), time.Time{})
		tokens, _ := f.db.TokensSince(ctx, f.tenant.ID, time.Time{})
		if len(rows) != calls || live.BalanceMinor != stored || live.TokensMonth != tokens {
			t.Fatalf("committed %v: %d calls in the ledger, want %d; the meter's balance %d and tokens %d, the ledger's %d and %d",
				committed, len(rows), calls, live.BalanceMinor, live.TokensMonth, stored, tokens)
		}
	}
}

// stuckLedger fails every CommitTxs while stuck is set, as a ledger whose
// file another program holds locked.
type stuckLedger struct {
	aigrid.LedgerService
	stuck atomic.Bool
}

func (l *stuckLedger) CommitTxs(ctx context.Context, txs []*aigrid.LedgerTx) ([]bool, error) {
	if l.stuck.Load() {
		return nil, errors.New("database is locked")
	}
	return l.LedgerService.CommitTxs(ctx, txs)
}

// While the ledger takes nothing in, settlements wait in memory: past
// MaxWaiting new calls are refused (503, Retry-After), calls admitted before
// still settle, and once the ledger catches up calls are taken again, every
// settlement in the ledger once.
func TestLedgerBehindRefusesCalls(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Postpaid, CreditLimit: 1 << 40, Tariff: "public"})
	f.m.Close()
	ledger := &stuckLedger{LedgerService: f.db}
	ledger.stuck.Store(true)
	var logs logbuf.Buffer
	m, err := New(ctx, ledger, Settings{Currency: kes, Location: time.UTC, JournalDir: t.TempDir(), ApplyEvery: 5 * time.Millisecond,
		SyncInterval: -1, MaxWaiting: 20, Registerer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	calls := 0
	reserve := func() (*aigrid.Hold, error) {
		calls++
		return m.Reserve(ctx, f.call(fmt.Sprintf("c%d", calls)), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
	}
	settle := func(h *aigrid.Hold) {
		t.Helper()
		if err := m.Settle(ctx, h, served(10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	var early *aigrid.Hold
	for i := range 21 {
		h, err := reserve()
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		if i == 10 {
			early = h // admitted before the bound: it settles after it
			continue
		}
		settle(h)
	}
	refusals := 0
	for {
		_, err := reserve()
		if err == nil {
			t.Fatal("a call was taken with 20 settlements waiting and the ledger stuck")
		}
		var e *aigrid.Error
		if !errors.As(err, &e) || e.Code != aigrid.EUnavailable || e.RetryAfter <= 0 || !strings.Contains(e.Message, "ledger is behind") {
			t.Fatalf("refusal %v", err)
		}
		if refusals++; refusals == 3 {
			break
		}
	}
	settle(early)
	var counted dto.Metric
	if err := m.metrics.refused.Write(&counted); err != nil || counted.GetCounter().GetValue() != 3 {
		t.Errorf("refusals counted %v (%v), want 3", counted.GetCounter().GetValue(), err)
	}
	if n := strings.Count(logs.String(), "new calls are refused"); n != 1 {
		t.Errorf("the refusal was logged %d times, want once:\n%s", n, logs.String())
	}

	ledger.stuck.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := reserve()
		if err == nil {
			settle(h)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls still refused 10 s after the ledger came back: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "the ledger has caught up") {
		t.Errorf("no word that the ledger caught up:\n%s", logs.String())
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 1000)
	if err != nil || len(rows) != 22 {
		t.Fatalf("%d calls in the ledger (%v), want the 21 admitted while it was stuck and 1 after", len(rows), err)
	}
}

// One process at a time holds a journal: a second meter on it is refused,
// saying who holds it, until the first closes.
func TestJournalHeldByOne(t *testing.T) {
	dir := t.TempDir()
	first, _, err := openJournal(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = openJournal(dir, 0)
	if err == nil || !strings.Contains(err.Error(), "in use by process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("a second journal on the same directory: %v", err)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix)); len(segs) != 1 {
		t.Errorf("the refused open touched the segments: %v", segs)
	}
	if err := first.close(true); err != nil {
		t.Fatal(err)
	}
	again, _, err := openJournal(dir, 0)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.close(true)
}
