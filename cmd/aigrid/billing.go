package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"aigrid"
)

func runVoucher(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand("voucher", args, "mint|list|void")
	if err != nil {
		return err
	}
	switch verb {
	case "mint":
		return runVoucherMint(ctx, args, stdout)
	case "list":
		return runVoucherList(ctx, args, stdout)
	case "void":
		return runVoucherVoid(ctx, args, stdout)
	}
	return fmt.Errorf("unknown command \"voucher %s\": use mint, list or void", verb)
}

func runVoucherMint(ctx context.Context, args []string, stdout io.Writer) error {
	var count int
	var value, expires, csvPath string
	const usage = "aigrid voucher mint --count N --value V [--expires DATE] [--csv FILE]"
	c, pos, err := adminFlags("voucher mint", usage, args, stdout, func(fs *flag.FlagSet) {
		fs.IntVar(&count, "count", 0, "how many vouchers to mint (1 to 100000)")
		fs.StringVar(&value, "value", "", "each voucher's value, in major units of the grid's currency (e.g. 100 or 12.50)")
		fs.StringVar(&expires, "expires", "", "last day a voucher may be redeemed (YYYY-MM-DD, to its end in the grid's time zone), or an RFC 3339 time")
		fs.StringVar(&csvPath, "csv", "", "also write code,value,currency,expires,batch rows to this file (for printing)")
	})
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, usage); err != nil {
		return err
	}
	if count < 1 || value == "" {
		return fmt.Errorf("usage: %s", usage)
	}
	// The codes are shown once: the CSV file is made before anything is
	// minted, so that a name already taken mints nothing.
	var csvFile *os.File
	if csvPath != "" {
		if csvFile, err = os.OpenFile(csvPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s exists: name a new file with --csv, it is never overwritten; nothing was minted", csvPath)
			}
			return fmt.Errorf("nothing was minted: %v", err)
		}
	}
	req := map[string]any{"count": count, "value": value, "expires": expires}
	var out struct {
		Batch, Currency, Value string
		Expires                *time.Time
		Codes                  []string
	}
	raw, err := c.call(ctx, "POST", "/admin/v1/vouchers", req, &out)
	if err != nil {
		if csvFile != nil {
			csvFile.Close()
			os.Remove(csvPath)
		}
		return err
	}
	var csvErr error
	if csvFile != nil {
		csvErr = writeVoucherCSV(csvFile, out.Codes, out.Value, out.Currency, out.Expires, out.Batch)
	}
	if c.json {
		err = c.printJSON(raw)
	} else {
		for _, code := range out.Codes {
			fmt.Fprintln(stdout, code)
		}
	}
	if csvErr != nil {
		return fmt.Errorf("the vouchers were minted (batch %s) but the CSV could not be written: %v; the codes are printed above, and only there", out.Batch, csvErr)
	}
	return err
}

// voucherSum is how many vouchers, and their value, as the server sends them.
type voucherSum struct {
	Count int64
	Value string
}

func (v voucherSum) String() string { return strconv.FormatInt(v.Count, 10) + " (" + v.Value + ")" }

type voucherStates struct {
	Minted, Redeemed, Voided, Expired, Outstanding voucherSum
}

func (v voucherStates) cells() []string {
	return []string{v.Minted.String(), v.Redeemed.String(), v.Voided.String(), v.Expired.String(), v.Outstanding.String()}
}

func runVoucherList(ctx context.Context, args []string, stdout io.Writer) error {
	const usage = "aigrid voucher list"
	c, pos, err := adminFlags("voucher list", usage, args, stdout, nil)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, usage); err != nil {
		return err
	}
	var list struct {
		Currency string
		Data     []struct {
			Batch    string
			MintedAt time.Time `json:"minted_at"`
			Expires  *time.Time
			Value    string
			voucherStates
		}
		Totals voucherStates
	}
	raw, err := c.call(ctx, "GET", "/admin/v1/vouchers", nil, &list)
	if err != nil || c.json {
		return jsonOr(c, raw, err)
	}
	rows := make([][]string, 0, len(list.Data)+1)
	for _, b := range list.Data {
		rows = append(rows, append([]string{b.Batch, formatTime(&b.MintedAt), formatTime(b.Expires), b.Value}, b.cells()...))
	}
	rows = append(rows, append([]string{"total", "", "", ""}, list.Totals.cells()...))
	return c.table("BATCH\tMINTED (UTC)\tEXPIRES (UTC)\tEACH "+list.Currency+"\tMINTED\tREDEEMED\tVOIDED\tEXPIRED\tOUTSTANDING", rows)
}

