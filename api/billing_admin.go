package api

import (
	"encoding/json"
	"net/http"
	"time"

	"aigrid"
	"aigrid/meter"
)

// The operator's side of the meter: tariffs, accounts, payments,
// adjustments, vouchers, revenue against cost, and who owes what.

// money reads an amount in major units, written as a JSON number or string.
type money string

func (m *money) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return aigrid.Errorf(aigrid.EInvalid, "an amount must be a number in major units, like 100 or \"12.50\"")
	}
	*m = money(n.String())
	return nil
}

func (s *Server) parseAmount(m *meter.Meter, param string, v money) (aigrid.Money, error) {
	if v == "" {
		return 0, aigrid.ParamErrorf(param, "%s is required", param)
	}
	// ParseMoney's message names the amount already; the param says which field.
	a, err := m.Currency().ParseMoney(string(v))
	if err != nil {
		return 0, aigrid.ParamErrorf(param, "%s", aigrid.ErrorMessage(err))
	}
	return a, nil
}

// tenantFor finds the tenant named in the path.
func (s *Server) tenantFor(w http.ResponseWriter, r *http.Request) *aigrid.Tenant {
	t, err := s.cfg.Store.FindTenantByName(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, r, err)
		return nil
	}
	return t
}

func (s *Server) listTariffs(w http.ResponseWriter, r *http.Request) {
	ts, err := s.cfg.Store.ListTariffs(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if ts == nil {
		ts = []*aigrid.Tariff{}
	}
	writeJSON(w, http.StatusOK, list[*aigrid.Tariff]{Object: "list", Data: ts})
}

// putTariff adds a version of a tariff from its effective date (today when
// none is given). A version may not start in the past: past usage is never
// repriced.
func (s *Server) putTariff(w http.ResponseWriter, r *http.Request) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	var req struct {
		// Effective is a day (midnight in the grid's time zone) or an RFC 3339 time.
		Effective string            `json:"effective"`
		Blocks    []aigrid.Block    `json:"blocks"`
		OffPeak   *aigrid.TimeOfUse `json:"off_peak"`
	}
	if !s.decodeAdmin(w, r, &req) {
		return
	}
	t := aigrid.Tariff{Name: r.PathValue("name"), Blocks: req.Blocks, OffPeak: req.OffPeak}
	now := time.Now().In(m.Location())
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, m.Location())
	if req.Effective == "" {
		t.Effective = now
	} else if e, err := parseWhen(req.Effective, m.Location()); err != nil {
		writeError(w, r, aigrid.ParamErrorf("effective", "effective: %v", err))
		return
	} else if t.Effective = e; t.Effective.Before(today) {
		writeError(w, r, aigrid.ParamErrorf("effective", "effective %s is in the past: a tariff change applies from today or later, so that past usage is never repriced.", t.Effective.Format(time.DateOnly)))
		return
	}
	if err := t.Validate(); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.cfg.Store.PutTariff(r.Context(), &t); err != nil {
		writeError(w, r, err)
		return
	}
	if err := m.ReloadTariffs(r.Context()); err != nil {
		writeError(w, r, err)
		return
	}
	logger(w).Info("tariff set", "tariff", t.Name, "effective", t.Effective, "actor", adminActor(r))
	writeJSON(w, http.StatusOK, &t)
}

// accountRequest changes an account: fields left out keep their values;
// amounts are in major units.
type accountRequest struct {
	Type        *aigrid.AccountType `json:"type"`
	CreditLimit *money              `json:"credit_limit"`
	Tariff      *string             `json:"tariff"`
	Limits      *aigrid.Limits      `json:"limits"`
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) {
	if t := s.tenantFor(w, r); t != nil {
		s.writeBalance(w, r, t)
	}
}

