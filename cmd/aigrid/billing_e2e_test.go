package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"aigrid/internal/upstreamtest"
)

const billingConfig = `
currency: KES
timezone: Africa/Nairobi
tariffs:
  - name: public
    blocks:
      - {up_to: 20, input: 0, output: 0}
      - {up_to: 1000, input: 20000, output: 60000}
      - {input: 30000, output: 90000}
providers:
  - name: up1
    kind: openai
    base_url: UPSTREAM
    offers:
      - {model: small-chat, serves: [chat], price: {input: 1000, output: 2000}}
tenants:
  - name: clinic-a
    keys: [sk-clinic-a-0001]
    tariff: public
    account: {type: prepaid, balance: 10}
    limits: {rpm: 600, tpm: 100000}
  - name: broke
    keys: [sk-broke-00001]
    tariff: public
    account: {type: prepaid}
  - name: limited
    keys: [sk-limited-0001]
    limits: {rpm: 2}
`

type usagePage struct {
	Data []struct {
		ID               string `json:"id"`
		PromptTokens     int64  `json:"prompt_tokens"`
		CompletionTokens int64  `json:"completion_tokens"`
		Price            string `json:"price"`
		Charge           struct {
			Blocks []struct{ Block int } `json:"blocks"`
			Total  int64                 `json:"total"`
		} `json:"charge"`
	} `json:"data"`
	Totals struct {
		Calls      int    `json:"calls"`
		Price      string `json:"price"`
		PriceMinor int64  `json:"price_minor"`
	} `json:"totals"`
}

type balance struct {
	Currency     string `json:"currency"`
	Balance      string `json:"balance"`
	BalanceMinor int64  `json:"balance_minor"`
	HeldMinor    int64  `json:"held_minor"`
}

func startBillingGrid(t *testing.T) *grid {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"small-chat": {}})
	return startGrid(t, strings.Replace(billingConfig, "UPSTREAM", up.URL, 1))
}

func chatBody(prompt string, stream bool) map[string]any {
	b := map[string]any{"model": "chat", "max_tokens": 50, "messages": []map[string]string{{"role": "user", "content": prompt}}}
	if stream {
		b["stream"] = true
		b["stream_options"] = map[string]bool{"include_usage": true}
	}
	return b
}

