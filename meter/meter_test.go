package meter

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aigrid"
	"aigrid/sqlite"
)

type fixture struct {
	db     *sqlite.DB
	m      *Meter
	tenant *aigrid.Tenant
	key    *aigrid.Key
	path   string
}

func newFixture(t testing.TB, acct aigrid.Account) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aigrid.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	tenant := &aigrid.Tenant{Name: "clinic-a"}
	if err := db.CreateTenant(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	tariff := public()
	tariff.Effective = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.PutTariff(ctx, tariff); err != nil {
		t.Fatal(err)
	}
	acct.TenantID = tenant.ID
	if err := db.PutAccount(ctx, &acct); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, tenant: tenant, key: &aigrid.Key{ID: "key_1", TenantID: tenant.ID}, path: path}
	f.m = f.open(t)
	return f
}

func (f *fixture) open(t testing.TB) *Meter {
	m, err := New(context.Background(), f.db, Settings{Currency: kes, Location: time.UTC, JournalDir: filepath.Join(filepath.Dir(f.path), "journal")})
	if err != nil {
		t.Fatal(err)
	}
	m.now = func() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }
	t.Cleanup(m.Close)
	return m
}

func (f *fixture) call(id string) *aigrid.Call {
	return &aigrid.Call{ID: id, Tenant: f.tenant, Key: f.key}
}

func served(in, out int) aigrid.Served {
	return aigrid.Served{Service: "chat", Provider: "up1", Model: "m", Cost: aigrid.Price{Input: rate("5"), Output: rate("10")},
		Usage: aigrid.Usage{PromptTokens: in, CompletionTokens: out}}
}

func TestPrepaidReserveSettleAndVouchers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid, Tariff: "public"})
	m := f.m

	// The lifeline block is free: an empty prepaid account may use it.
	h, err := m.Reserve(ctx, f.call("r1"), aigrid.Estimate{PromptTokens: 1000, MaxTokens: 1000})
	if err != nil || h.Amount != 0 {
		t.Fatalf("lifeline reserve: %v, hold %+v", err, h)
	}
	if err := m.Settle(ctx, h, served(1000, 500)); err != nil {
		t.Fatal(err)
	}
	// Past the lifeline block the worst case must be covered.
	if _, err := m.Adjust(ctx, f.tenant.ID, 250_000, "", "", "op"); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Fatalf("adjustment without a reason: %v", err)
	}
	// Use up the free block with one big (free) call.
	h, _ = m.Reserve(ctx, f.call("r2"), aigrid.Estimate{PromptTokens: 100, MaxTokens: 100})
	if err := m.Settle(ctx, h, served(198_000, 500)); err != nil {
		t.Fatal(err)
	}
	_, err = m.Reserve(ctx, f.call("r3"), aigrid.Estimate{PromptTokens: 50_000, MaxTokens: 50_000})
	if aigrid.ErrorCode(err) != aigrid.EQuotaExhausted {
		t.Fatalf("an empty prepaid account past the lifeline: %v, want quota_exhausted", err)
	}

	// A voucher tops it up; its code is single use, and typos are caught.
	_, codes, err := m.MintVouchers(ctx, 3, 10_000, nil, "op") // 100 KES each
	if err != nil || len(codes) != 3 {
		t.Fatal(err)
	}
	typo := codes[0][:19] + string('0'+(codes[0][19]-'0'+1)%10)
	if _, _, err := m.Redeem(ctx, f.tenant.ID, typo); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Fatalf("typo: %v", err)
	}
	value, balance, err := m.Redeem(ctx, f.tenant.ID, codes[0])
	if err != nil || value != 10_000 || balance != 10_000 {
		t.Fatalf("redeem: value %d balance %d err %v", value, balance, err)
	}
	if _, _, err := m.Redeem(ctx, f.tenant.ID, codes[0]); aigrid.ErrorCode(err) != aigrid.EConflict {
		t.Fatalf("second redemption: %v", err)
	}
	unknown, _ := NewVoucherCode()
	if _, _, err := m.Redeem(ctx, f.tenant.ID, unknown); aigrid.ErrorCode(err) != aigrid.ENotFound {
		t.Fatalf("unknown code: %v", err)
	}

	// Now the worst case is covered: 50k in × 20 + 50k out × 60 per 1M = 4 KES,
	// and a cent for rounding the month's sum in the one priced block.
	h, err = m.Reserve(ctx, f.call("r3"), aigrid.Estimate{PromptTokens: 50_000, MaxTokens: 50_000})
	if err != nil || h.Amount != 401 {
		t.Fatalf("reserve: %v, hold %+v", err, h)
	}
	b, _ := m.Balance(ctx, f.tenant.ID)
	if b.HeldMinor != 401 || b.AvailableMinor != 9_599 {
		t.Fatalf("while held: %+v", b)
	}
	// It used less: 10k in, 1k out = 0.20 + 0.06 = 0.26 KES.
	if err := m.Settle(ctx, h, served(10_000, 1_000)); err != nil {
		t.Fatal(err)
	}
	// A replay of the same settlement counts once.
	h2 := *h
	h2.Amount, h2.Tokens = 0, 0
	if err := m.Settle(ctx, &h2, served(10_000, 1_000)); err != nil {
		t.Fatal(err)
	}
	// The ledger finds the replay when the journal is applied, and the
	// meter takes back what it counted.
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ = m.Balance(ctx, f.tenant.ID)
	if b.BalanceMinor != 10_000-26 || b.HeldMinor != 0 {
		t.Fatalf("after settling: %+v", b)
	}
	usage, err := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 100)
	if err != nil || len(usage) != 3 {
		t.Fatalf("usage rows: %d, %v", len(usage), err)
	}
	if u := usage[2]; u.Charge.Total != 26 || u.PromptTokens != 10_000 || u.Cost != 6 {
		t.Fatalf("usage row: %+v", u)
	}

	// A released hold gives everything back.
	h, _ = m.Reserve(ctx, f.call("r4"), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
	m.Release(h)
	if b, _ := m.Balance(ctx, f.tenant.ID); b.HeldMinor != 0 {
		t.Fatalf("after release: %+v", b)
	}

	// After a restart the balance and the month's tokens are read back from the ledger.
	m.Close()
	m2 := f.open(t)
	b2, err := m2.Balance(ctx, f.tenant.ID)
	if err != nil || b2.BalanceMinor != b.BalanceMinor || b2.TokensMonth != 1500+198_500+11_000 {
		t.Fatalf("after restart: %+v (before %+v), %v", b2, b, err)
	}
	if bad, err := f.db.CheckLedger(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("ledger: %v %v", bad, err)
	}
}