func runVoucherVoid(ctx context.Context, args []string, stdout io.Writer) error {
	var batch, code, reason string
	const usage = "aigrid voucher void (--batch BATCH | --code CODE) --reason TEXT"
	c, pos, err := adminFlags("voucher void", usage, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&batch, "batch", "", "void every voucher of this batch that is neither redeemed nor voided")
		fs.StringVar(&code, "code", "", "void this one voucher (its 20 digits)")
		fs.StringVar(&reason, "reason", "", "why: kept in the ledger for audit")
	})
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, usage); err != nil {
		return err
	}
	var out struct {
		Batch, Currency, Value string
		Voided                 int64
		AlreadyRedeemed        int64 `json:"already_redeemed"`
		AlreadyVoided          int64 `json:"already_voided"`
	}
	raw, err := c.call(ctx, "POST", "/admin/v1/vouchers/void", map[string]string{"batch": batch, "code": code, "reason": reason}, &out)
	if err != nil || c.json {
		return jsonOr(c, raw, err)
	}
	before := fmt.Sprintf("%d already redeemed, %d already voided", out.AlreadyRedeemed, out.AlreadyVoided)
	if out.Voided == 0 {
		fmt.Fprintf(stdout, "nothing left to void in %s (%s): nothing changed\n", out.Batch, before)
		return nil
	}
	noun := "vouchers"
	if out.Voided == 1 {
		noun = "voucher"
	}
	fmt.Fprintf(stdout, "voided %d %s of %s, worth %s %s (%s)\n", out.Voided, noun, out.Batch, out.Value, out.Currency, before)
	return nil
}

