package api

import (
	"context"
	"encoding/csv"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"aigrid"
	"aigrid/meter"
)

// Tenants see their own meter: balance, usage, monthly statements, and
// redeem vouchers with their own key.

func (s *Server) billingMeter(w http.ResponseWriter, r *http.Request) *meter.Meter {
	if s.cfg.Meter == nil {
		writeError(w, r, aigrid.Errorf(aigrid.ENotFound, "Metering is off on this grid: there is no balance, usage or statement to show."))
	}
	return s.cfg.Meter
}

func (s *Server) getBalance(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
	s.writeBalance(w, r, call.Tenant)
}

func (s *Server) writeBalance(w http.ResponseWriter, r *http.Request, t *aigrid.Tenant) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	b, err := m.Balance(r.Context(), t.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

// usageItem is one metered call as a tenant sees it.
type usageItem struct {
	*aigrid.UsageRecord
	Price string `json:"price"`
}

// usageTotals sum a list of calls.
type usageTotals struct {
	Calls            int    `json:"calls"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	Price            string `json:"price"`
	PriceMinor       int64  `json:"price_minor"`
}

type usagePage struct {
	Object   string      `json:"object"`
	Currency string      `json:"currency"`
	From     time.Time   `json:"from"`
	To       time.Time   `json:"to"`
	Data     []usageItem `json:"data"`
	Totals   usageTotals `json:"totals"`
	HasMore  bool        `json:"has_more"`
}

// maxUsagePage bounds one page of /v1/usage; a client pages on with from.
const maxUsagePage = 10000

func (s *Server) getUsage(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
	s.writeUsage(w, r, call.Tenant)
}

func (s *Server) writeUsage(w http.ResponseWriter, r *http.Request, t *aigrid.Tenant) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	from, to, err := period(r, m.Location())
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	limit := maxUsagePage
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxUsagePage {
			writeError(w, r, aigrid.ParamErrorf("limit", "limit must be a whole number from 1 to %d", maxUsagePage))
			return
		}
	}
	recs, err := s.cfg.Store.ListUsage(r.Context(), t.ID, from, to, limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cur := m.Currency()
	page := usagePage{Object: "list", Currency: cur.Code, From: from.In(m.Location()), To: to.In(m.Location()), Data: make([]usageItem, 0, min(len(recs), limit))}
	if len(recs) > limit {
		recs, page.HasMore = recs[:limit], true
	}
	var total aigrid.Money
	for _, u := range recs {
		u.At = u.At.In(m.Location()) // in the zone of the period and the statements
		page.Data = append(page.Data, usageItem{UsageRecord: u, Price: cur.Decimal(u.Charge.Total)})
		page.Totals.PromptTokens += u.PromptTokens
		page.Totals.CompletionTokens += u.CompletionTokens
		total += u.Charge.Total
	}
	page.Totals.Calls = len(recs)
	page.Totals.Price, page.Totals.PriceMinor = cur.Decimal(total), int64(total)
	writeJSON(w, http.StatusOK, page)
}

// period reads the from and to of a query, by default from the start of the
// month (in the grid's time zone) to now.
func period(r *http.Request, loc *time.Location) (from, to time.Time, err error) {
	now := time.Now().In(loc)
	from, to = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc), now.Add(time.Second)
	q := r.URL.Query()
	if v := q.Get("from"); v != "" {
		if from, err = parseWhen(v, loc); err != nil {
			return from, to, aigrid.ParamErrorf("from", "from: %v%s", err, plusHint(v, loc))
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = parseWhen(v, loc); err != nil {
			return from, to, aigrid.ParamErrorf("to", "to: %v%s", err, plusHint(v, loc))
		}
	}
	if !from.Before(to) {
		return from, to, aigrid.ParamErrorf("to", "to (%s) must be after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	return from, to, nil
}

// plusHint explains a time that a URL's query turned unreadable: an
// offset's + written as is arrives as a space.
func plusHint(v string, loc *time.Location) string {
	if _, err := parseWhen(strings.ReplaceAll(v, " ", "+"), loc); err == nil && strings.Contains(v, " ") {
		return "; write the + of the offset as %2B in a URL"
	}
	return ""
}

// parseWhen reads a time as RFC 3339 or a day (YYYY-MM-DD, midnight in the grid's zone).
func parseWhen(v string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, v, loc); err == nil {
		return t, nil
	}
	return time.Time{}, aigrid.Errorf(aigrid.EInvalid, "%q is neither a date (2026-11-01) nor an RFC 3339 time (2026-11-01T08:00:00+03:00)", v)
}

// Statement is a tenant's month: opening balance, usage by service model and
// tariff block, the other transactions, closing balance.
type Statement struct {
	Tenant      string           `json:"tenant"`
	Month       string           `json:"month"`
	Currency    string           `json:"currency"`
	TimeZone    string           `json:"time_zone"`
	From        time.Time        `json:"from"`
	To          time.Time        `json:"to"`
	Provisional bool             `json:"provisional"`
	Opening     string           `json:"opening_balance"`
	Usage       []StatementUsage `json:"usage"`
	UsageTotal  string           `json:"usage_total"`
	Credits     []StatementTx    `json:"transactions"`
	Closing     string           `json:"closing_balance"`
	// Minor units, for programs.
	OpeningMinor, UsageTotalMinor, ClosingMinor aigrid.Money `json:"-"`
}

// StatementUsage is one line of usage: a service model in one tariff block.
type StatementUsage struct {
	aigrid.UsageLine
	Price string `json:"price"`
}

// StatementTx is a top-up, a redeemed voucher or an adjustment.
type StatementTx struct {
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Memo   string    `json:"memo,omitempty"`
	Amount string    `json:"amount"`
	// Actor is who recorded it: "config", or an admin key ("operator" in
	// the tenant's own copy).
	Actor string `json:"actor,omitempty"`
}

func (s *Server) getStatement(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
	s.writeStatement(w, r, call.Tenant, false)
}

// writeStatement answers a tenant's statement of a month; the operator's
// copy names the admin key that recorded each credit, the tenant's says
// "operator".
func (s *Server) writeStatement(w http.ResponseWriter, r *http.Request, t *aigrid.Tenant, operator bool) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	month := r.PathValue("month")
	start, err := time.ParseInLocation("2006-01", month, m.Location())
	if err != nil {
		writeError(w, r, aigrid.ParamErrorf("month", "%q is not a month: write it as 2026-11", month))
		return
	}
	now := time.Now()
	if start.After(now) {
		writeError(w, r, aigrid.Errorf(aigrid.ENotFound, "The month %s has not begun.", month))
		return
	}
	st, err := s.statement(r.Context(), m, t, start, now, operator)
	if err != nil {
		writeError(w, r, err)
		return
	}
	switch negotiate(r.Header.Get("Accept")) {
	case "text/csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="statement-`+t.Name+"-"+month+`.csv"`)
		writeStatementCSV(w, st)
	case "text/html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statementHTML.Execute(w, st); err != nil {
			logger(w).Error("render statement", "error", err.Error())
		}
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

