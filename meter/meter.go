package meter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aigrid"
)

// Settings of the meter.
type Settings struct {
	Currency aigrid.Currency
	// Location is the grid's time zone: months, days and off-peak hours are
	// counted in it.
	Location *time.Location
	// DefaultMaxTokens is the output a call that sets no max_tokens may
	// produce, for the worst case held before dispatch.
	DefaultMaxTokens int
	// JournalDir holds the settlement journal (see journal); required.
	JournalDir string
	// ApplyEvery is how often settlements are moved from the journal into
	// the ledger when fewer than MaxBatch are waiting.
	ApplyEvery time.Duration
	// MaxBatch bounds how many settlements one journal group, and one
	// ledger transaction of an apply, holds.
	MaxBatch int
	// Registerer, when set, receives the meter's Prometheus series.
	Registerer prometheus.Registerer
	// SyncInterval is the least time between the starts of two journal
	// syncs while calls settle together (the last group held more than
	// one), so that one sync serves more of them: a sync costs the machine
	// about 100 µs of CPU, whatever its size. A call settled alone is
	// written at once. Negative: never wait.
	SyncInterval time.Duration
	// MaxWaiting bounds the settlements written to the journal and not yet
	// applied to the ledger. While the ledger takes none in (its disk
	// failing, its file locked by another program), each settled call adds
	// one, in memory and in the journal; past the bound, Reserve refuses
	// new calls until the ledger has caught up, rather than let them grow
	// until the process runs out of memory. Calls already admitted still
	// settle.
	MaxWaiting int
	Logger     *slog.Logger
}

// DefaultMaxTokens is used when the settings give none.
const DefaultMaxTokens = 4096

// DefaultSyncInterval is the SyncInterval used when the settings give none.
const DefaultSyncInterval = time.Millisecond

// DefaultMaxWaiting is the MaxWaiting used when the settings give none:
// about 110 MiB of settlements (566 bytes each, measured), half a minute
// of calls at 7,000 a second.
const DefaultMaxWaiting = 200_000

var _ aigrid.Meter = (*Meter)(nil)

// Meter holds each tenant's balance, holds and usage counters in memory,
// loaded from the ledger on first use and kept in step with every
// transaction it writes, so that reserving costs no database read.
//
// Concurrent settlements are appended to the journal as a group, with one
// write and one sync: durable before Settle returns. An applier moves them from the journal into the ledger in large
// batches, behind the request path. Reads of the ledger that must see every
// settled call call Sync first. Credits (top-ups, adjustments, vouchers) are
// rare and go to the ledger directly.
type Meter struct {
	ledger aigrid.LedgerService
	set    Settings
	now    func() time.Time

	// Looked up on every call, and rarely added to: no lock the calls
	// of all tenants would share.
	tenants sync.Map                                    // tenant ID -> *tenantMeter
	keys    sync.Map                                    // key ID -> *keyMeter
	tariffs atomic.Pointer[map[string][]*aigrid.Tariff] // versions, by Effective

	// gmu guards the open journal group and whether a group is being
	// written; idle tells Close when none is.
	gmu     sync.Mutex
	open    *group
	writing bool
	closed  bool
	idle    *sync.Cond
	// The last group written and when its write started, and the timer
	// of the wait before the next; only the writer of the moment uses
	// them.
	lastGroup int
	lastSync  time.Time
	pace      *time.Timer
	// The buffers of the last group written, for the next group opened.
	spareFrames []byte
	spareSts    []*settlement
	// inFlight counts the calls reserved and not yet settled or
	// released: the settlements that may still join the open group.
	inFlight atomic.Int64
	// pacing is set while the open group's writer waits for more calls;
	// the call that leaves none in flight sends on full.
	pacing bool
	full   chan struct{}

	metrics *metrics
	journal *journal
	// jmu makes writing a group and adding it to pending one step, so that
	// a rotation never ends a segment whose records are not all pending.
	jmu     sync.Mutex
	pending []*settlement
	// applying counts the settlements an apply took from pending and has
	// not committed yet. waiting is len(pending)+applying, for Reserve to
	// read without jmu; behind is set while Reserve refuses calls for it.
	applying int
	waiting  atomic.Int64
	behind   atomic.Bool
	// applyMu lets one apply run at a time.
	applyMu     sync.Mutex
	nudge       chan struct{}
	stopApplier chan struct{}
	applierDone chan struct{}
}

// settlement is a usage transaction in the journal and not yet in the
// ledger, with the tenant whose counts it changed: they are taken back
// should the ledger hold its key already (a settlement replayed). The
// transaction's usage and entries live in it: one allocation a call.
type settlement struct {
	tx      aigrid.LedgerTx
	usage   aigrid.UsageRecord
	entries [2]aigrid.Entry
	tm      *tenantMeter
}