// writeVoucherCSV writes a minted batch's codes to f and closes it.
func writeVoucherCSV(f *os.File, codes []string, value, currency string, expires *time.Time, batch string) error {
	w := csv.NewWriter(f)
	w.Write([]string{"code", "value", "currency", "expires", "batch"})
	exp := ""
	if expires != nil {
		exp = expires.Format(time.DateOnly)
	}
	for _, code := range codes {
		w.Write([]string{code, value, currency, exp, batch})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runAccount(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand("account", args, "show|set|topup|adjust|usage|statement|unpaid")
	if err != nil {
		return err
	}
	switch verb {
	case "show":
		const usage = "aigrid account show TENANT"
		c, pos, err := adminFlags("account show", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		return c.showBalance(ctx, "GET", "/admin/v1/tenants/"+url.PathEscape(pos[0])+"/account", nil)
	case "set":
		var typ, credit, tariff string
		var l aigrid.Limits
		const usage = "aigrid account set TENANT [--type prepaid|postpaid] [--credit-limit AMOUNT] [--tariff NAME] [--rpm N] [--tpm N] [--tokens-per-day N] [--tokens-per-month N]"
		c, pos, err := adminFlags("account set", usage, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&typ, "type", "", "prepaid (spends a balance) or postpaid (billed, up to a credit limit)")
			fs.StringVar(&credit, "credit-limit", "", "how far a postpaid balance may go below zero, in major units")
			fs.StringVar(&tariff, "tariff", "", "the tariff that prices the tenant's usage")
			fs.Int64Var(&l.RPM, "rpm", 0, "requests per minute (0: no limit)")
			fs.Int64Var(&l.TPM, "tpm", 0, "tokens per minute (0: no limit)")
			fs.Int64Var(&l.TokensPerDay, "tokens-per-day", 0, "tokens per day (0: no limit)")
			fs.Int64Var(&l.TokensPerMonth, "tokens-per-month", 0, "tokens per calendar month (0: no limit)")
		})
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		// Only what the flags name changes; the rest of the account stays.
		body := map[string]any{}
		given := map[string]bool{}
		c.flags.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if given["type"] {
			body["type"] = typ
		}
		if given["tariff"] {
			body["tariff"] = tariff
		}
		if given["credit-limit"] {
			body["credit_limit"] = credit
		}
		if given["rpm"] || given["tpm"] || given["tokens-per-day"] || given["tokens-per-month"] {
			body["limits"] = l
		}
		return c.showBalance(ctx, "PUT", "/admin/v1/tenants/"+url.PathEscape(pos[0])+"/account", body)
	case "topup", "adjust":
		var reference, reason string
		usage := "aigrid account topup TENANT AMOUNT --reference RECEIPT"
		if verb == "adjust" {
			usage = "aigrid account adjust TENANT AMOUNT --reason TEXT [--reference REF]   (a negative AMOUNT debits)"
		}
		c, pos, err := adminFlags("account "+verb, usage, args, stdout, func(fs *flag.FlagSet) {
			if verb == "adjust" {
				fs.StringVar(&reason, "reason", "", "why: kept in the ledger for audit")
				fs.StringVar(&reference, "reference", "", "optional: an adjustment is then recorded once per reference, however often it is sent")
			} else {
				fs.StringVar(&reference, "reference", "", "the payment's reference (receipt, mobile-money transaction): a top-up is recorded once per reference")
			}
		})
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 2, usage); err != nil {
			return err
		}
		path, body := "/topups", map[string]any{"amount": pos[1], "reference": reference}
		if verb == "adjust" {
			path, body = "/adjustments", map[string]any{"amount": pos[1], "reason": reason, "reference": reference}
		}
		var out struct {
			Currency, Amount, Balance string
			Repeated                  bool
		}
		raw, err := c.call(ctx, "POST", "/admin/v1/tenants/"+url.PathEscape(pos[0])+path, body, &out)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		if out.Repeated {
			fmt.Fprintf(stdout, "%s %s %s was recorded before with the reference %s: nothing changed; balance %s %s\n",
				verb, out.Amount, out.Currency, reference, out.Balance, out.Currency)
			return nil
		}
		fmt.Fprintf(stdout, "%s %s %s; balance now %s %s\n", verb, out.Amount, out.Currency, out.Balance, out.Currency)
		return nil
	case "usage":
		var from, to string
		const usage = "aigrid account usage TENANT [--from DATE] [--to DATE]"
		c, pos, err := adminFlags("account usage", usage, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "first day (YYYY-MM-DD, the grid's time zone) or RFC 3339 time; default: start of this month")
			fs.StringVar(&to, "to", "", "end (exclusive); default: now")
		})
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		q := periodQuery(from, to)
		var page struct {
			Currency string
			Data     []struct {
				ID               string    `json:"id"`
				Created          time.Time `json:"created"`
				Service          string    `json:"service_model"`
				PromptTokens     int64     `json:"prompt_tokens"`
				CompletionTokens int64     `json:"completion_tokens"`
				Price            string    `json:"price"`
				Estimated        bool      `json:"estimated"`
			}
			Totals struct {
				Calls int
				Price string
			}
		}
		raw, err := c.call(ctx, "GET", "/admin/v1/tenants/"+url.PathEscape(pos[0])+"/usage?"+q.Encode(), nil, &page)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		rows := make([][]string, 0, len(page.Data)+1)
		for _, u := range page.Data {
			id := u.ID
			if u.Estimated {
				id += " (estimated)"
			}
			rows = append(rows, []string{u.Created.Format(time.DateTime), id, u.Service, strconv.FormatInt(u.PromptTokens, 10), strconv.FormatInt(u.CompletionTokens, 10), u.Price})
		}
		rows = append(rows, []string{"total", strconv.Itoa(page.Totals.Calls) + " calls", "", "", "", page.Totals.Price})
		return c.table("TIME\tCALL\tSERVICE MODEL\tIN\tOUT\tPRICE "+page.Currency, rows)
	case "statement":
		var format string
		const usage = "aigrid account statement TENANT YYYY-MM [--format csv|html|json]"
		c, pos, err := adminFlags("account statement", usage, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&format, "format", "csv", "csv, html or json")
		})
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 2, usage); err != nil {
			return err
		}
		accept := map[string]string{"csv": "text/csv", "html": "text/html", "json": "application/json"}[format]
		if accept == "" {
			return fmt.Errorf("--format must be csv, html or json")
		}
		raw, err := c.send(ctx, "GET", "/admin/v1/tenants/"+url.PathEscape(pos[0])+"/statements/"+url.PathEscape(pos[1]), accept, nil)
		if err != nil {
			return err
		}
		_, err = stdout.Write(raw)
		return err
	case "unpaid":
		const usage = "aigrid account unpaid"
		c, pos, err := adminFlags("account unpaid", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 0, usage); err != nil {
			return err
		}
		var list struct {
			Data []struct {
				Tenant, Owed string
				CreditLimit  string `json:"credit_limit"`
				Used         int64  `json:"credit_used_percent"`
			}
		}
		raw, err := c.call(ctx, "GET", "/admin/v1/accounts/unpaid", nil, &list)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		rows := make([][]string, len(list.Data))
		for i, u := range list.Data {
			rows[i] = []string{u.Tenant, u.Owed, u.CreditLimit, strconv.FormatInt(u.Used, 10) + "%"}
		}
		return c.table("TENANT\tOWED\tCREDIT LIMIT\tUSED", rows)
	}
	return fmt.Errorf("unknown command \"account %s\": use show, set, topup, adjust, usage, statement or unpaid", verb)
}