func (s *Server) putAccount(w http.ResponseWriter, r *http.Request) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	var req accountRequest
	if !s.decodeAdmin(w, r, &req) {
		return
	}
	t := s.tenantFor(w, r)
	if t == nil {
		return
	}
	// A tenant without an account has no type (never refused for money),
	// as the file leaves it; it keeps none until a type is given.
	a, err := s.cfg.Store.GetAccount(r.Context(), t.ID)
	if aigrid.ErrorCode(err) == aigrid.ENotFound {
		a, err = &aigrid.Account{TenantID: t.ID}, nil
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if req.Type != nil {
		if *req.Type != aigrid.Prepaid && *req.Type != aigrid.Postpaid {
			writeError(w, r, aigrid.ParamErrorf("type", "type must be prepaid or postpaid"))
			return
		}
		a.Type = *req.Type
	}
	if req.Tariff != nil {
		a.Tariff = *req.Tariff
	}
	if req.Limits != nil {
		a.Limits = *req.Limits
	}
	if req.CreditLimit != nil {
		limit, err := s.parseAmount(m, "credit_limit", *req.CreditLimit)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if a.Type != aigrid.Postpaid {
			writeError(w, r, aigrid.ParamErrorf("credit_limit", "Only a postpaid account has a credit limit, and this one %s: give the type postpaid with it.", accountTypeText(a.Type)))
			return
		}
		a.CreditLimit = limit
	}
	if a.Type != aigrid.Postpaid {
		a.CreditLimit = 0
	}
	if a.Tariff != "" && !s.tariffExists(r, a.Tariff) {
		writeError(w, r, aigrid.ParamErrorf("tariff", "there is no tariff %q (aigrid tariff list)", a.Tariff))
		return
	}
	if a.Limits.RPM < 0 || a.Limits.TPM < 0 || a.Limits.TokensPerDay < 0 || a.Limits.TokensPerMonth < 0 {
		writeError(w, r, aigrid.ParamErrorf("limits", "limits must not be negative"))
		return
	}
	if err := s.cfg.Store.PutAccount(r.Context(), a); err != nil {
		writeError(w, r, err)
		return
	}
	if err := m.Refresh(r.Context(), t.ID); err != nil {
		writeError(w, r, err)
		return
	}
	logger(w).Info("account set", "tenant", t.Name, "type", a.Type, "tariff", a.Tariff, "actor", adminActor(r))
	s.writeBalance(w, r, t)
}

// accountTypeText says what type an account is, for a message.
func accountTypeText(t aigrid.AccountType) string {
	if t == "" {
		return "has no type"
	}
	return "is " + string(t)
}

func (s *Server) tariffExists(r *http.Request, name string) bool {
	ts, err := s.cfg.Store.ListTariffs(r.Context())
	if err != nil {
		return false
	}
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}

// creditRequest is a top-up (with the payment's reference) or an
// adjustment (with its reason, and a reference when the caller wants it
// recorded once however often it is sent).
type creditRequest struct {
	Amount    money  `json:"amount"`
	Reference string `json:"reference"`
	Reason    string `json:"reason"`
}

type creditResponse struct {
	Object    string `json:"object"`
	Currency  string `json:"currency"`
	Amount    string `json:"amount"`
	Balance   string `json:"balance"`
	Reference string `json:"reference,omitempty"`
	// Repeated: the reference was recorded before, and this request changed nothing.
	Repeated bool `json:"repeated,omitempty"`
}

func (s *Server) adjust(w http.ResponseWriter, r *http.Request) {
	s.credit(w, r, "adjustment", func(m *meter.Meter, t *aigrid.Tenant, amount aigrid.Money, req *creditRequest) (meter.Credited, error) {
		return m.Adjust(r.Context(), t.ID, amount, req.Reason, req.Reference, adminActor(r))
	})
}

func (s *Server) topUp(w http.ResponseWriter, r *http.Request) {
	s.credit(w, r, "topup", func(m *meter.Meter, t *aigrid.Tenant, amount aigrid.Money, req *creditRequest) (meter.Credited, error) {
		return m.TopUp(r.Context(), t.ID, amount, req.Reference, adminActor(r))
	})
}

// credit reads a credit request for the tenant in the path, records it with
// record, and answers with the new balance: 201 when it was recorded, 200
// when its reference was recorded before. The reference may come as the
// Idempotency-Key header, which HTTP clients set for retried POSTs; one given
// in both places must be the same.
func (s *Server) credit(w http.ResponseWriter, r *http.Request, kind string,
	record func(*meter.Meter, *aigrid.Tenant, aigrid.Money, *creditRequest) (meter.Credited, error)) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	var req creditRequest
	if !s.decodeAdmin(w, r, &req) {
		return
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if req.Reference != "" && req.Reference != key {
			writeError(w, r, aigrid.ParamErrorf("reference", "the reference %q and the Idempotency-Key header %q differ; give one, or the same in both", req.Reference, key))
			return
		}
		req.Reference = key
	}
	t := s.tenantFor(w, r)
	if t == nil {
		return
	}
	amount, err := s.parseAmount(m, "amount", req.Amount)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c, err := record(m, t, amount, &req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	logger(w).Info(kind, "tenant", t.Name, "amount", amount, "reference", req.Reference, "reason", req.Reason,
		"repeated", c.Repeated, "actor", adminActor(r))
	cur := m.Currency()
	status := http.StatusCreated
	if c.Repeated {
		status = http.StatusOK
	}
	writeJSON(w, status, creditResponse{Object: kind, Currency: cur.Code, Amount: cur.Decimal(amount), Balance: cur.Decimal(c.Balance),
		Reference: req.Reference, Repeated: c.Repeated})
}

func (s *Server) tenantUsage(w http.ResponseWriter, r *http.Request) {
	if t := s.tenantFor(w, r); t != nil {
		s.writeUsage(w, r, t)
	}
}