// tenantMeter is one tenant's live state; mu guards all of it.
type tenantMeter struct {
	mu     sync.Mutex
	loaded bool
	// ledgerAccount names the tenant's account in the ledger.
	ledgerAccount string
	account       aigrid.Account
	balance       aigrid.Money // the sum of the tenant's ledger entries
	held          aigrid.Money // reserved by calls in flight
	// tokens reserved by calls in flight, and used in the current month and day
	heldTokens  int64
	month, day  time.Time
	monthTokens int64
	dayTokens   int64
	// carry sums the exact prices of the month's settled calls by block,
	// for rounding the month rather than each call (see Round).
	carry    map[int]int64
	rpm, tpm gcra
}

type keyMeter struct {
	mu       sync.Mutex
	rpm, tpm gcra
	// tpmLimit is the key's tokens per minute when it last reserved, for
	// giving back what its calls did not use.
	tpmLimit int64
}

// New starts a meter over the ledger; Close stops it.
func New(ctx context.Context, ledger aigrid.LedgerService, set Settings) (*Meter, error) {
	if set.Location == nil {
		set.Location = time.UTC
	}
	if set.Currency.Code == "" {
		set.Currency = aigrid.Currency{Code: "USD", Exponent: 2}
	}
	if set.DefaultMaxTokens <= 0 {
		set.DefaultMaxTokens = DefaultMaxTokens
	}
	if set.MaxBatch <= 0 {
		set.MaxBatch = 4096
	}
	if set.SyncInterval == 0 {
		set.SyncInterval = DefaultSyncInterval
	}
	if set.ApplyEvery <= 0 {
		set.ApplyEvery = 100 * time.Millisecond
	}
	if set.MaxWaiting <= 0 {
		set.MaxWaiting = DefaultMaxWaiting
	}
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	if set.JournalDir == "" {
		return nil, errors.New("meter: no journal directory")
	}
	m := &Meter{ledger: ledger, set: set, now: time.Now,
		open: newGroup(nil, nil), pace: time.NewTimer(time.Hour), full: make(chan struct{}, 1),
		nudge: make(chan struct{}, 1), stopApplier: make(chan struct{}), applierDone: make(chan struct{}),
		metrics: newMetrics(set.Registerer)}
	if err := m.ReloadTariffs(ctx); err != nil {
		return nil, err
	}
	if err := m.openJournal(ctx); err != nil {
		return nil, err
	}
	m.idle = sync.NewCond(&m.gmu)
	go m.applyLoop()
	return m, nil
}

// Close waits for the journal groups being written, applies the journal to
// the ledger, and stops; a settlement after it fails.
func (m *Meter) Close() {
	m.gmu.Lock()
	m.closed = true
	for m.writing {
		m.idle.Wait()
	}
	m.gmu.Unlock()
	m.pace.Stop()
	select {
	case <-m.stopApplier:
	default:
		close(m.stopApplier)
	}
	<-m.applierDone
	err := m.Sync(context.Background())
	if err != nil {
		m.set.Logger.Error("meter: apply the journal at close; it is applied at the next start", "error", err.Error())
	}
	m.jmu.Lock()
	if cerr := m.journal.close(err == nil && len(m.pending) == 0); cerr != nil {
		m.set.Logger.Error("meter: close the journal", "error", cerr.Error())
	}
	m.jmu.Unlock()
}

// Currency is the grid's currency.
func (m *Meter) Currency() aigrid.Currency { return m.set.Currency }

// Location is the grid's time zone.
func (m *Meter) Location() *time.Location { return m.set.Location }

// ReloadTariffs reads the tariffs from the ledger.
func (m *Meter) ReloadTariffs(ctx context.Context) error {
	list, err := m.ledger.ListTariffs(ctx)
	if err != nil {
		return err
	}
	byName := map[string][]*aigrid.Tariff{}
	for _, t := range list {
		byName[t.Name] = append(byName[t.Name], t)
	}
	for _, vs := range byName {
		slices.SortFunc(vs, func(a, b *aigrid.Tariff) int { return a.Effective.Compare(b.Effective) })
	}
	m.tariffs.Store(&byName)
	return nil
}

// tariff returns the version of the named tariff in effect at t.
func (m *Meter) tariff(name string, at time.Time) *aigrid.Tariff {
	if name == "" {
		return nil
	}
	return Version((*m.tariffs.Load())[name], at)
}

// Refresh reloads a tenant's account (type, credit, tariff, limits) after an
// operator changed it; balances and holds stay.
func (m *Meter) Refresh(ctx context.Context, tenantID int64) error {
	tm := m.tenantMeter(tenantID)
	if tm == nil {
		return nil
	}
	acct, err := m.account(ctx, tenantID)
	if err != nil {
		return err
	}
	tm.mu.Lock()
	tm.account = *acct
	tm.mu.Unlock()
	return nil
}

