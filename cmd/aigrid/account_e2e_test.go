package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The account settings the operator changes keep what the flags leave out,
// the type included: a tenant the file gave no account type stays without
// one (never refused for money) when only its limits change.
func TestAccountSetKeepsWhatItIsNotGiven(t *testing.T) {
	g := startGrid(t, `
currency: KES
tariffs:
  - name: public
    blocks:
      - {up_to: 200000, input: 0, output: 0}
      - {input: 20, output: 60}
tenants:
  - name: farm-c
    tariff: public
    limits: {tokens_per_day: 50000}
  - name: shop-d
    tariff: public
    account: {type: prepaid, balance: 1}
  - name: lab-e
`)
	cli := func(args ...string) (string, error) {
		var out, errb strings.Builder
		err := run(t.Context(), append(args, "--server", g.url, "--admin-key", g.adminKey), &out, &errb)
		return out.String(), err
	}
	type account struct {
		Type        string `json:"account_type"`
		CreditLimit string `json:"credit_limit"`
		Tariff      string
		Limits      struct {
			RPM          int64 `json:"rpm"`
			TokensPerDay int64 `json:"tokens_per_day"`
		}
	}
	get := func(tenant string) account {
		var a account
		if r := g.do("GET", "/admin/v1/tenants/"+tenant+"/account", g.adminKey, nil, &a); r.StatusCode != 200 {
			t.Fatalf("account of %s: %d", tenant, r.StatusCode)
		}
		return a
	}
	// From the file, with a tariff and limits but no account (before: 400
	// "type must be prepaid or postpaid").
	if out, err := cli("account", "set", "farm-c", "--rpm", "60"); err != nil {
		t.Fatalf("account set farm-c --rpm 60: %q %v", out, err)
	}
	if a := get("farm-c"); a.Type != "" || a.Tariff != "public" || a.Limits.RPM != 60 {
		t.Errorf("farm-c after --rpm 60: %+v", a)
	}
	// With no account row at all (before: made prepaid).
	if _, err := cli("account", "set", "lab-e", "--rpm", "2"); err != nil {
		t.Fatal(err)
	}
	if a := get("lab-e"); a.Type != "" || a.Limits.RPM != 2 {
		t.Errorf("lab-e after --rpm 2: %+v", a)
	}
	// A credit limit on an account that is not postpaid is refused, not
	// dropped (before: 200 and no credit limit).
	for _, tenant := range []string{"shop-d", "lab-e"} {
		var e apiError
		r := g.do("PUT", "/admin/v1/tenants/"+tenant+"/account", g.adminKey, map[string]any{"credit_limit": 50}, &e)
		if r.StatusCode != 400 || e.Error.Param == nil || *e.Error.Param != "credit_limit" || !strings.Contains(e.Error.Message, "postpaid") {
			t.Errorf("%s: a credit limit alone: %d %+v", tenant, r.StatusCode, e.Error)
		}
	}
	if a := get("shop-d"); a.Type != "prepaid" || a.CreditLimit != "" {
		t.Errorf("shop-d after the refused credit limit: %+v", a)
	}
	if out, err := cli("account", "set", "lab-e", "--type", "postpaid", "--credit-limit", "50"); err != nil || !strings.Contains(out, "50.00") {
		t.Errorf("postpaid with a credit limit: %q %v", out, err)
	}
	if _, err := cli("account", "set", "lab-e", "--type", "prepay"); err == nil || !strings.Contains(err.Error(), "prepaid or postpaid") {
		t.Errorf("an unknown type: %v", err)
	}
	// Going prepaid drops the credit limit, which a prepaid account has not.
	if _, err := cli("account", "set", "lab-e", "--type", "prepaid"); err != nil {
		t.Fatal(err)
	}
	if a := get("lab-e"); a.Type != "prepaid" || a.CreditLimit != "" || a.Limits.RPM != 2 {
		t.Errorf("lab-e made prepaid: %+v", a)
	}
}

// An amount with too many decimals is named once, by the field at fault.
func TestAmountMessages(t *testing.T) {
	g := startBillingGrid(t)
	for _, c := range []struct {
		path, param string
		body        map[string]any
	}{
		{"/admin/v1/tenants/clinic-a/topups", "amount", map[string]any{"amount": "0.505", "reference": "R-1"}},
		{"/admin/v1/vouchers", "value", map[string]any{"count": 1, "value": "10.005"}},
	} {
		var e apiError
		r := g.do("POST", c.path, g.adminKey, c.body, &e)
		want := `amount "` + c.body[c.param].(string) + `": more than 2 decimal places (KES has 2 decimal places)`
		if r.StatusCode != 400 || e.Error.Message != want || e.Error.Param == nil || *e.Error.Param != c.param {
			t.Errorf("%s: %d %q (param %v), want %q", c.path, r.StatusCode, e.Error.Message, e.Error.Param, want)
		}
	}
	// A + left unencoded in a URL arrives as a space; the message says so.
	var e apiError
	r := g.do("GET", "/v1/usage?from=2026-11-30T03:27:30+03:00", "sk-clinic-a-0001", nil, &e)
	if r.StatusCode != 400 || !strings.Contains(e.Error.Message, "%2B") {
		t.Errorf("from with a bare +: %d %q", r.StatusCode, e.Error.Message)
	}
	r = g.do("GET", "/v1/usage?from=yesterday", "sk-clinic-a-0001", nil, &e)
	if r.StatusCode != 400 || strings.Contains(e.Error.Message, "%2B") {
		t.Errorf("from=yesterday: %d %q", r.StatusCode, e.Error.Message)
	}
}

// voucher mint --csv into a file that exists mints nothing, since the codes
// are shown once and a batch whose codes were lost could not be sold; a
// batch minted is printed even when its CSV cannot be written.
func TestVoucherMintCSVNeverLosesCodes(t *testing.T) {
	g := startBillingGrid(t)
	cli := func(args ...string) (string, error) {
		var out, errb strings.Builder
		err := run(t.Context(), append(args, "--server", g.url, "--admin-key", g.adminKey), &out, &errb)
		return out.String(), err
	}
	dir := t.TempDir()
	taken := filepath.Join(dir, "batch.csv")
	if err := os.WriteFile(taken, []byte("printed last week\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cli("voucher", "mint", "--count", "2", "--value", "5", "--csv", taken); err == nil || !strings.Contains(err.Error(), "nothing was minted") {
		t.Errorf("mint into an existing CSV: %v", err)
	}
	var list batchList
	g.do("GET", "/admin/v1/vouchers", g.adminKey, nil, &list)
	if len(list.Data) != 0 {
		t.Errorf("a batch was minted though its CSV could not be made: %+v", list.Data)
	}
	if raw, _ := os.ReadFile(taken); string(raw) != "printed last week\n" {
		t.Errorf("the existing CSV was changed: %q", raw)
	}
	// A refused mint leaves no empty CSV behind.
	fresh := filepath.Join(dir, "refused.csv")
	if _, err := cli("voucher", "mint", "--count", "100001", "--value", "5", "--csv", fresh); err == nil {
		t.Error("minting 100001 vouchers succeeded")
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("a refused mint left %s: %v", fresh, err)
	}
	out, err := cli("voucher", "mint", "--count", "2", "--value", "5", "--csv", fresh)
	if err != nil || len(strings.Fields(out)) != 2 {
		t.Fatalf("mint into a new CSV: %q %v", out, err)
	}
	if raw, _ := os.ReadFile(fresh); strings.Count(string(raw), "\n") != 3 {
		t.Errorf("the CSV: %q", raw)
	}
}
