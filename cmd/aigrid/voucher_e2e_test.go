package main

import (
	"encoding/json"
	"strings"
	"testing"
)

type voidAnswer struct {
	Object, Batch, Currency, Value string
	Voided                         int64
	AlreadyRedeemed                int64 `json:"already_redeemed"`
	AlreadyVoided                  int64 `json:"already_voided"`
}

type batchList struct {
	Currency string
	Data     []struct {
		Batch, Value string
		voucherStates
	}
	Totals voucherStates
}

// The operator lists batches, voids a lost code and then what is left of
// its batch, and a tenant holding the lost code is refused.
func TestVoucherListAndVoid(t *testing.T) {
	g := startBillingGrid(t)
	mint := func(count int, value, expires string) (string, []string) {
		var out struct {
			Batch string
			Codes []string
		}
		if r := g.do("POST", "/admin/v1/vouchers", g.adminKey, map[string]any{"count": count, "value": value, "expires": expires}, &out); r.StatusCode != 201 {
			t.Fatalf("mint: %d", r.StatusCode)
		}
		return out.Batch, out.Codes
	}
	batchA, a := mint(3, "5", "2099-12-31")
	batchB, b := mint(2, "10", "")
	if r := g.do("POST", "/v1/vouchers/redeem", "sk-broke-00001", map[string]string{"code": a[0]}, nil); r.StatusCode != 200 {
		t.Fatalf("redeem: %d", r.StatusCode)
	}

	typo := []byte(a[1])
	typo[7] = '0' + (typo[7]-'0'+1)%10
	unknown := "00000000000000000000" // well formed: its check digit is 0
	for _, c := range []struct {
		body         map[string]string
		status       int
		param, words string
	}{
		{map[string]string{"batch": batchA}, 400, "reason", "reason"},
		{map[string]string{"batch": batchA, "code": a[1], "reason": "lost"}, 400, "batch", "not both"},
		{map[string]string{"reason": "lost"}, 400, "batch", "batch or the code"},
		{map[string]string{"code": string(typo), "reason": "lost"}, 400, "code", "typo"},
		{map[string]string{"code": unknown, "reason": "lost"}, 404, "code", "No voucher"},
		{map[string]string{"batch": "batch-nonesuch", "reason": "lost"}, 404, "batch", "batch-nonesuch"},
	} {
		var e apiError
		if r := g.do("POST", "/admin/v1/vouchers/void", g.adminKey, c.body, &e); r.StatusCode != c.status || paramOf(e) != c.param || !strings.Contains(e.Error.Message, c.words) {
			t.Errorf("void %v: %d %+v, want %d on %s", c.body, r.StatusCode, e, c.status, c.param)
		}
	}
	if r := g.do("POST", "/admin/v1/vouchers/void", "sk-clinic-a-0001", map[string]string{"batch": batchA, "reason": "x"}, nil); r.StatusCode != 401 && r.StatusCode != 403 {
		t.Errorf("a tenant's key voids: %d", r.StatusCode)
	}

	// The lost code, then the rest of its batch, then nothing left.
	var v voidAnswer
	if r := g.do("POST", "/admin/v1/vouchers/void", g.adminKey, map[string]string{"code": a[1], "reason": "card lost"}, &v); r.StatusCode != 200 ||
		v != (voidAnswer{Object: "voucher.void", Batch: batchA, Currency: "KES", Value: "5.00", Voided: 1}) {
		t.Fatalf("void a code: %d %+v", r.StatusCode, v)
	}
	var e apiError
	if r := g.do("POST", "/v1/vouchers/redeem", "sk-broke-00001", map[string]string{"code": a[1]}, &e); r.StatusCode != 409 ||
		!strings.HasPrefix(e.Error.Message, "This voucher was cancelled by the grid's operator on ") || paramOf(e) != "code" {
		t.Fatalf("redeem a voided code: %d %+v", r.StatusCode, e)
	}
	var bal struct{ Balance string }
	if g.do("GET", "/v1/balance", "sk-broke-00001", nil, &bal); bal.Balance != "5.00" {
		t.Fatalf("balance %s after a refused redemption, want 5.00", bal.Balance)
	}
	if r := g.do("POST", "/admin/v1/vouchers/void", g.adminKey, map[string]string{"batch": batchA, "reason": "batch withdrawn"}, &v); r.StatusCode != 200 ||
		v.Voided != 1 || v.Value != "5.00" || v.AlreadyRedeemed != 1 || v.AlreadyVoided != 1 {
		t.Fatalf("void the batch: %d %+v", r.StatusCode, v)
	}
	if r := g.do("POST", "/admin/v1/vouchers/void", g.adminKey, map[string]string{"batch": batchA, "reason": "again"}, &v); r.StatusCode != 200 ||
		v.Voided != 0 || v.Value != "0.00" || v.AlreadyRedeemed != 1 || v.AlreadyVoided != 2 {
		t.Fatalf("void the batch again: %d %+v", r.StatusCode, v)
	}

	var list batchList
	if r := g.do("GET", "/admin/v1/vouchers", g.adminKey, nil, &list); r.StatusCode != 200 || len(list.Data) != 2 || list.Currency != "KES" {
		t.Fatalf("list: %d %+v", r.StatusCode, list)
	}
	if list.Data[0].Batch != batchB || list.Data[1].Batch != batchA || list.Data[0].Value != "10.00" {
		t.Errorf("not newest first: %+v", list.Data)
	}
	wantA := voucherStates{Minted: voucherSum{3, "15.00"}, Redeemed: voucherSum{1, "5.00"}, Voided: voucherSum{2, "10.00"}, Expired: voucherSum{0, "0.00"}, Outstanding: voucherSum{0, "0.00"}}
	if list.Data[1].voucherStates != wantA {
		t.Errorf("batch A: %+v, want %+v", list.Data[1].voucherStates, wantA)
	}
	wantTotals := voucherStates{Minted: voucherSum{5, "35.00"}, Redeemed: voucherSum{1, "5.00"}, Voided: voucherSum{2, "10.00"}, Expired: voucherSum{0, "0.00"}, Outstanding: voucherSum{2, "20.00"}}
	if list.Totals != wantTotals {
		t.Errorf("totals: %+v, want %+v", list.Totals, wantTotals)
	}

	// The CLI.
	cli := func(args ...string) (string, error) {
		var out, errb strings.Builder
		err := run(t.Context(), append(args, "--server", g.url, "--admin-key", g.adminKey), &out, &errb)
		return out.String(), err
	}
	out, err := cli("voucher", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 4 || !strings.HasPrefix(lines[0], "BATCH ") || !strings.Contains(lines[0], "EACH KES") ||
		!strings.HasPrefix(lines[1], batchB) || !strings.Contains(lines[2], "2099-12-31") ||
		strings.Join(strings.Fields(lines[3]), " ") != "total 5 (35.00) 1 (5.00) 2 (10.00) 0 (0.00) 2 (20.00)" {
		t.Errorf("voucher list: %v\n%s", err, out)
	}
	if out, err := cli("voucher", "list", "--json"); err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Data) != 2 {
		t.Errorf("voucher list --json: %v %q", err, out)
	}
	if out, err := cli("voucher", "void", "--code", b[0], "--reason", "stolen"); err != nil || out != "voided 1 voucher of "+batchB+", worth 10.00 KES (0 already redeemed, 0 already voided)\n" {
		t.Errorf("voucher void --code: %v %q", err, out)
	}
	if out, err := cli("voucher", "void", "--batch", batchB, "--reason", "kiosk closed"); err != nil || !strings.HasPrefix(out, "voided 1 voucher of "+batchB+", worth 10.00 KES") {
		t.Errorf("voucher void --batch: %v %q", err, out)
	}
	if out, err := cli("voucher", "void", "--batch", batchB, "--reason", "kiosk closed"); err != nil || out != "nothing left to void in "+batchB+" (0 already redeemed, 2 already voided): nothing changed\n" {
		t.Errorf("voucher void again: %v %q", err, out)
	}
	if _, err := cli("voucher", "void", "--batch", batchB); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Errorf("voucher void without a reason: %v", err)
	}
	var check struct{ Balanced bool }
	if g.do("GET", "/admin/v1/ledger/check", g.adminKey, nil, &check); !check.Balanced {
		t.Error("the ledger does not balance")
	}
}

func paramOf(e apiError) string {
	if e.Error.Param == nil {
		return ""
	}
	return *e.Error.Param
}