func (m *Meter) account(ctx context.Context, tenantID int64) (*aigrid.Account, error) {
	acct, err := m.ledger.GetAccount(ctx, tenantID)
	if aigrid.ErrorCode(err) == aigrid.ENotFound {
		return &aigrid.Account{TenantID: tenantID}, nil
	}
	return acct, err
}

// tenant returns the tenant's live state, loading it on first use. It
// returns with tm.mu held.
func (m *Meter) tenant(ctx context.Context, tenantID int64, now time.Time) (*tenantMeter, error) {
	tm := m.tenantMeter(tenantID)
	if tm == nil {
		v, _ := m.tenants.LoadOrStore(tenantID, &tenantMeter{ledgerAccount: aigrid.TenantAccount(tenantID)})
		tm = v.(*tenantMeter)
	}
	tm.mu.Lock()
	if !tm.loaded {
		if err := m.load(ctx, tm, tenantID, now); err != nil {
			tm.mu.Unlock()
			return nil, err
		}
		tm.loaded = true
	}
	m.roll(tm, now)
	return tm, nil
}

func (m *Meter) load(ctx context.Context, tm *tenantMeter, tenantID int64, now time.Time) error {
	acct, err := m.account(ctx, tenantID)
	if err != nil {
		return err
	}
	balance, err := m.ledger.AccountBalance(ctx, aigrid.TenantAccount(tenantID), time.Time{})
	if err != nil {
		return err
	}
	month, day := m.periods(now)
	monthTokens, err := m.ledger.TokensSince(ctx, tenantID, month)
	if err != nil {
		return err
	}
	dayTokens, err := m.ledger.TokensSince(ctx, tenantID, day)
	if err != nil {
		return err
	}
	carry, err := m.carryFromLedger(ctx, tenantID, month)
	if err != nil {
		return err
	}
	tm.account, tm.balance = *acct, balance
	tm.month, tm.day, tm.monthTokens, tm.dayTokens, tm.carry = month, day, monthTokens, dayTokens, carry
	return nil
}

// carryFromLedger sums the exact prices of a tenant's calls in the month
// that starts at month, by block.
func (m *Meter) carryFromLedger(ctx context.Context, tenantID int64, month time.Time) (map[int]int64, error) {
	lines, err := m.ledger.UsageByBlock(ctx, tenantID, month, month.AddDate(0, 1, 0))
	if err != nil {
		return nil, err
	}
	carry := map[int]int64{}
	for _, l := range lines {
		carry[l.Block] += l.Exact
	}
	return carry, nil
}

// periods returns the starts of the month and the day of t, in the grid's zone.
func (m *Meter) periods(t time.Time) (month, day time.Time) {
	l := t.In(m.set.Location)
	return time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, m.set.Location),
		time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, m.set.Location)
}

// roll starts new month and day counters when the calendar has moved on.
func (m *Meter) roll(tm *tenantMeter, now time.Time) {
	month, day := m.periods(now)
	if !month.Equal(tm.month) {
		tm.month, tm.monthTokens, tm.carry = month, 0, map[int]int64{}
	}
	if !day.Equal(tm.day) {
		tm.day, tm.dayTokens = day, 0
	}
}

// tenantMeter returns the tenant's live state, or nil before its first call.
func (m *Meter) tenantMeter(tenantID int64) *tenantMeter {
	v, _ := m.tenants.Load(tenantID)
	tm, _ := v.(*tenantMeter)
	return tm
}

func (m *Meter) keyMeter(id string) *keyMeter {
	if v, ok := m.keys.Load(id); ok {
		return v.(*keyMeter)
	}
	v, _ := m.keys.LoadOrStore(id, &keyMeter{})
	return v.(*keyMeter)
}