func (s *Server) statement(ctx context.Context, m *meter.Meter, t *aigrid.Tenant, start, now time.Time, operator bool) (*Statement, error) {
	end := start.AddDate(0, 1, 0)
	cur := m.Currency()
	st := &Statement{Tenant: t.Name, Month: start.Format("2006-01"), Currency: cur.Code, TimeZone: m.Location().String(),
		From: start, To: end, Provisional: now.Before(end), Usage: []StatementUsage{}, Credits: []StatementTx{}}
	account := aigrid.TenantAccount(t.ID)
	var err error
	if st.OpeningMinor, err = s.cfg.Store.AccountBalance(ctx, account, start); err != nil {
		return nil, err
	}
	if st.ClosingMinor, err = s.cfg.Store.AccountBalance(ctx, account, end); err != nil {
		return nil, err
	}
	lines, err := s.cfg.Store.UsageByBlock(ctx, t.ID, start, end)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		st.Usage = append(st.Usage, StatementUsage{UsageLine: l, Price: cur.Decimal(l.Amount)})
		st.UsageTotalMinor += l.Amount
	}
	txs, err := s.cfg.Store.ListTxs(ctx, account, start, end)
	if err != nil {
		return nil, err
	}
	for _, tx := range txs {
		var amount aigrid.Money
		for _, e := range tx.Entries {
			if e.Account == account {
				amount += e.Amount
			}
		}
		actor := tx.Actor
		if !operator && strings.HasPrefix(actor, "key:") {
			actor = "operator"
		}
		st.Credits = append(st.Credits, StatementTx{At: tx.At.In(m.Location()), Kind: tx.Kind, Memo: tx.Memo, Amount: cur.Decimal(amount), Actor: actor})
	}
	st.Opening, st.UsageTotal, st.Closing = cur.Decimal(st.OpeningMinor), cur.Decimal(st.UsageTotalMinor), cur.Decimal(st.ClosingMinor)
	return st, nil
}