func TestBillingEndToEnd(t *testing.T) {
	g := startBillingGrid(t)
	const key = "sk-clinic-a-0001"

	// 3 prompt words and "You said: one two three", 5 words: all in the free block.
	var resp struct{ ID string }
	r := g.do("POST", "/v1/chat/completions", key, chatBody("one two three", false), &resp)
	if r.StatusCode != 200 {
		t.Fatalf("chat: %d", r.StatusCode)
	}
	if r.Header.Get("x-ratelimit-limit-requests") != "600" || r.Header.Get("x-ratelimit-remaining-requests") == "" ||
		r.Header.Get("x-ratelimit-limit-tokens") != "100000" || r.Header.Get("x-ratelimit-reset-tokens") == "" {
		t.Errorf("rate-limit headers %v", r.Header)
	}
	// 10 prompt words and 12 of reply, 22 tokens from 8: the free block's last
	// 12 tokens, then the second block.
	g.do("POST", "/v1/chat/completions", key, chatBody(strings.Repeat("word ", 10), false), nil)
	// A stream, settled before [DONE].
	sr := g.doRaw("POST", "/v1/chat/completions", key, chatBody("habari ya asubuhi", true))
	if !strings.HasSuffix(sr, "data: [DONE]\n\n") {
		t.Fatalf("stream ends %q", sr[max(0, len(sr)-80):])
	}

	var page usagePage
	g.do("GET", "/v1/usage", key, nil, &page)
	if len(page.Data) != 3 || page.Totals.Calls != 3 {
		t.Fatalf("usage has %d calls: %+v", len(page.Data), page)
	}
	// Calls are timed in the grid's zone, as the period is.
	var zoned struct {
		From, To string
		Data     []struct{ Created string }
	}
	g.do("GET", "/v1/usage", key, nil, &zoned)
	for _, u := range zoned.Data {
		if !strings.HasSuffix(u.Created, "+03:00") || !strings.HasSuffix(zoned.From, "+03:00") || !strings.HasSuffix(zoned.To, "+03:00") {
			t.Errorf("call at %s, period %s to %s: want all in Africa/Nairobi's +03:00", u.Created, zoned.From, zoned.To)
		}
	}
	if "chatcmpl-"+page.Data[0].ID != resp.ID {
		t.Errorf("usage id %q, response id %q", page.Data[0].ID, resp.ID)
	}
	if u := page.Data[0]; u.PromptTokens != 3 || u.CompletionTokens != 5 || u.Charge.Total != 0 {
		t.Errorf("first call %+v", u)
	}
	if u := page.Data[1]; u.PromptTokens != 10 || u.CompletionTokens != 12 || len(u.Charge.Blocks) != 2 || u.Charge.Total <= 0 {
		t.Errorf("straddling call %+v", u)
	}
	var sum int64
	for _, u := range page.Data {
		sum += u.Charge.Total
	}
	if sum != page.Totals.PriceMinor || sum == 0 {
		t.Errorf("totals %d, sum of calls %d", page.Totals.PriceMinor, sum)
	}

	var b balance
	g.do("GET", "/v1/balance", key, nil, &b)
	if b.Currency != "KES" || b.BalanceMinor != 1000-sum || b.HeldMinor != 0 {
		t.Errorf("balance %+v, want 1000 - %d cents and nothing held", b, sum)
	}

	// The statement agrees to the cent, in each format.
	var st struct {
		OpeningBalance string `json:"opening_balance"`
		ClosingBalance string `json:"closing_balance"`
		UsageTotal     string `json:"usage_total"`
		Usage          []struct {
			Block int
			Calls int64
		}
		Transactions []struct{ Kind, Amount string }
	}
	month := monthNow()
	g.do("GET", "/v1/statements/"+month, key, nil, &st)
	// The statement's usage total is the sum of the calls' charges, to the cent.
	if want := fmt.Sprintf("%d.%02d", sum/100, sum%100); st.UsageTotal != want {
		t.Errorf("statement usage total %s, calls sum to %s", st.UsageTotal, want)
	}
	if st.OpeningBalance != "0.00" || st.ClosingBalance != b.Balance || len(st.Transactions) != 1 || st.Transactions[0].Amount != "10.00" {
		t.Errorf("statement %+v, balance %s", st, b.Balance)
	}
	for accept, want := range map[string]string{"text/csv": "closing_balance", "text/html": "<h1>Statement for " + month} {
		req, _ := http.NewRequest("GET", g.url+"/v1/statements/"+month, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Accept", accept)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.HasPrefix(res.Header.Get("Content-Type"), accept) || !strings.Contains(string(body), want) || !strings.Contains(string(body), b.Balance) {
			t.Errorf("%s statement: %s\n%s", accept, res.Header.Get("Content-Type"), body)
		}
	}
	var bad apiError
	if r := g.do("GET", "/v1/statements/2026-13", key, nil, &bad); r.StatusCode != 400 {
		t.Errorf("bad month: %d", r.StatusCode)
	}

	// A prepaid tenant with nothing cannot buy.
	var e apiError
	r = g.do("POST", "/v1/chat/completions", "sk-broke-00001", chatBody("hello", false), &e)
	if r.StatusCode != 402 || e.Error.Type != "insufficient_quota" || !strings.Contains(e.Error.Message, "voucher") {
		t.Errorf("broke tenant: %d %+v", r.StatusCode, e)
	}

	// Two requests a minute, then 429 with Retry-After and the limit's state.
	for i := range 3 {
		var e apiError
		r := g.do("POST", "/v1/chat/completions", "sk-limited-0001", chatBody("hello", false), &e)
		if i < 2 && r.StatusCode != 200 || i == 2 && (r.StatusCode != 429 || r.Header.Get("Retry-After") == "" || e.Error.Code != "rate_limit_exceeded") {
			t.Errorf("limited call %d: %d %v %+v", i, r.StatusCode, r.Header, e)
		}
		if i == 2 && (r.Header.Get("x-ratelimit-limit-requests") != "2" || r.Header.Get("x-ratelimit-remaining-requests") != "0" || r.Header.Get("x-ratelimit-reset-requests") == "") {
			t.Errorf("429's rate-limit headers: %v", r.Header)
		}
	}

	// Vouchers: minted by the operator, redeemed once by a tenant.
	var mint struct{ Codes []string }
	if r := g.do("POST", "/admin/v1/vouchers", g.adminKey, map[string]any{"count": 2, "value": "5"}, &mint); r.StatusCode != 201 || len(mint.Codes) != 2 {
		t.Fatalf("mint: %d %+v", r.StatusCode, mint)
	}
	var red struct{ Value, Balance string }
	if r := g.do("POST", "/v1/vouchers/redeem", "sk-broke-00001", map[string]string{"code": mint.Codes[0]}, &red); r.StatusCode != 200 || red.Value != "5.00" || red.Balance != "5.00" {
		t.Errorf("redeem: %d %+v", r.StatusCode, red)
	}
	typo := []byte(mint.Codes[1])
	typo[3] = '0' + (typo[3]-'0'+1)%10
	for code, status := range map[string]int{mint.Codes[0]: 409, string(typo): 400, "": 400} {
		var e apiError
		if r := g.do("POST", "/v1/vouchers/redeem", "sk-broke-00001", map[string]string{"code": code}, &e); r.StatusCode != status || e.Error.Message == "" {
			t.Errorf("redeem %q: %d %+v, want %d", code, r.StatusCode, e, status)
		}
	}
	if r := g.do("POST", "/v1/chat/completions", "sk-broke-00001", chatBody("hello", false), nil); r.StatusCode != 200 {
		t.Errorf("after a voucher: %d", r.StatusCode)
	}

	// The operator's view.
	var rev struct {
		Revenue string
		Data    []struct{ Provider string }
	}
	g.do("GET", "/admin/v1/revenue", g.adminKey, nil, &rev)
	if len(rev.Data) != 1 || rev.Data[0].Provider != "up1" || rev.Revenue == "0.00" {
		t.Errorf("revenue %+v", rev)
	}
	var adj struct{ Balance string }
	if r := g.do("POST", "/admin/v1/tenants/clinic-a/adjustments", g.adminKey, map[string]any{"amount": "-1.5", "reason": "double charge refund reversed"}, &adj); r.StatusCode != 201 {
		t.Errorf("adjust: %d", r.StatusCode)
	}
	if r := g.do("POST", "/admin/v1/tenants/clinic-a/adjustments", g.adminKey, map[string]any{"amount": "2"}, nil); r.StatusCode != 400 {
		t.Errorf("adjustment without a reason: %d", r.StatusCode)
	}
	g.creditsRecordedOnce()
	var check struct{ Balanced bool }
	g.do("GET", "/admin/v1/ledger/check", g.adminKey, nil, &check)
	if !check.Balanced {
		t.Error("ledger does not balance")
	}
}