// Reserve checks quotas, rate limits and funds, and holds the worst case.
func (m *Meter) Reserve(ctx context.Context, call *aigrid.Call, est aigrid.Estimate) (*aigrid.Hold, error) {
	if err := m.ledgerBehind(); err != nil {
		return nil, err
	}
	now := m.now()
	maxOut := est.MaxTokens
	if est.NoOutput {
		maxOut = 0
	} else if maxOut <= 0 {
		maxOut = m.set.DefaultMaxTokens
	}
	tokens := int64(est.PromptTokens + maxOut)
	var km *keyMeter
	var keyLimits aigrid.Limits
	if call.Key != nil {
		keyLimits = call.Key.Limits
		if keyLimits.RPM > 0 || keyLimits.TPM > 0 {
			km = m.keyMeter(call.Key.ID)
			km.mu.Lock()
			defer km.mu.Unlock()
			km.tpmLimit = keyLimits.TPM
		}
	}
	tm, err := m.tenant(ctx, call.Tenant.ID, now)
	if err != nil {
		return nil, err
	}
	defer tm.mu.Unlock()
	acct := &tm.account
	limits := acct.Limits

	if err := quota("month", limits.TokensPerMonth, tm.monthTokens+tm.heldTokens, tokens, tm.month.AddDate(0, 1, 0), now); err != nil {
		return nil, err
	}
	if err := quota("day", limits.TokensPerDay, tm.dayTokens+tm.heldTokens, tokens, tm.day.AddDate(0, 0, 1), now); err != nil {
		return nil, err
	}
	state := aigrid.RateState{}
	// Fixed arrays: the checks cost no allocation on the request path.
	all := [4]limitCheck{
		{&tm.rpm, limits.RPM, 1, "requests", "tenant"},
		{&tm.tpm, limits.TPM, tokens, "tokens", "tenant"},
	}
	checks := all[:2]
	if km != nil {
		all[2] = limitCheck{&km.rpm, keyLimits.RPM, 1, "requests", "key"}
		all[3] = limitCheck{&km.tpm, keyLimits.TPM, tokens, "tokens", "key"}
		checks = all[:]
	}
	var resultsArr [4]rateCheck
	results := resultsArr[:len(checks)]
	var refusal *aigrid.Error
	for i, c := range checks {
		if c.limit <= 0 {
			continue
		}
		r := c.g.check(now, c.limit, time.Minute, c.cost)
		results[i] = r
		if !r.ok && refusal == nil {
			if c.cost > c.limit {
				refusal = aigrid.Errorf(aigrid.ERateLimited, "This request may use up to %d tokens (prompt and max_tokens), more than this %s's limit of %d tokens per minute: lower max_tokens or shorten the prompt.", c.cost, c.whose, c.limit)
			} else {
				refusal = &aigrid.Error{Code: aigrid.ERateLimited, RetryAfter: r.retryAfter,
					Message: fmt.Sprintf("Rate limit reached: this %s may use %d %s per minute. Try again in %s.", c.whose, c.limit, perMinuteUnit(c.unit, c.limit), r.retryAfter.Round(time.Millisecond))}
			}
		}
		// The headers show the tenant's own limits, or the key's when tighter.
		if c.unit == "requests" && (state.LimitRequests == 0 || r.remaining < state.RemainingRequests) {
			state.LimitRequests, state.RemainingRequests, state.ResetRequests = c.limit, r.remaining, r.reset
		}
		if c.unit == "tokens" && (state.LimitTokens == 0 || r.remaining < state.RemainingTokens) {
			state.LimitTokens, state.RemainingTokens, state.ResetTokens = c.limit, r.remaining, r.reset
		}
	}
	if refusal != nil {
		// A client library reads the x-ratelimit-* headers of a 429 too.
		return nil, &aigrid.RateLimited{Err: refusal, Limits: state}
	}

	local := now.In(m.set.Location)
	quote := Price(m.tariff(acct.Tariff, local), m.set.Currency, tm.monthTokens+tm.heldTokens, int64(est.PromptTokens), int64(maxOut), local)
	// Rounding the month's running sum may charge a priced block one minor
	// unit more than the call's own price rounded.
	worst := quote.Total
	for _, b := range quote.Blocks {
		if b.Exact > 0 {
			worst++
		}
	}
	available := tm.balance - tm.held
	switch acct.Type {
	case aigrid.Prepaid:
		if worst > available {
			return nil, aigrid.Errorf(aigrid.EQuotaExhausted, "Your prepaid balance does not cover this request: %s available (%s held by requests in flight), and this request may cost up to %s (about %d prompt tokens and up to %d output tokens). Top up, redeem a voucher, or lower max_tokens.",
				m.set.Currency.Format(max(available, 0)), m.set.Currency.Format(tm.held), m.set.Currency.Format(worst), est.PromptTokens, maxOut)
		}
	case aigrid.Postpaid:
		if worst > available+acct.CreditLimit {
			return nil, aigrid.Errorf(aigrid.EQuotaExhausted, "This request would take you past your credit limit of %s: %s is used or held, and this request may cost up to %s. Lower max_tokens, settle your bill, or ask your operator to raise the limit.",
				m.set.Currency.Format(acct.CreditLimit), m.set.Currency.Format(-available), m.set.Currency.Format(worst))
		}
	}
	for i, c := range checks {
		if c.limit > 0 {
			c.g.tat = results[i].tat
		}
	}
	tm.held += worst
	m.inFlight.Add(1)
	tm.heldTokens += tokens
	h := &aigrid.Hold{CallID: call.ID, TenantID: call.Tenant.ID, Amount: worst, Tokens: tokens, At: now, Limits: state}
	if call.Key != nil {
		h.KeyID = call.Key.ID
	}
	return h, nil
}