func (s *Server) tenantStatement(w http.ResponseWriter, r *http.Request) {
	if t := s.tenantFor(w, r); t != nil {
		s.writeStatement(w, r, t, true)
	}
}

type mintRequest struct {
	Count int   `json:"count"`
	Value money `json:"value"`
	// Expires is the last day a voucher may be redeemed (to its end, in the
	// grid's time zone), or an RFC 3339 time.
	Expires string `json:"expires"`
}

type mintResponse struct {
	Object   string     `json:"object"`
	Batch    string     `json:"batch"`
	Currency string     `json:"currency"`
	Value    string     `json:"value"`
	Expires  *time.Time `json:"expires,omitempty"`
	// Codes are shown this once: the grid keeps only their hashes.
	Codes []string `json:"codes"`
}

func (s *Server) mintVouchers(w http.ResponseWriter, r *http.Request) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	var req mintRequest
	if !s.decodeAdmin(w, r, &req) {
		return
	}
	value, err := s.parseAmount(m, "value", req.Value)
	if err != nil {
		writeError(w, r, err)
		return
	}
	var expires *time.Time
	if req.Expires != "" {
		e, err := parseWhen(req.Expires, m.Location())
		if err != nil {
			writeError(w, r, aigrid.ParamErrorf("expires", "expires: %v", err))
			return
		}
		if len(req.Expires) == len(time.DateOnly) {
			e = e.AddDate(0, 0, 1).Add(-time.Second)
		}
		expires = &e
	}
	batch, codes, err := m.MintVouchers(r.Context(), req.Count, value, expires, adminActor(r))
	if err != nil {
		writeError(w, r, err)
		return
	}
	logger(w).Info("vouchers minted", "batch", batch, "count", len(codes), "value", value, "actor", adminActor(r))
	cur := m.Currency()
	writeJSON(w, http.StatusCreated, mintResponse{Object: "voucher.batch", Batch: batch, Currency: cur.Code,
		Value: cur.Decimal(value), Expires: expires, Codes: codes})
}

// voucherSum is how many vouchers, and their value.
type voucherSum struct {
	Count int64  `json:"count"`
	Value string `json:"value"`
}

// voucherBatch is one batch, its vouchers counted by state: each is in one
// of redeemed, voided, expired (unredeemed) and outstanding (redeemable).
type voucherBatch struct {
	Batch    string     `json:"batch"`
	MintedAt time.Time  `json:"minted_at"`
	Expires  *time.Time `json:"expires,omitempty"`
	// Value is each voucher's.
	Value string `json:"value"`
	voucherStates
}

type voucherStates struct {
	Minted      voucherSum `json:"minted"`
	Redeemed    voucherSum `json:"redeemed"`
	Voided      voucherSum `json:"voided"`
	Expired     voucherSum `json:"expired"`
	Outstanding voucherSum `json:"outstanding"`
}

type voucherList struct {
	Object   string         `json:"object"`
	Currency string         `json:"currency"`
	Data     []voucherBatch `json:"data"`
	Totals   voucherStates  `json:"totals"`
}

// listVouchers lists the batches, newest first, with their vouchers
// counted by state now, and the totals.
func (s *Server) listVouchers(w http.ResponseWriter, r *http.Request) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	batches, err := m.VoucherBatches(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	cur := m.Currency()
	text := func(v aigrid.VoucherSum) voucherSum { return voucherSum{Count: v.Count, Value: cur.Decimal(v.Value)} }
	states := func(b *aigrid.VoucherBatch) voucherStates {
		return voucherStates{Minted: text(b.Minted), Redeemed: text(b.Redeemed), Voided: text(b.Voided), Expired: text(b.Expired), Outstanding: text(b.Outstanding)}
	}
	out := voucherList{Object: "list", Currency: cur.Code, Data: []voucherBatch{}}
	var totals aigrid.VoucherBatch
	for i := range batches {
		b := &batches[i]
		out.Data = append(out.Data, voucherBatch{Batch: b.Batch, MintedAt: b.MintedAt, Expires: b.ExpiresAt, Value: cur.Decimal(b.Value), voucherStates: states(b)})
		totals.AddStates(b)
	}
	out.Totals = states(&totals)
	writeJSON(w, http.StatusOK, out)
}

