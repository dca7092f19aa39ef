package meter

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"aigrid"
)

func TestVoucherCodesCatchTypos(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		code, err := NewVoucherCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != VoucherDigits || seen[code] {
			t.Fatalf("code %q: wrong length or repeated", code)
		}
		seen[code] = true
		if got, err := NormalizeVoucherCode(code[:5] + " " + code[5:10] + "-" + code[10:]); err != nil || got != code {
			t.Fatalf("a valid code with separators is refused: %v", err)
		}
		// Every single-digit change is caught.
		for pos := 0; pos < VoucherDigits; pos++ {
			for d := byte('0'); d <= '9'; d++ {
				if d == code[pos] {
					continue
				}
				typo := code[:pos] + string(d) + code[pos+1:]
				if _, err := NormalizeVoucherCode(typo); err == nil || !strings.Contains(err.Error(), "typo") {
					t.Fatalf("typo %q at %d not caught: %v", typo, pos, err)
				}
			}
		}
		// Swapping two different neighbours is caught (except 0↔9, Luhn's blind spot).
		for pos := 0; pos+1 < VoucherDigits; pos++ {
			a, b := code[pos], code[pos+1]
			if a == b || a+b == '0'+'9' {
				continue
			}
			swapped := code[:pos] + string(b) + string(a) + code[pos+2:]
			if _, err := NormalizeVoucherCode(swapped); err == nil {
				t.Fatalf("swap at %d not caught", pos)
			}
		}
	}
	for _, bad := range []string{"", "123", "1234567890123456789a", "123456789012345678901"} {
		if _, err := NormalizeVoucherCode(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzNormalizeVoucherCode feeds what a tenant may type: nothing panics, an
// accepted code is its input's digits, 20 of them, passing the check, and
// normalizing it again changes nothing.
func FuzzNormalizeVoucherCode(f *testing.F) {
	for _, seed := range []string{"", "1234-5678 9012-3456 7890", "00000000000000000000", "１２３", "12345678901234567897", "\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		code, err := NormalizeVoucherCode(in)
		if err != nil {
			return
		}
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, in)
		if code != digits || len(code) != VoucherDigits || luhnCheckDigit(code[:VoucherDigits-1]) != int(code[VoucherDigits-1]-'0') {
			t.Fatalf("%q accepted as %q", in, code)
		}
		if again, err := NormalizeVoucherCode(code); err != nil || again != code {
			t.Fatalf("%q normalized again: %q, %v", code, again, err)
		}
	})
}