// negotiate picks the statement's format from an Accept header: the first
// of JSON, CSV and HTML that it names, JSON when it names none.
func negotiate(accept string) string {
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/json":
			return "application/json"
		case "text/csv":
			return "text/csv"
		case "text/html":
			return "text/html"
		}
	}
	return "application/json"
}

func writeStatementCSV(w http.ResponseWriter, st *Statement) {
	c := csv.NewWriter(w)
	c.Write([]string{"section", "date", "service_model", "block", "calls", "input_tokens", "output_tokens", "description", "amount_" + st.Currency})
	c.Write([]string{"opening_balance", st.From.Format(time.DateOnly), "", "", "", "", "", "", st.Opening})
	for _, u := range st.Usage {
		c.Write([]string{"usage", "", u.Service, strconv.Itoa(u.Block), strconv.FormatInt(u.Calls, 10),
			strconv.FormatInt(u.InputTokens, 10), strconv.FormatInt(u.OutputTokens, 10), "", negate(u.Price)})
	}
	for _, tx := range st.Credits {
		c.Write([]string{tx.Kind, tx.At.Format(time.DateOnly), "", "", "", "", "", tx.Memo, tx.Amount})
	}
	c.Write([]string{"usage_total", "", "", "", "", "", "", "", negate(st.UsageTotal)})
	c.Write([]string{"closing_balance", st.To.Format(time.DateOnly), "", "", "", "", "", "", st.Closing})
	c.Flush()
}

// negate writes a charge as the debit it is, and zero as zero.
func negate(amount string) string {
	if strings.Trim(amount, "0.") == "" {
		return amount
	}
	return "-" + amount
}

var statementHTML = template.Must(template.New("statement").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Statement {{.Month}}: {{.Tenant}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;color:#111}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border-bottom:1px solid #ccc;padding:.3rem .5rem;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
@media print{body{margin:0}}
</style></head><body>
<h1>Statement for {{.Month}}</h1>
<p>Tenant <strong>{{.Tenant}}</strong>; amounts in {{.Currency}}; times in {{.TimeZone}}.{{if .Provisional}} <em>Provisional: the month is not over.</em>{{end}}</p>
<table><tr><th>Opening balance ({{.From.Format "2006-01-02"}})</th><td class="n">{{.Opening}}</td></tr></table>
<h2>Usage</h2>
<table><tr><th>Service model</th><th class="n">Block</th><th class="n">Calls</th><th class="n">Input tokens</th><th class="n">Output tokens</th><th class="n">Charge</th></tr>
{{range .Usage}}<tr><td>{{.Service}}</td><td class="n">{{.Block}}</td><td class="n">{{.Calls}}</td><td class="n">{{.InputTokens}}</td><td class="n">{{.OutputTokens}}</td><td class="n">{{.Price}}</td></tr>
{{else}}<tr><td colspan="6">No usage.</td></tr>
{{end}}<tr><th colspan="5">Total usage</th><td class="n">{{.UsageTotal}}</td></tr></table>
<h2>Payments and adjustments</h2>
<table><tr><th>Date</th><th>Kind</th><th>Description</th><th class="n">Amount</th></tr>
{{range .Credits}}<tr><td>{{.At.Format "2006-01-02 15:04"}}</td><td>{{.Kind}}</td><td>{{.Memo}}</td><td class="n">{{.Amount}}</td></tr>
{{else}}<tr><td colspan="4">None.</td></tr>
{{end}}</table>
<table><tr><th>Closing balance ({{.To.Format "2006-01-02"}})</th><td class="n">{{.Closing}}</td></tr></table>
</body></html>
`))

type redeemRequest struct {
	Code string `json:"code"`
}

type redeemResponse struct {
	Object   string `json:"object"`
	Currency string `json:"currency"`
	Value    string `json:"value"`
	Balance  string `json:"balance"`
}

func (s *Server) redeemVoucher(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	var req redeemRequest
	if !s.decodeAdmin(w, r, &req) {
		return
	}
	if req.Code == "" {
		writeError(w, r, aigrid.ParamErrorf("code", "code is required: the 20 digits printed on the voucher"))
		return
	}
	value, balance, err := m.Redeem(r.Context(), call.Tenant.ID, req.Code)
	if err != nil {
		writeError(w, r, err)
		return
	}
	logger(w).Info("voucher redeemed", "tenant", call.Tenant.Name, "value", value)
	cur := m.Currency()
	writeJSON(w, http.StatusOK, redeemResponse{Object: "voucher.redemption", Currency: cur.Code, Value: cur.Decimal(value), Balance: cur.Decimal(balance)})
}