// ledgerBehind refuses a call while MaxWaiting settlements wait for the
// ledger (see Settings.MaxWaiting), and says so in the log once.
func (m *Meter) ledgerBehind() error {
	waiting := m.waiting.Load()
	if waiting < int64(m.set.MaxWaiting) {
		return nil
	}
	m.metrics.refused.Inc()
	if !m.behind.Swap(true) {
		m.set.Logger.Error("meter: the ledger is not taking in settlements; new calls are refused until it does",
			"waiting", waiting, "max_waiting", m.set.MaxWaiting)
	}
	return &aigrid.Error{Code: aigrid.EUnavailable, RetryAfter: 5 * time.Second,
		Message: "The grid cannot record new calls just now: its ledger is behind. Calls already answered are safe. Try again shortly."}
}

// countWaiting counts the settlements that wait for the ledger, with jmu
// held, and ends a refusal (ledgerBehind) once the ledger has caught up to
// half the bound.
func (m *Meter) countWaiting() {
	n := len(m.pending) + m.applying
	m.waiting.Store(int64(n))
	m.metrics.waiting.Set(float64(n))
	if n <= m.set.MaxWaiting/2 && m.behind.Load() && m.behind.Swap(false) {
		m.set.Logger.Info("meter: the ledger has caught up; calls are taken again", "waiting", n)
	}
}

// perMinuteUnit is the unit of a per-minute limit of n, in the singular
// when n is 1 ("1 request per minute").
func perMinuteUnit(unit string, n int64) string {
	if n == 1 {
		return strings.TrimSuffix(unit, "s")
	}
	return unit
}

// limitCheck is one rate limit a call must pass.
type limitCheck struct {
	g     *gcra
	limit int64
	cost  int64
	unit  string // requests or tokens
	whose string // tenant or key
}

// quota refuses a call whose tokens would take the period's use past limit.
func quota(period string, limit, used, tokens int64, renews, now time.Time) error {
	if limit <= 0 || used+tokens <= limit {
		return nil
	}
	return &aigrid.Error{Code: aigrid.ERateLimited, RetryAfter: renews.Sub(now),
		Message: fmt.Sprintf("This request may use up to %d tokens, and %d of this %s's quota of %d are used or held. The quota renews on %s.",
			tokens, used, period, limit, renews.Format("2006-01-02 15:04 MST"))}
}

// Release gives back a hold whose call used nothing.
func (m *Meter) Release(h *aigrid.Hold) {
	m.callEnded(false)
	tm := m.tenantMeter(h.TenantID)
	tm.mu.Lock()
	tm.held -= h.Amount
	tm.heldTokens -= h.Tokens
	if tm.account.Limits.TPM > 0 {
		tm.tpm.give(m.now(), tm.account.Limits.TPM, time.Minute, h.Tokens)
	}
	tm.mu.Unlock()
	m.giveKeyTokens(h, h.Tokens, m.now())
}

// giveKeyTokens returns tokens a call held but did not use to its key's
// tokens-per-minute allowance, or takes those it used beyond its hold
// (unused negative).
func (m *Meter) giveKeyTokens(h *aigrid.Hold, unused int64, now time.Time) {
	if h.KeyID == "" || unused == 0 {
		return
	}
	v, ok := m.keys.Load(h.KeyID)
	if !ok {
		return
	}
	km := v.(*keyMeter)
	km.mu.Lock()
	if km.tpmLimit > 0 {
		km.tpm.give(now, km.tpmLimit, time.Minute, unused)
	}
	km.mu.Unlock()
}