func TestConcurrentSettlementsAreGroupedAndExact(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Postpaid, CreditLimit: 1_000_000_00, Tariff: "public"})
	const calls = 400
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := f.m.Reserve(ctx, f.call(fmt.Sprintf("c%d", i)), aigrid.Estimate{PromptTokens: 1000, MaxTokens: 1000})
			if err != nil {
				errs <- err
				return
			}
			errs <- f.m.Settle(ctx, h, served(1000+i, 500))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	usage, _ := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 1000)
	var charged aigrid.Money
	var tokens int64
	for _, u := range usage {
		charged += u.Charge.Total
		tokens += u.PromptTokens + u.CompletionTokens
	}
	want := int64(calls*1500 + calls*(calls-1)/2)
	if len(usage) != calls || tokens != want {
		t.Fatalf("%d usage rows with %d tokens, want %d with %d", len(usage), tokens, calls, want)
	}
	balance, _ := f.db.AccountBalance(ctx, aigrid.TenantAccount(f.tenant.ID), time.Time{})
	b, _ := f.m.Balance(ctx, f.tenant.ID)
	if balance != -charged || b.BalanceMinor != balance || b.HeldMinor != 0 {
		t.Fatalf("ledger balance %d, live %d, charged %d", balance, b.BalanceMinor, charged)
	}
	// The month's blocks were filled in order: the tokens past 200k are charged.
	if charged == 0 {
		t.Fatal("nothing charged past the lifeline block")
	}
	revenue, _ := f.db.AccountBalance(ctx, aigrid.AccountRevenue, time.Time{})
	if revenue != charged {
		t.Fatalf("revenue %d, charged %d", revenue, charged)
	}
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Tariff: "public", Limits: aigrid.Limits{RPM: 2, TokensPerMonth: 10_000}})
	for i := 0; i < 2; i++ {
		h, err := f.m.Reserve(ctx, f.call(fmt.Sprintf("l%d", i)), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
		if err != nil {
			t.Fatal(err)
		}
		if h.Limits.LimitRequests != 2 || h.Limits.RemainingRequests != int64(1-i) {
			t.Fatalf("rate state %+v", h.Limits)
		}
		f.m.Settle(ctx, h, served(10, 10))
	}
	_, err := f.m.Reserve(ctx, f.call("l2"), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
	var e *aigrid.Error
	if aigrid.ErrorCode(err) != aigrid.ERateLimited || !errors.As(err, &e) || e.RetryAfter != 30*time.Second {
		t.Fatalf("third request in a minute: %v", err)
	}
	// The refusal tells the limit's state, for the 429's x-ratelimit-* headers.
	var limited *aigrid.RateLimited
	if !errors.As(err, &limited) || limited.Limits.LimitRequests != 2 || limited.Limits.RemainingRequests != 0 || limited.Limits.ResetRequests <= 0 {
		t.Fatalf("refusal's rate state: %+v", limited)
	}
	// The monthly quota counts held tokens too.
	f.m.now = func() time.Time { return time.Date(2026, 11, 24, 13, 0, 0, 0, time.UTC) }
	if _, err := f.m.Reserve(ctx, f.call("l3"), aigrid.Estimate{PromptTokens: 5_000, MaxTokens: 5_000}); aigrid.ErrorCode(err) != aigrid.ERateLimited {
		t.Fatalf("past the monthly quota: %v", err)
	}
	// A key's own limit applies within the tenant's.
	f.key.Limits = aigrid.Limits{RPM: 1}
	if _, err := f.m.Reserve(ctx, f.call("l4"), aigrid.Estimate{PromptTokens: 1, MaxTokens: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Reserve(ctx, f.call("l5"), aigrid.Estimate{PromptTokens: 1, MaxTokens: 1}); aigrid.ErrorCode(err) != aigrid.ERateLimited {
		t.Fatalf("past the key's limit: %v", err)
	}
}

// A credit to a tenant the meter has not loaded yet counts once, and a
// repeated top-up (a payment callback retried) counts once.
func TestCreditCountsOnce(t *testing.T) {
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid})
	ctx := context.Background()
	m := f.m
	first, err := m.TopUp(ctx, f.tenant.ID, 2500, "MPESA-1", "op")
	if err != nil || first.Repeated {
		t.Fatal(first, err)
	}
	again, err := m.TopUp(ctx, f.tenant.ID, 2500, "MPESA-1", "op")
	if err != nil || again.Balance != first.Balance || !again.Repeated {
		t.Fatalf("repeated top-up: %+v %v, first %+v", again, err, first)
	}
	b := first.Balance
	bal, err := m.Balance(ctx, f.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.db.AccountBalance(ctx, aigrid.TenantAccount(f.tenant.ID), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if bal.BalanceMinor != stored || stored != b {
		t.Fatalf("live balance %d, ledger %d, top-up said %d", bal.BalanceMinor, stored, b)
	}
}

// A reference is a credit's idempotency key: the same request again (a
// retry after a timeout) changes nothing and says so, while the same
// reference on a different credit (another amount or tenant) is refused with
// nothing written. An adjustment without a reference is always a new one.
func TestCreditReferences(t *testing.T) {
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid})
	ctx := context.Background()
	m := f.m
	other := &aigrid.Tenant{Name: "school-b"}
	if err := f.db.CreateTenant(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := f.db.PutAccount(ctx, &aigrid.Account{TenantID: other.ID, Type: aigrid.Prepaid}); err != nil {
		t.Fatal(err)
	}
	balance := func(id int64) aigrid.Money {
		t.Helper()
		b, err := m.Balance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return b.BalanceMinor
	}
	if _, err := m.TopUp(ctx, f.tenant.ID, 2500, "MPESA-7", "op"); err != nil {
		t.Fatal(err)
	}
	_, err := m.TopUp(ctx, f.tenant.ID, 9900, "MPESA-7", "op")
	if aigrid.ErrorCode(err) != aigrid.EConflict || !strings.Contains(err.Error(), `"MPESA-7"`) {
		t.Fatalf("the same reference for another amount: %v, want a conflict naming it", err)
	}
	if _, err := m.TopUp(ctx, other.ID, 2500, "MPESA-7", "op"); aigrid.ErrorCode(err) != aigrid.EConflict {
		t.Fatalf("the same reference for another tenant: %v, want a conflict", err)
	}
	if got := balance(f.tenant.ID); got != 2500 {
		t.Fatalf("balance %d after refused repeats, want 2500", got)
	}
	if got := balance(other.ID); got != 0 {
		t.Fatalf("the other tenant's balance %d, want 0", got)
	}

	first, err := m.Adjust(ctx, f.tenant.ID, -400, "double charge", "ADJ-1", "op")
	if err != nil || first.Repeated || first.Balance != 2100 {
		t.Fatalf("adjustment: %+v %v", first, err)
	}
	again, err := m.Adjust(ctx, f.tenant.ID, -400, "double charge (retried)", "ADJ-1", "op")
	if err != nil || !again.Repeated || again.Balance != 2100 {
		t.Fatalf("the adjustment retried: %+v %v, want repeated at 2100", again, err)
	}
	if _, err := m.Adjust(ctx, f.tenant.ID, 400, "double charge", "ADJ-1", "op"); aigrid.ErrorCode(err) != aigrid.EConflict {
		t.Fatalf("the reference on another adjustment: %v, want a conflict", err)
	}
	// A top-up and an adjustment may share a reference: they are different things.
	if c, err := m.Adjust(ctx, f.tenant.ID, 100, "goodwill", "MPESA-7", "op"); err != nil || c.Repeated {
		t.Fatalf("an adjustment with a top-up's reference: %+v %v", c, err)
	}
	long := strings.Repeat("9", maxReference+1)
	if _, err := m.TopUp(ctx, f.tenant.ID, 100, long, "op"); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Fatalf("a reference of %d characters: %v, want invalid", len(long), err)
	}
	if _, err := m.Adjust(ctx, f.tenant.ID, 100, "goodwill", long, "op"); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Fatalf("an adjustment's reference of %d characters: %v, want invalid", len(long), err)
	}
	for range 2 {
		if c, err := m.Adjust(ctx, f.tenant.ID, 50, "goodwill", "", "op"); err != nil || c.Repeated {
			t.Fatalf("an adjustment without a reference: %+v %v", c, err)
		}
	}
	if got := balance(f.tenant.ID); got != 2300 {
		t.Fatalf("balance %d, want 2500 - 400 + 100 + 2×50 = 2300", got)
	}
	stored, err := f.db.AccountBalance(ctx, aigrid.TenantAccount(f.tenant.ID), time.Time{})
	if err != nil || stored != 2300 {
		t.Fatalf("the ledger's balance %d (%v), want 2300", stored, err)
	}
	if bad, err := f.db.CheckLedger(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("ledger check: %v %v", bad, err)
	}
}