// doRaw sends a JSON request and returns the whole body as text.
func (g *grid) doRaw(method, path, key string, body any) string {
	g.t.Helper()
	r, err := http.NewRequest(method, g.url+path, strings.NewReader(mustJSON(g.t, body)))
	if err != nil {
		g.t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+key)
	r.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		g.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// monthNow is the current month in the test grid's time zone.
func monthNow() string {
	loc, _ := time.LoadLocation("Africa/Nairobi")
	return time.Now().In(loc).Format("2006-01")
}

func TestBillingCLI(t *testing.T) {
	g := startBillingGrid(t)
	cli := func(args ...string) (string, error) {
		var out, errb strings.Builder
		err := run(t.Context(), append(args, "--server", g.url, "--admin-key", g.adminKey), &out, &errb)
		return out.String(), err
	}
	csvPath := t.TempDir() + "/batch.csv"
	out, err := cli("voucher", "mint", "--count", "3", "--value", "2.50", "--expires", "2099-12-31", "--csv", csvPath)
	if err != nil {
		t.Fatal(err)
	}
	codes := strings.Fields(out)
	if len(codes) != 3 {
		t.Fatalf("mint printed %q", out)
	}
	for _, c := range codes {
		if len(c) != 20 || strings.Trim(c, "0123456789") != "" {
			t.Errorf("code %q is not 20 digits", c)
		}
	}
	raw, err := os.ReadFile(csvPath)
	if err != nil || !strings.HasPrefix(string(raw), "code,value,currency,expires,batch\n"+codes[0]+",2.50,KES,2099-12-31,batch-") {
		t.Errorf("csv %q, %v", raw, err)
	}
	if _, err := cli("voucher", "mint", "--count", "0", "--value", "1"); err == nil {
		t.Error("minting zero vouchers succeeded")
	}
	if out, err := cli("account", "topup", "clinic-a", "25", "--reference", "MPESA-QX12"); err != nil || !strings.Contains(out, "balance now 35.00 KES") {
		t.Errorf("topup: %q %v", out, err)
	}
	// The same payment recorded twice counts once.
	if out, err := cli("account", "topup", "clinic-a", "25", "--reference", "MPESA-QX12"); err != nil || !strings.Contains(out, "recorded before") || !strings.Contains(out, "balance 35.00 KES") {
		t.Errorf("repeated topup: %q %v", out, err)
	}
	// The same reference on another amount is refused, and says why.
	if _, err := cli("account", "topup", "clinic-a", "52", "--reference", "MPESA-QX12"); err == nil || !strings.Contains(err.Error(), "MPESA-QX12") {
		t.Errorf("the reference on another amount: %v", err)
	}
	if out, err := cli("account", "adjust", "clinic-a", "-5", "--reason", "duplicate top-up", "--reference", "ADJ-2"); err != nil || !strings.Contains(out, "balance now 30.00 KES") {
		t.Errorf("adjust with a reference: %q %v", out, err)
	}
	if out, err := cli("account", "adjust", "clinic-a", "-5", "--reason", "duplicate top-up", "--reference", "ADJ-2"); err != nil || !strings.Contains(out, "nothing changed; balance 30.00 KES") {
		t.Errorf("the adjustment repeated: %q %v", out, err)
	}
	if out, err := cli("tariff", "set", "night", "--blocks", "1000:0/0,:10/30", "--off-peak", "22:00-06:00x0.5"); err != nil || !strings.Contains(out, "22:00-06:00x0.5") {
		t.Errorf("tariff set: %q %v", out, err)
	}
	if _, err := cli("tariff", "set", "bad", "--blocks", ":10/30,1000:0/0"); err == nil {
		t.Error("a tariff with an unbounded block first was accepted")
	}
	if out, err := cli("account", "set", "broke", "--type", "postpaid", "--credit-limit", "100", "--tariff", "night"); err != nil || !strings.Contains(out, "postpaid") {
		t.Errorf("account set: %q %v", out, err)
	}
	// A flag left out leaves its part of the account as it was.
	if out, err := cli("account", "set", "broke", "--rpm", "60"); err != nil || !strings.Contains(out, "postpaid") || !strings.Contains(out, "night") {
		t.Errorf("partial account set: %q %v", out, err)
	}
	if out, err := cli("account", "adjust", "clinic-a", "-2.50", "--reason", "goodwill reversed"); err != nil || !strings.Contains(out, "-2.50") {
		t.Errorf("negative adjustment: %q %v", out, err)
	}
	if out, err := cli("account", "statement", "clinic-a", monthNow(), "--format", "csv"); err != nil || !strings.Contains(out, "topup") {
		t.Errorf("statement: %q %v", out, err)
	}
}

func TestParseInterleavedNegativeNumbers(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		positional string
		reason     string
	}{
		{[]string{"clinic-a", "-2.50", "--reason", "refund"}, "clinic-a,-2.50", "refund"},
		{[]string{"--reason", "x", "clinic-a", "-3"}, "clinic-a,-3", "x"},
		{[]string{"clinic-a", "--reason", "y", "5"}, "clinic-a,5", "y"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		reason := fs.String("reason", "", "")
		pos, err := parseInterleaved(fs, tc.args)
		if err != nil || strings.Join(pos, ",") != tc.positional || *reason != tc.reason {
			t.Errorf("%q: %q %q %v", tc.args, pos, *reason, err)
		}
	}
}

// creditsRecordedOnce checks that a credit sent again with its reference, in
// the body or as the Idempotency-Key header, is recorded once (201, then 200
// "repeated"), and that a reference reused for a different credit is refused.
func (g *grid) creditsRecordedOnce() {
	t := g.t
	t.Helper()
	type answer struct {
		Balance, Reference string
		Repeated           bool
		Error              struct{ Code, Param string }
	}
	post := func(path, idempotencyKey string, body map[string]any) (int, answer) {
		t.Helper()
		req, err := http.NewRequest("POST", g.url+"/admin/v1/tenants/clinic-a"+path, strings.NewReader(mustJSON(t, body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+g.adminKey)
		req.Header.Set("Content-Type", "application/json")
		if idempotencyKey != "" {
			req.Header.Set("Idempotency-Key", idempotencyKey)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a answer
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, a
	}
	status, first := post("/adjustments", "retry-7f3a", map[string]any{"amount": "0.25", "reason": "goodwill"})
	if status != 201 || first.Repeated || first.Reference != "retry-7f3a" {
		t.Fatalf("adjustment with an Idempotency-Key: %d %+v", status, first)
	}
	status, again := post("/adjustments", "", map[string]any{"amount": "0.25", "reason": "goodwill", "reference": "retry-7f3a"})
	if status != 200 || !again.Repeated || again.Balance != first.Balance {
		t.Errorf("the same adjustment again: %d %+v, want 200, repeated, balance %s", status, again, first.Balance)
	}
	if status, a := post("/adjustments", "retry-7f3a", map[string]any{"amount": "0.30", "reason": "goodwill"}); status != 409 || a.Error.Code != "conflict" {
		t.Errorf("the reference on another amount: %d %+v, want 409 conflict", status, a)
	}
	if status, a := post("/topups", "MPESA-9", map[string]any{"amount": "1", "reference": "MPESA-8"}); status != 400 || a.Error.Param != "reference" {
		t.Errorf("a body reference and an Idempotency-Key that differ: %d %+v, want 400 on reference", status, a)
	}
	if status, a := post("/topups", "MPESA-9", map[string]any{"amount": "1"}); status != 201 || a.Reference != "MPESA-9" {
		t.Errorf("a top-up whose reference is its Idempotency-Key: %d %+v", status, a)
	}
	if status, a := post("/topups", "MPESA-9", map[string]any{"amount": "1"}); status != 200 || !a.Repeated {
		t.Errorf("the top-up retried: %d %+v, want 200 repeated", status, a)
	}
}

// A tenant's statement says "operator" where the operator's copy names the
// admin key that recorded a credit: the grid's key ids are not the tenant's.
func TestStatementActor(t *testing.T) {
	g := startBillingGrid(t)
	const key = "sk-clinic-a-0001"
	if r := g.do("POST", "/admin/v1/tenants/clinic-a/topups", g.adminKey, map[string]string{"amount": "5", "reference": "MPESA-ACT1"}, nil); r.StatusCode != 201 {
		t.Fatalf("topup: %d", r.StatusCode)
	}
	type statement struct {
		Transactions []struct{ Kind, Actor string }
	}
	actors := func(path, k string) []string {
		var st statement
		g.do("GET", path, k, nil, &st)
		var out []string
		for _, tx := range st.Transactions {
			out = append(out, tx.Kind+" by "+tx.Actor)
		}
		return out
	}
	month := monthNow()
	tenant := actors("/v1/statements/"+month, key)
	operator := actors("/admin/v1/tenants/clinic-a/statements/"+month, g.adminKey)
	if len(tenant) != 2 || tenant[0] != "topup by config" || tenant[1] != "topup by operator" {
		t.Errorf("the tenant's statement: %q", tenant)
	}
	if len(operator) != 2 || !strings.HasPrefix(operator[1], "topup by key:") {
		t.Errorf("the operator's statement: %q", operator)
	}
}