// checkFloat fails the test unless every transaction balances and
// voucher_float holds the value of the vouchers neither redeemed nor voided
// (outstanding or expired, as the batches count them).
func (f *fixture) checkFloat(t *testing.T) aigrid.Money {
	t.Helper()
	ctx := context.Background()
	if bad, err := f.db.CheckLedger(ctx); err != nil || len(bad) != 0 {
		t.Fatalf("check: %v, %v", bad, err)
	}
	batches, err := f.m.VoucherBatches(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var open aigrid.Money
	for _, b := range batches {
		open += b.Outstanding.Value + b.Expired.Value
	}
	float, err := f.db.AccountBalance(ctx, aigrid.AccountVoucherFloat, time.Time{})
	if err != nil || float != open {
		t.Fatalf("voucher_float %d, the vouchers neither redeemed nor voided are worth %d (%v)", float, open, err)
	}
	return float
}

func TestVoidVouchers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid, Tariff: "public"})
	m := f.m
	now := m.now()
	expires := now.AddDate(0, 0, 7)
	batchA, codesA, err := m.MintVouchers(ctx, 4, 5_000, &expires, "op")
	if err != nil {
		t.Fatal(err)
	}
	batchB, codesB, err := m.MintVouchers(ctx, 3, 10_000, nil, "op")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{codesA[0], codesB[0]} {
		if _, _, err := m.Redeem(ctx, f.tenant.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	if f.checkFloat(t) != 3*5_000+2*10_000 {
		t.Fatal("float after two redemptions")
	}

	// Refusals, each before anything changes.
	unknown, _ := NewVoucherCode()
	typo := codesB[1][:19] + string('0'+(codesB[1][19]-'0'+1)%10)
	for _, c := range []struct {
		batch, code, reason, code2, param string
	}{
		{batchB, codesB[1], "lost", aigrid.EInvalid, "batch"},
		{"", "", "lost", aigrid.EInvalid, "batch"},
		{batchB, "", "", aigrid.EInvalid, "reason"},
		{"", typo, "lost", aigrid.EInvalid, "code"},
		{"", "1234", "lost", aigrid.EInvalid, "code"},
		{"", unknown, "lost", aigrid.ENotFound, "code"},
		{"batch-nonesuch", "", "lost", aigrid.ENotFound, "batch"},
	} {
		_, err := m.VoidVouchers(ctx, c.batch, c.code, c.reason, "key:op")
		var e *aigrid.Error
		if aigrid.ErrorCode(err) != c.code2 || !errors.As(err, &e) || e.Param != c.param {
			t.Errorf("void %+v: %v, want %s on %s", c, err, c.code2, c.param)
		}
	}

	// One code (typed with spaces), then what is left of its batch.
	got, err := m.VoidVouchers(ctx, "", codesB[1][:10]+" "+codesB[1][10:], "stolen from the kiosk", "key:op")
	if err != nil || got != (aigrid.VoucherVoid{Batch: batchB, Voided: aigrid.VoucherSum{Count: 1, Value: 10_000}}) {
		t.Fatalf("void a code: %+v, %v", got, err)
	}
	before, _ := m.Balance(ctx, f.tenant.ID)
	_, _, err = m.Redeem(ctx, f.tenant.ID, codesB[1])
	if aigrid.ErrorCode(err) != aigrid.EConflict || err.Error() != "This voucher was cancelled by the grid's operator on 2026-11-24." {
		t.Fatalf("redeem a voided code: %v", err)
	}
	if after, _ := m.Balance(ctx, f.tenant.ID); after.BalanceMinor != before.BalanceMinor {
		t.Fatalf("a refused redemption moved the balance from %d to %d", before.BalanceMinor, after.BalanceMinor)
	}
	got, err = m.VoidVouchers(ctx, batchB, "", "kiosk closed", "key:op")
	if err != nil || got != (aigrid.VoucherVoid{Batch: batchB, Voided: aigrid.VoucherSum{Count: 1, Value: 10_000}, Redeemed: 1, AlreadyVoided: 1}) {
		t.Fatalf("void the batch: %+v, %v", got, err)
	}
	if got, err = m.VoidVouchers(ctx, batchB, "", "again", "key:op"); err != nil || got.Voided.Count != 0 || got.Redeemed != 1 || got.AlreadyVoided != 2 {
		t.Fatalf("void the batch again: %+v, %v", got, err)
	}
	if f.checkFloat(t) != 3*5_000 {
		t.Fatal("float after the voids")
	}

	// The voids are in the ledger with their reasons and who made them.
	txs, err := f.db.ListTxs(ctx, aigrid.AccountVoucherFloat, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var memos []string
	for _, tx := range txs {
		if tx.Kind == aigrid.TxVoucherVoid && tx.Actor == "key:op" {
			memos = append(memos, tx.Memo)
		}
	}
	if strings.Join(memos, "|") != "stolen from the kiosk|kiosk closed" {
		t.Fatalf("void transactions: %q", memos)
	}

	// Past batch A's expiry its open vouchers are expired, still in the
	// float, and the operator clears them with a void.
	m.now = func() time.Time { return expires.Add(time.Hour) }
	batches, err := m.VoucherBatches(ctx)
	if err != nil || len(batches) != 2 {
		t.Fatalf("batches: %+v, %v", batches, err)
	}
	a := batches[0]
	if a.Batch != batchA {
		a = batches[1]
	}
	if a.Expired != (aigrid.VoucherSum{Count: 3, Value: 15_000}) || a.Outstanding.Count != 0 || a.Redeemed.Count != 1 {
		t.Fatalf("batch A after its expiry: %+v", a)
	}
	if _, _, err := m.Redeem(ctx, f.tenant.ID, codesA[1]); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Fatalf("redeem an expired code: %v", err)
	}
	if got, err = m.VoidVouchers(ctx, batchA, "", "expired unsold", "key:op"); err != nil || got.Voided != (aigrid.VoucherSum{Count: 3, Value: 15_000}) {
		t.Fatalf("void the expired: %+v, %v", got, err)
	}
	if f.checkFloat(t) != 0 {
		t.Fatal("float after every open voucher was voided")
	}
}

// Redemptions racing voids of the same codes: each code goes one way, and
// the meter's balance of the tenant is the ledger's.
func TestRedeemRacesVoidInMeter(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, aigrid.Account{Type: aigrid.Prepaid, Tariff: "public"})
	_, codes, err := f.m.MintVouchers(ctx, 30, 1_000, nil, "op")
	if err != nil {
		t.Fatal(err)
	}
	// One code at a time, its redemption and its void let go together.
	redeemed := make([]bool, len(codes))
	voided := make([]bool, len(codes))
	for i, c := range codes {
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			_, _, err := f.m.Redeem(ctx, f.tenant.ID, c)
			if err != nil && aigrid.ErrorCode(err) != aigrid.EConflict {
				t.Error(err)
			}
			redeemed[i] = err == nil
		})
		wg.Go(func() {
			<-start
			got, err := f.m.VoidVouchers(ctx, "", c, "race", "key:op")
			if err != nil {
				t.Error(err)
			}
			voided[i] = got.Voided.Count == 1
		})
		close(start)
		wg.Wait()
	}
	var won aigrid.Money
	for i := range codes {
		if redeemed[i] == voided[i] {
			t.Errorf("code %d: redeemed %v, voided %v", i, redeemed[i], voided[i])
		}
		if redeemed[i] {
			won += 1_000
		}
	}
	b, _ := f.m.Balance(ctx, f.tenant.ID)
	ledger, _ := f.db.AccountBalance(ctx, aigrid.TenantAccount(f.tenant.ID), time.Time{})
	t.Logf("%d of %d codes redeemed before their void", won/1_000, len(codes))
	if b.BalanceMinor != won || ledger != won {
		t.Fatalf("%d redeemed; the meter's balance %d, the ledger's %d", won, b.BalanceMinor, ledger)
	}
	if f.checkFloat(t) != 0 {
		t.Fatal("float after every code was redeemed or voided")
	}
}