func (c *adminClient) showBalance(ctx context.Context, method, path string, body any) error {
	var b struct {
		Currency, Balance, Held, Available, Tariff string
		Type                                       string `json:"account_type"`
		CreditLimit                                string `json:"credit_limit"`
		TokensMonth                                int64  `json:"tokens_this_month"`
		TokensDay                                  int64  `json:"tokens_today"`
	}
	raw, err := c.call(ctx, method, path, body, &b)
	if err != nil || c.json {
		return jsonOr(c, raw, err)
	}
	return c.table("TYPE\tTARIFF\tBALANCE\tHELD\tAVAILABLE\tCREDIT LIMIT\tTOKENS THIS MONTH\tTODAY",
		[][]string{{orDash(b.Type), orDash(b.Tariff), b.Balance + " " + b.Currency, b.Held, b.Available, orDash(b.CreditLimit),
			strconv.FormatInt(b.TokensMonth, 10), strconv.FormatInt(b.TokensDay, 10)}})
}

func runTariff(ctx context.Context, args []string, stdout io.Writer) error {
	verb, args, err := subcommand("tariff", args, "list|set")
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		const usage = "aigrid tariff list"
		c, pos, err := adminFlags("tariff list", usage, args, stdout, nil)
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 0, usage); err != nil {
			return err
		}
		var list struct{ Data []aigrid.Tariff }
		raw, err := c.call(ctx, "GET", "/admin/v1/tariffs", nil, &list)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		var rows [][]string
		for _, t := range list.Data {
			rows = append(rows, []string{t.Name, t.Effective.Format(time.DateOnly), blocksText(t.Blocks), offPeakText(t.OffPeak)})
		}
		return c.table("NAME\tEFFECTIVE\tBLOCKS (up_to:input/output per 1M tokens)\tOFF PEAK", rows)
	case "set":
		var blocks, offPeak, effective string
		const usage = `aigrid tariff set NAME --blocks "200000:0/0,5000000:20/60,:30/90" [--off-peak 22:00-06:00x0.5] [--effective YYYY-MM-DD]`
		c, pos, err := adminFlags("tariff set", usage, args, stdout, func(fs *flag.FlagSet) {
			fs.StringVar(&blocks, "blocks", "", "blocks as UP_TO:INPUT/OUTPUT, comma-separated; the last has no UP_TO")
			fs.StringVar(&offPeak, "off-peak", "", "off-peak window and factor, as FROM-TOxFACTOR")
			fs.StringVar(&effective, "effective", "", "first day the version applies (default: now)")
		})
		if err != nil {
			return err
		}
		if err := wantArgs(pos, 1, usage); err != nil {
			return err
		}
		t, err := parseTariffFlags(pos[0], blocks, offPeak)
		if err != nil {
			return err
		}
		// The server reads the day in the grid's time zone.
		body := map[string]any{"blocks": t.Blocks, "off_peak": t.OffPeak, "effective": effective}
		var out aigrid.Tariff
		raw, err := c.call(ctx, "PUT", "/admin/v1/tariffs/"+url.PathEscape(pos[0]), body, &out)
		if err != nil || c.json {
			return jsonOr(c, raw, err)
		}
		return c.table("NAME\tEFFECTIVE\tBLOCKS\tOFF PEAK", [][]string{{out.Name, out.Effective.Format(time.DateOnly), blocksText(out.Blocks), offPeakText(out.OffPeak)}})
	}
	return fmt.Errorf("unknown command \"tariff %s\": use list or set", verb)
}