// Settle prices what the call used, releases its hold, and writes the usage
// and its ledger transaction to the journal, durably, before returning. A
// call settled twice (the same call ID) counts once: the ledger keeps the
// first, and the meter takes back what it counted for the second when the
// journal is applied.
func (m *Meter) Settle(ctx context.Context, h *aigrid.Hold, s aigrid.Served) error {
	// The client may be gone; the settlement must still be written.
	ctx = context.WithoutCancel(ctx)
	in, out := int64(s.Usage.PromptTokens), int64(s.Usage.CompletionTokens)
	local := h.At.In(m.set.Location)
	month, day := m.periods(h.At)
	now := m.now()
	if current, _ := m.periods(now); !month.Equal(current) {
		// The month turned while the call ran: it is priced in the month it
		// was admitted in, after that month's other calls, read from the
		// ledger, which must hold them all first.
		if err := m.Sync(ctx); err != nil {
			m.set.Logger.Error("meter: apply the journal", "error", err.Error())
		}
	}

	tm := m.tenantMeter(h.TenantID)
	tm.mu.Lock()
	m.roll(tm, now)
	var before int64
	carry := tm.carry
	if !month.Equal(tm.month) {
		before = m.monthTokensFromLedger(ctx, h.TenantID, month)
		var err error
		if carry, err = m.carryFromLedger(ctx, h.TenantID, month); err != nil {
			m.set.Logger.Error("meter: read the month's prices", "tenant", h.TenantID, "error", err.Error())
			carry = map[int]int64{}
		}
	} else {
		before = tm.monthTokens
	}
	charge := Price(m.tariff(tm.account.Tariff, local), m.set.Currency, before, in, out, local)
	Round(&charge, carry)
	tm.held -= h.Amount
	tm.heldTokens -= h.Tokens
	if tm.account.Limits.TPM > 0 {
		tm.tpm.give(now, tm.account.Limits.TPM, time.Minute, h.Tokens-(in+out))
	}
	m.count(tm, month, day, in+out, -charge.Total)
	tm.mu.Unlock()
	m.giveKeyTokens(h, h.Tokens-(in+out), now)

	st := &settlement{tm: tm,
		entries: [2]aigrid.Entry{{Account: tm.ledgerAccount, Amount: -charge.Total}, {Account: aigrid.AccountRevenue, Amount: charge.Total}},
		usage: aigrid.UsageRecord{ID: h.CallID, TenantID: h.TenantID, KeyID: h.KeyID, At: h.At,
			Service: s.Service, Provider: s.Provider, Model: s.Model, PromptTokens: in, CompletionTokens: out,
			Charge: charge, Cost: Cost(s.Cost, m.set.Currency, in, out), Estimated: s.Estimated}}
	st.tx = aigrid.LedgerTx{Key: "usage:" + h.CallID, Kind: aigrid.TxUsage, TenantID: h.TenantID, At: h.At,
		Entries: st.entries[:], Usage: &st.usage}
	if err := m.record(st); err != nil {
		m.takeBack(st)
		return err
	}
	return nil
}

// takeBack undoes what Settle counted for a settlement that is not in the
// ledger: not written, or written before.
func (m *Meter) takeBack(st *settlement) {
	u := st.tx.Usage
	month, day := m.periods(st.tx.At)
	tm := st.tm
	tm.mu.Lock()
	m.count(tm, month, day, -(u.PromptTokens + u.CompletionTokens), u.Charge.Total)
	if month.Equal(tm.month) {
		Unround(&u.Charge, tm.carry)
	}
	tm.mu.Unlock()
}

// monthTokensFromLedger sums a tenant's tokens in the month that starts at month.
func (m *Meter) monthTokensFromLedger(ctx context.Context, tenantID int64, month time.Time) int64 {
	since, err := m.ledger.TokensSince(ctx, tenantID, month)
	if err != nil {
		m.set.Logger.Error("meter: read the month's tokens", "tenant", tenantID, "error", err.Error())
		return 0
	}
	after, err := m.ledger.TokensSince(ctx, tenantID, month.AddDate(0, 1, 0))
	if err != nil {
		m.set.Logger.Error("meter: read the month's tokens", "tenant", tenantID, "error", err.Error())
		return 0
	}
	return since - after
}

// count adds tokens to the counters of the periods they fall in, and amount to the balance.
func (m *Meter) count(tm *tenantMeter, month, day time.Time, tokens int64, amount aigrid.Money) {
	if month.Equal(tm.month) {
		tm.monthTokens += tokens
	}
	if day.Equal(tm.day) {
		tm.dayTokens += tokens
	}
	tm.balance += amount
}

// Credited is what a credit did: the tenant's balance after it, and whether
// a transaction with its reference was recorded before (a retried request),
// in which case this one changed nothing.
type Credited struct {
	Balance  aigrid.Money
	Repeated bool
}