type voidRequest struct {
	Batch  string `json:"batch"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// voidResponse says what a void did; voided 0 when nothing was left to
// void, and the already_ counts say why.
type voidResponse struct {
	Object          string `json:"object"`
	Batch           string `json:"batch"`
	Currency        string `json:"currency"`
	Voided          int64  `json:"voided"`
	Value           string `json:"value"`
	AlreadyRedeemed int64  `json:"already_redeemed"`
	AlreadyVoided   int64  `json:"already_voided"`
}

// voidVouchers cancels a batch's vouchers, or one code, that are neither
// redeemed nor voided. A void that finds nothing left changes nothing and
// answers 200 with voided 0, so that a void sent again is harmless.
func (s *Server) voidVouchers(w http.ResponseWriter, r *http.Request) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	var req voidRequest
	if !s.decodeAdmin(w, r, &req) {
		return
	}
	v, err := m.VoidVouchers(r.Context(), req.Batch, req.Code, req.Reason, adminActor(r))
	if err != nil {
		writeError(w, r, err)
		return
	}
	logger(w).Info("vouchers voided", "batch", v.Batch, "count", v.Voided.Count, "value", v.Voided.Value, "reason", req.Reason, "actor", adminActor(r))
	cur := m.Currency()
	writeJSON(w, http.StatusOK, voidResponse{Object: "voucher.void", Batch: v.Batch, Currency: cur.Code, Voided: v.Voided.Count,
		Value: cur.Decimal(v.Voided.Value), AlreadyRedeemed: v.Redeemed, AlreadyVoided: v.AlreadyVoided})
}

// revenueLine is what one provider's offers earned and cost.
type revenueLine struct {
	aigrid.RevenueLine
	RevenueText string `json:"revenue_amount"`
	CostText    string `json:"cost_amount"`
	MarginText  string `json:"margin_amount"`
}

type revenueReport struct {
	Object   string        `json:"object"`
	Currency string        `json:"currency"`
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Data     []revenueLine `json:"data"`
	Revenue  string        `json:"revenue"`
	Cost     string        `json:"cost"`
	Margin   string        `json:"margin"`
}

// revenue reports, by provider, what tenants paid against what the offers
// cost: the operator's margin. The period defaults to the current month.
func (s *Server) revenue(w http.ResponseWriter, r *http.Request) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	from, to, err := period(r, m.Location())
	if err != nil {
		writeError(w, r, err)
		return
	}
	lines, err := s.cfg.Store.Revenue(r.Context(), from, to)
	if err != nil {
		writeError(w, r, err)
		return
	}
	cur := m.Currency()
	rep := revenueReport{Object: "revenue", Currency: cur.Code, From: from, To: to, Data: []revenueLine{}}
	var rev, cost aigrid.Money
	for _, l := range lines {
		rep.Data = append(rep.Data, revenueLine{RevenueLine: l, RevenueText: cur.Decimal(l.Revenue), CostText: cur.Decimal(l.Cost), MarginText: cur.Decimal(l.Margin)})
		rev += l.Revenue
		cost += l.Cost
	}
	rep.Revenue, rep.Cost, rep.Margin = cur.Decimal(rev), cur.Decimal(cost), cur.Decimal(rev-cost)
	writeJSON(w, http.StatusOK, rep)
}

// unpaidAccount is a postpaid tenant that owes the operator.
type unpaidAccount struct {
	Tenant      string `json:"tenant"`
	Owed        string `json:"owed"`
	CreditLimit string `json:"credit_limit"`
	// Used is the share of the credit limit used, in percent.
	Used int64 `json:"credit_used_percent"`
}

func (s *Server) unpaid(w http.ResponseWriter, r *http.Request) {
	m := s.billingMeter(w, r)
	if m == nil {
		return
	}
	accts, err := s.cfg.Store.ListAccounts(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	cur := m.Currency()
	out := []unpaidAccount{}
	for _, a := range accts {
		if a.Type != aigrid.Postpaid {
			continue
		}
		bal, err := s.cfg.Store.AccountBalance(r.Context(), aigrid.TenantAccount(a.TenantID), time.Time{})
		if err != nil {
			writeError(w, r, err)
			return
		}
		if bal >= 0 {
			continue
		}
		t, err := s.cfg.Store.FindTenantByID(r.Context(), a.TenantID)
		if err != nil {
			writeError(w, r, err)
			return
		}
		u := unpaidAccount{Tenant: t.Name, Owed: cur.Decimal(-bal), CreditLimit: cur.Decimal(a.CreditLimit)}
		if a.CreditLimit > 0 {
			u.Used = int64(-bal) * 100 / int64(a.CreditLimit)
		}
		out = append(out, u)
	}
	writeJSON(w, http.StatusOK, list[unpaidAccount]{Object: "list", Data: out})
}

type ledgerCheck struct {
	Balanced   bool     `json:"balanced"`
	Unbalanced []string `json:"unbalanced"`
}

func (s *Server) checkLedger(w http.ResponseWriter, r *http.Request) {
	bad, err := s.cfg.Store.CheckLedger(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if bad == nil {
		bad = []string{}
	}
	writeJSON(w, http.StatusOK, ledgerCheck{Balanced: len(bad) == 0, Unbalanced: bad})
}