// A key's tokens-per-minute allowance gets back what its calls held and did
// not use, as the tenant's does.
func TestKeyTokensGivenBack(t *testing.T) {
	f := newFixture(t, aigrid.Account{})
	ctx := context.Background()
	f.key.Limits = aigrid.Limits{TPM: 1000}
	call := &aigrid.Call{Tenant: f.tenant, Key: f.key}
	for i := range 10 {
		call.ID = fmt.Sprintf("call-%d", i)
		h, err := f.m.Reserve(ctx, call, aigrid.Estimate{PromptTokens: 100, MaxTokens: 400})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if err := f.m.Settle(ctx, h, aigrid.Served{Service: "chat", Usage: aigrid.Usage{PromptTokens: 10, CompletionTokens: 10}}); err != nil {
			t.Fatal(err)
		}
	}
}

// A call admitted in one month and settled in the next is priced in the month
// it was admitted in, after that month's other calls: the free block is not
// offered twice.
func TestSettleAcrossMonthEnd(t *testing.T) {
	f := newFixture(t, aigrid.Account{Tariff: "public"})
	ctx := context.Background()
	// 14:00 on 30 November: not off-peak; 199,000 tokens used this month.
	f.m.now = func() time.Time { return time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC) }
	h, err := f.m.Reserve(ctx, f.call("early"), aigrid.Estimate{PromptTokens: 199_000, MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.m.Settle(ctx, h, served(199_000, 0)); err != nil {
		t.Fatal(err)
	}
	late, err := f.m.Reserve(ctx, f.call("late"), aigrid.Estimate{PromptTokens: 2000, MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	// The call ends after midnight: December has begun.
	f.m.now = func() time.Time { return time.Date(2026, 12, 1, 0, 0, 5, 0, time.UTC) }
	if err := f.m.Settle(ctx, late, served(2000, 0)); err != nil {
		t.Fatal(err)
	}
	if err := f.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	usage, err := f.db.ListUsage(ctx, f.tenant.ID, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), 10)
	if err != nil || len(usage) != 2 {
		t.Fatalf("usage %v %v", usage, err)
	}
	// 1,000 tokens free, 1,000 at 20 KES per million: 0.02 KES.
	if c := usage[1].Charge; c.Total != 2 || len(c.Blocks) != 2 {
		t.Errorf("late call charged %+v, want 2 cents over two blocks", c)
	}
}

// Calls each worth a fraction of a cent are not each rounded to nothing: the
// month's running sum is rounded, across a restart of the meter too.
func TestSmallCallsAddUp(t *testing.T) {
	f := newFixture(t, aigrid.Account{Tariff: "public"})
	ctx := context.Background()
	// Use up the free block.
	h, err := f.m.Reserve(ctx, f.call("big"), aigrid.Estimate{PromptTokens: 200_000, MaxTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.m.Settle(ctx, h, served(200_000, 0)); err != nil {
		t.Fatal(err)
	}
	// 30 in + 10 out at 20 and 60 KES per million: 0.12 cents a call.
	run := func(m *Meter, prefix string, calls int) {
		var wg sync.WaitGroup
		for g := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls / 20 {
					h, err := m.Reserve(ctx, f.call(fmt.Sprintf("%s-%d-%d", prefix, g, i)), aigrid.Estimate{PromptTokens: 30, MaxTokens: 10})
					if err != nil {
						t.Error(err)
						return
					}
					if err := m.Settle(ctx, h, served(30, 10)); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
	}
	run(f.m, "a", 400)
	f.m.Close()
	again := f.open(t)
	run(again, "b", 100)
	if err := again.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	usage, err := f.db.ListUsage(ctx, f.tenant.ID, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 1000)
	if err != nil || len(usage) != 501 {
		t.Fatalf("%d calls recorded, %v", len(usage), err)
	}
	var total aigrid.Money
	for _, u := range usage {
		total += u.Charge.Total
	}
	if total != 60 {
		t.Errorf("500 calls of 0.12 cents charged %d cents, want 60", total)
	}
}

func TestRoundCarriesTheRemainder(t *testing.T) {
	carry := map[int]int64{}
	var total aigrid.Money
	for range 7 {
		c := aigrid.Charge{Blocks: []aigrid.BlockCharge{{Block: 2, Exact: 300_000}, {Block: 3, Exact: 1_700_000}}}
		Round(&c, carry)
		if c.Total != c.Blocks[0].Amount+c.Blocks[1].Amount {
			t.Fatalf("total %d is not the sum of its blocks %+v", c.Total, c.Blocks)
		}
		total += c.Total
	}
	// 7 × 0.3 = 2.1 → 2; 7 × 1.7 = 11.9 → 12.
	if total != 14 || carry[2] != 2_100_000 || carry[3] != 11_900_000 {
		t.Errorf("total %d, carry %v", total, carry)
	}
	c := aigrid.Charge{Blocks: []aigrid.BlockCharge{{Block: 2, Exact: 300_000}}}
	Round(&c, carry)
	Unround(&c, carry)
	if carry[2] != 2_100_000 {
		t.Errorf("unround left %v", carry)
	}
}

// While calls settle together, a journal group waits for the calls still
// in flight, up to SyncInterval after the last sync, and no longer than it
// takes the last of them to settle or be released; a call settled alone
// is written at once.
func TestGroupWaitsForCallsInFlight(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Postpaid, CreditLimit: 1_000_000_00, Tariff: "public"})
	reserve := func(id string) *aigrid.Hold {
		h, err := f.m.Reserve(ctx, f.call(id), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	// settle settles in the background; wait returns its error, failing
	// the test rather than hanging when it never comes.
	settle := func(h *aigrid.Hold) (wait func() error) {
		done := make(chan error, 1)
		go func() { done <- f.m.Settle(ctx, h, served(10, 10)) }()
		return func() error {
			select {
			case err := <-done:
				return err
			case <-time.After(30 * time.Second):
				t.Fatal("a settlement is still waiting for its group")
				return nil
			}
		}
	}
	// As if the last group served several calls just now.
	busy := func(interval time.Duration) {
		f.m.set.SyncInterval, f.m.lastGroup, f.m.lastSync = interval, 2, time.Now()
	}

	// Alone: no wait, even with a sync just before.
	busy(time.Hour)
	if err := settle(reserve("alone"))(); err != nil {
		t.Fatal(err)
	}

	// Another call in flight that does not come: the group waits out the interval.
	busy(100 * time.Millisecond)
	straggler := reserve("straggler")
	start := time.Now()
	if err := settle(reserve("patient"))(); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("the group was written after %s, without waiting for the call in flight", waited)
	}

	// The last call in flight is released: the group stops waiting.
	busy(time.Hour)
	waiting := settle(reserve("released-wait"))
	for !f.m.pacingNow() {
		time.Sleep(time.Millisecond)
	}
	f.m.Release(straggler)
	if err := waiting(); err != nil {
		t.Fatal(err)
	}

	// Calls settled together while others are in flight share one sync,
	// written when the last of them arrives.
	busy(time.Hour)
	const calls = 20
	holds := make([]*aigrid.Hold, calls)
	for i := range holds {
		holds[i] = reserve(fmt.Sprintf("together-%d", i))
	}
	waits := make([]func() error, calls)
	for i, h := range holds {
		waits[i] = settle(h)
	}
	for _, wait := range waits {
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	if f.m.lastGroup != calls {
		t.Fatalf("the last group held %d settlements, want all %d", f.m.lastGroup, calls)
	}
	if err := f.m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	usage, _ := f.db.ListUsage(ctx, f.tenant.ID, time.Time{}, time.Now().Add(time.Hour), 100)
	if len(usage) != calls+3 {
		t.Fatalf("%d calls in the ledger, want %d", len(usage), calls+3)
	}
}

// pacingNow says whether a group's writer is waiting for more calls.
func (m *Meter) pacingNow() bool {
	m.gmu.Lock()
	defer m.gmu.Unlock()
	return m.pacing
}

// BenchmarkReserveSettle runs calls through Reserve and Settle from
// concurrent goroutines, as the API does, the journal syncing for real:
// allocs/op is the meter's per call (the ledger's apply included).
func BenchmarkReserveSettle(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, aigrid.Account{Type: aigrid.Postpaid, CreditLimit: 1 << 50, Tariff: "public",
		Limits: aigrid.Limits{RPM: 1 << 30, TPM: 1 << 34}})
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h, err := f.m.Reserve(ctx, f.call(fmt.Sprintf("c%d", n.Add(1))), aigrid.Estimate{PromptTokens: 8, MaxTokens: 64})
			if err == nil {
				err = f.m.Settle(ctx, h, served(8, 32))
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A call that used more tokens than it held (its prompt longer than the
// grid estimated) has them taken from the tenant's and the key's tokens per
// minute all the same.
func TestTokensBeyondTheHoldCount(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Postpaid, CreditLimit: 1 << 40, Tariff: "public", Limits: aigrid.Limits{TPM: 1000}})
	f.key.Limits = aigrid.Limits{TPM: 5000}
	h, err := f.m.Reserve(ctx, f.call("big"), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.m.Settle(ctx, h, served(900, 300)); err != nil {
		t.Fatal(err)
	}
	_, err = f.m.Reserve(ctx, f.call("next"), aigrid.Estimate{PromptTokens: 10, MaxTokens: 10})
	if aigrid.ErrorCode(err) != aigrid.ERateLimited {
		t.Fatalf("after 1,200 tokens of a 1,000-a-minute allowance: %v, want a refusal", err)
	}
	km := f.m.keyMeter(f.key.ID)
	if r := km.tpm.check(f.m.now(), 5000, time.Minute, 3900); r.ok {
		t.Error("the key's allowance did not count the 1,200 tokens")
	}
}