// credit writes a transaction that moves amount into the tenant's account
// and, once written, adds it to the live balance. A transaction whose key
// was recorded before changes nothing, and is a retry only when it says what
// the first one said: the same kind, tenant and entries. Otherwise the key
// (a payment's reference, named in the error) was given to two different
// credits: EConflict.
func (m *Meter) credit(ctx context.Context, tenantID int64, tx *aigrid.LedgerTx, reference string) (Credited, error) {
	if !tx.Balanced() {
		return Credited{}, fmt.Errorf("meter: transaction %s does not balance", tx.Key)
	}
	// Load the tenant before writing, and hold it, so that the live balance
	// counts the credit exactly once: loading after the write would read it
	// from the ledger and then add it again.
	tm, err := m.tenant(ctx, tenantID, m.now())
	if err != nil {
		return Credited{}, err
	}
	defer tm.mu.Unlock()
	applied, err := m.ledger.CommitTxs(ctx, []*aigrid.LedgerTx{tx})
	if err != nil {
		return Credited{}, err
	}
	if !applied[0] {
		before, err := m.ledger.TxByKey(ctx, tx.Key)
		if err != nil {
			return Credited{}, err
		}
		if !sameCredit(before, tx) {
			what := "top-up"
			if tx.Kind == aigrid.TxAdjustment {
				what = "adjustment"
			}
			return Credited{}, &aigrid.Error{Code: aigrid.EConflict, Param: "reference", Message: fmt.Sprintf(
				"The reference %q was recorded on %s for a different %s (another amount or tenant); a different payment or correction needs its own reference.",
				reference, before.At.In(m.set.Location).Format("2006-01-02 15:04 MST"), what)}
		}
		return Credited{Balance: tm.balance, Repeated: true}, nil
	}
	for _, e := range tx.Entries {
		if e.Account == aigrid.TenantAccount(tenantID) {
			tm.balance += e.Amount
		}
	}
	return Credited{Balance: tm.balance}, nil
}

// sameCredit tells whether a and b move the same amounts between the same
// accounts, for the same tenant.
func sameCredit(a, b *aigrid.LedgerTx) bool {
	if a.Kind != b.Kind || a.TenantID != b.TenantID || len(a.Entries) != len(b.Entries) {
		return false
	}
	sum := map[string]aigrid.Money{}
	for _, e := range a.Entries {
		sum[e.Account] += e.Amount
	}
	for _, e := range b.Entries {
		sum[e.Account] -= e.Amount
	}
	for _, v := range sum {
		if v != 0 {
			return false
		}
	}
	return true
}

// Adjust corrects a tenant's balance by amount (negative to debit), with a
// reason that the ledger keeps. A reference, when given, makes it
// idempotent as a top-up's does: an adjustment sent again (a request retried
// after a timeout) is recorded once. Without one, every call is its own
// adjustment.
func (m *Meter) Adjust(ctx context.Context, tenantID int64, amount aigrid.Money, reason, reference, actor string) (Credited, error) {
	if reason == "" {
		return Credited{}, &aigrid.Error{Code: aigrid.EInvalid, Param: "reason", Message: "An adjustment needs a reason; it is kept in the ledger for audit."}
	}
	if amount == 0 {
		return Credited{}, &aigrid.Error{Code: aigrid.EInvalid, Param: "amount", Message: "An adjustment of zero changes nothing."}
	}
	if err := checkReference(reference); err != nil {
		return Credited{}, err
	}
	key := "adjustment:" + randomID()
	if reference != "" {
		key = "adjustment:ref:" + reference
	}
	tx := &aigrid.LedgerTx{Key: key, Kind: aigrid.TxAdjustment, TenantID: tenantID, At: m.now(),
		Memo: reason, Actor: actor, Entries: []aigrid.Entry{
			{Account: aigrid.TenantAccount(tenantID), Amount: amount}, {Account: aigrid.AccountAdjustments, Amount: -amount}}}
	return m.credit(ctx, tenantID, tx, reference)
}

// maxReference bounds a credit's reference: a receipt or transaction number,
// not a document.
const maxReference = 128

func checkReference(reference string) error {
	if len(reference) > maxReference {
		return &aigrid.Error{Code: aigrid.EInvalid, Param: "reference",
			Message: fmt.Sprintf("A reference has at most %d characters; this one has %d.", maxReference, len(reference))}
	}
	return nil
}

// TopUp credits a payment received for a tenant. The reference (a receipt or
// mobile-money transaction number) makes it idempotent: recording the same
// payment twice records it once, and the second call returns the balance.
func (m *Meter) TopUp(ctx context.Context, tenantID int64, amount aigrid.Money, reference, actor string) (Credited, error) {
	if amount <= 0 {
		return Credited{}, &aigrid.Error{Code: aigrid.EInvalid, Param: "amount", Message: "A top-up must be positive."}
	}
	if reference == "" {
		return Credited{}, &aigrid.Error{Code: aigrid.EInvalid, Param: "reference", Message: "A top-up needs the payment's reference, so that it cannot be recorded twice."}
	}
	if err := checkReference(reference); err != nil {
		return Credited{}, err
	}
	tx := &aigrid.LedgerTx{Key: "topup:" + reference, Kind: aigrid.TxTopUp, TenantID: tenantID, At: m.now(),
		Memo: reference, Actor: actor, Entries: []aigrid.Entry{
			{Account: aigrid.TenantAccount(tenantID), Amount: amount}, {Account: aigrid.AccountCash, Amount: -amount}}}
	return m.credit(ctx, tenantID, tx, reference)
}