// parseTariffFlags reads the compact tariff syntax of aigrid tariff set.
func parseTariffFlags(name, blocks, offPeak string) (*aigrid.Tariff, error) {
	t := &aigrid.Tariff{Name: name}
	if blocks == "" {
		return nil, fmt.Errorf("--blocks is required, e.g. \"200000:0/0,5000000:20/60,:30/90\"")
	}
	for i, b := range strings.Split(blocks, ",") {
		upTo, rates, ok := strings.Cut(strings.TrimSpace(b), ":")
		in, out, ok2 := strings.Cut(rates, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("block %d %q: write UP_TO:INPUT/OUTPUT, like 200000:0/0", i+1, b)
		}
		var blk aigrid.Block
		var err error
		if upTo != "" {
			if blk.UpTo, err = strconv.ParseInt(upTo, 10, 64); err != nil {
				return nil, fmt.Errorf("block %d: up_to %q is not a whole number of tokens", i+1, upTo)
			}
		}
		if blk.Input, err = aigrid.ParseRate(in); err != nil {
			return nil, fmt.Errorf("block %d: input: %v", i+1, err)
		}
		if blk.Output, err = aigrid.ParseRate(out); err != nil {
			return nil, fmt.Errorf("block %d: output: %v", i+1, err)
		}
		t.Blocks = append(t.Blocks, blk)
	}
	if offPeak != "" {
		window, factor, ok := strings.Cut(offPeak, "x")
		from, to, ok2 := strings.Cut(window, "-")
		if !ok || !ok2 {
			return nil, fmt.Errorf("--off-peak %q: write FROM-TOxFACTOR, like 22:00-06:00x0.5", offPeak)
		}
		tou, err := aigrid.ParseTimeOfUse(from, to, factor)
		if err != nil {
			return nil, err
		}
		t.OffPeak = &tou
	}
	return t, t.Validate()
}

func blocksText(bs []aigrid.Block) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		upTo := ""
		if b.UpTo > 0 {
			upTo = strconv.FormatInt(b.UpTo, 10)
		}
		parts[i] = upTo + ":" + b.Input.String() + "/" + b.Output.String()
	}
	return strings.Join(parts, ",")
}

func offPeakText(o *aigrid.TimeOfUse) string {
	if o == nil {
		return "-"
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02dx%s", o.From/60, o.From%60, o.To/60, o.To%60, strconv.FormatFloat(float64(o.Factor)/1000, 'f', -1, 64))
}

func runRevenue(ctx context.Context, args []string, stdout io.Writer) error {
	var from, to string
	const usage = "aigrid revenue [--from DATE] [--to DATE]"
	c, pos, err := adminFlags("revenue", usage, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "first day (YYYY-MM-DD) or RFC 3339 time; default: start of this month")
		fs.StringVar(&to, "to", "", "end (exclusive); default: now")
	})
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, usage); err != nil {
		return err
	}
	q := periodQuery(from, to)
	var rep struct {
		Currency, Revenue, Cost, Margin string
		Data                            []struct {
			Provider string
			Calls    int64
			Tokens   int64
			Revenue  string `json:"revenue_amount"`
			Cost     string `json:"cost_amount"`
			Margin   string `json:"margin_amount"`
		}
	}
	raw, err := c.call(ctx, "GET", "/admin/v1/revenue?"+q.Encode(), nil, &rep)
	if err != nil || c.json {
		return jsonOr(c, raw, err)
	}
	rows := make([][]string, 0, len(rep.Data)+1)
	for _, l := range rep.Data {
		rows = append(rows, []string{l.Provider, strconv.FormatInt(l.Calls, 10), strconv.FormatInt(l.Tokens, 10), l.Revenue, l.Cost, l.Margin})
	}
	rows = append(rows, []string{"total", "", "", rep.Revenue, rep.Cost, rep.Margin})
	return c.table("PROVIDER\tCALLS\tTOKENS\tREVENUE "+rep.Currency+"\tCOST\tMARGIN", rows)
}

// periodQuery is the from and to of a usage or revenue query; empty ones are
// left to the server's defaults.
func periodQuery(from, to string) url.Values {
	q := url.Values{}
	if from != "" {
		q.Set("from", from)
	}
	if to != "" {
		q.Set("to", to)
	}
	return q
}