// MintVouchers makes count vouchers of value each and returns their codes,
// which are shown once: the store keeps only their hashes.
func (m *Meter) MintVouchers(ctx context.Context, count int, value aigrid.Money, expires *time.Time, actor string) (batch string, codes []string, err error) {
	if count < 1 || count > 100_000 {
		return "", nil, &aigrid.Error{Code: aigrid.EInvalid, Param: "count", Message: "Mint between 1 and 100000 vouchers at a time."}
	}
	if value <= 0 {
		return "", nil, &aigrid.Error{Code: aigrid.EInvalid, Param: "value", Message: "A voucher's value must be positive."}
	}
	now := m.now()
	if expires != nil && !expires.After(now) {
		return "", nil, &aigrid.Error{Code: aigrid.EInvalid, Param: "expires", Message: "The expiry date is already past."}
	}
	batch = "batch-" + now.UTC().Format("20060102-150405") + "-" + randomID()[:6]
	vs := make([]*aigrid.Voucher, count)
	codes = make([]string, count)
	for i := range vs {
		if codes[i], err = NewVoucherCode(); err != nil {
			return "", nil, err
		}
		vs[i] = &aigrid.Voucher{Hash: HashVoucherCode(codes[i]), Batch: batch, Value: value, ExpiresAt: expires, CreatedAt: now}
	}
	total := value * aigrid.Money(count)
	tx := &aigrid.LedgerTx{Key: "mint:" + batch, Kind: aigrid.TxVoucherMint, At: now, Actor: actor,
		Memo:    fmt.Sprintf("%d vouchers of %s", count, m.set.Currency.Format(value)),
		Entries: []aigrid.Entry{{Account: aigrid.AccountVoucherFloat, Amount: total}, {Account: aigrid.AccountVoucherSales, Amount: -total}}}
	if err := m.ledger.CreateVouchers(ctx, vs, tx); err != nil {
		return "", nil, err
	}
	return batch, codes, nil
}

// Redeem credits a voucher to the tenant and returns its value and the new balance.
func (m *Meter) Redeem(ctx context.Context, tenantID int64, code string) (value, balance aigrid.Money, err error) {
	code, err = NormalizeVoucherCode(code)
	if err != nil {
		return 0, 0, err
	}
	now := m.now()
	tm, err := m.tenant(ctx, tenantID, now)
	if err != nil {
		return 0, 0, err
	}
	defer tm.mu.Unlock()
	hash := HashVoucherCode(code)
	tx := &aigrid.LedgerTx{Key: "redeem:" + hash, Kind: aigrid.TxVoucherRedeem, TenantID: tenantID, At: now,
		Memo: "voucher ending " + code[len(code)-4:]}
	value, err = m.ledger.RedeemVoucher(ctx, hash, tenantID, now, tx)
	if err != nil {
		return 0, 0, err
	}
	tm.balance += value
	return value, tm.balance, nil
}

// Balance is a tenant's balance as the tenant sees it.
type Balance struct {
	Currency    string             `json:"currency"`
	AccountType aigrid.AccountType `json:"account_type,omitempty"`
	Balance     string             `json:"balance"`
	Held        string             `json:"held"`
	Available   string             `json:"available"`
	CreditLimit string             `json:"credit_limit,omitempty"`
	Tariff      string             `json:"tariff,omitempty"`
	// Minor units, for programs.
	BalanceMinor   aigrid.Money  `json:"balance_minor"`
	HeldMinor      aigrid.Money  `json:"held_minor"`
	AvailableMinor aigrid.Money  `json:"available_minor"`
	TokensMonth    int64         `json:"tokens_this_month"`
	TokensDay      int64         `json:"tokens_today"`
	Limits         aigrid.Limits `json:"limits"`
}

// Balance reads a tenant's live balance.
func (m *Meter) Balance(ctx context.Context, tenantID int64) (*Balance, error) {
	tm, err := m.tenant(ctx, tenantID, m.now())
	if err != nil {
		return nil, err
	}
	defer tm.mu.Unlock()
	c := m.set.Currency
	avail := tm.balance - tm.held
	if tm.account.Type == aigrid.Postpaid {
		avail += tm.account.CreditLimit
	}
	b := &Balance{Currency: c.Code, AccountType: tm.account.Type, Balance: c.Decimal(tm.balance), Held: c.Decimal(tm.held),
		Available: c.Decimal(avail), Tariff: tm.account.Tariff, BalanceMinor: tm.balance, HeldMinor: tm.held, AvailableMinor: avail,
		TokensMonth: tm.monthTokens, TokensDay: tm.dayTokens, Limits: tm.account.Limits}
	if tm.account.Type == aigrid.Postpaid {
		b.CreditLimit = c.Decimal(tm.account.CreditLimit)
	}
	return b, nil
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
