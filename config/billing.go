package config

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"aigrid"
)

// Tariff is a tariff as the file writes it.
type Tariff struct {
	Name string `yaml:"name"`
	// Effective is the day this version applies from (in the grid's time
	// zone); empty means from when the file is first applied with it.
	Effective string   `yaml:"effective"`
	Blocks    []Block  `yaml:"blocks"`
	OffPeak   *OffPeak `yaml:"off_peak"`
}

// Block is one block of a tariff; the last has no up_to.
type Block struct {
	UpTo   int64 `yaml:"up_to"`
	Input  Rate  `yaml:"input"`
	Output Rate  `yaml:"output"`
}

// OffPeak is a time-of-use window: {from: "22:00", to: "06:00", factor: 0.5}.
type OffPeak struct {
	From   string `yaml:"from"`
	To     string `yaml:"to"`
	Factor Text   `yaml:"factor"`
}

// Text is a scalar kept as written, so that numbers are read exactly.
type Text string

// UnmarshalYAML keeps the scalar's text.
func (t *Text) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a number", n.Line)
	}
	*t = Text(n.Value)
	return nil
}

// Account is how a tenant pays: {type: prepaid, balance: 100} or
// {type: postpaid, credit_limit: 500}, amounts in major units.
type Account struct {
	Type string `yaml:"type"`
	// Balance is an opening credit, written to the ledger once: applying the
	// file again, or with another figure, adds nothing (use top-ups).
	Balance     Text `yaml:"balance"`
	CreditLimit Text `yaml:"credit_limit"`
}

// Limits are a tenant's rate limits and quotas.
type Limits struct {
	RPM            int64 `yaml:"rpm"`
	TPM            int64 `yaml:"tpm"`
	TokensPerDay   int64 `yaml:"tokens_per_day"`
	TokensPerMonth int64 `yaml:"tokens_per_month"`
}

func (l *Limits) limits() aigrid.Limits {
	if l == nil {
		return aigrid.Limits{}
	}
	return aigrid.Limits{RPM: l.RPM, TPM: l.TPM, TokensPerDay: l.TokensPerDay, TokensPerMonth: l.TokensPerMonth}
}

// CurrencyInfo returns the grid's currency (USD when the file names none).
func (f *File) CurrencyInfo() (aigrid.Currency, error) {
	code := f.Currency
	if code == "" {
		code = "USD"
	}
	return aigrid.LookupCurrency(code)
}

// Location returns the grid's time zone (UTC when the file names none).
func (f *File) Location() (*time.Location, error) {
	if f.Timezone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(f.Timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone %q is not a time zone name such as Africa/Nairobi", f.Timezone)
	}
	return loc, nil
}

// tariff converts a tariff of the file; effective is zero when unset.
func (t *Tariff) tariff(loc *time.Location) (*aigrid.Tariff, error) {
	out := &aigrid.Tariff{Name: t.Name}
	if t.Effective != "" {
		e, err := time.ParseInLocation(time.DateOnly, t.Effective, loc)
		if err != nil {
			return nil, fmt.Errorf("effective %q is not a date such as 2026-12-01", t.Effective)
		}
		out.Effective = e
	}
	for _, b := range t.Blocks {
		out.Blocks = append(out.Blocks, aigrid.Block{UpTo: b.UpTo, Input: aigrid.Rate(b.Input), Output: aigrid.Rate(b.Output)})
	}
	if o := t.OffPeak; o != nil {
		tou, err := aigrid.ParseTimeOfUse(o.From, o.To, string(o.Factor))
		if err != nil {
			return nil, err
		}
		out.OffPeak = &tou
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// checkBilling checks the currency, time zone, tariffs and tenants' accounts.
func (f *File) checkBilling(add func(line int, path, format string, args ...any), at func(path ...any) int) {
	cur, err := f.CurrencyInfo()
	if err != nil {
		add(at("currency"), "currency", "%s", aigrid.ErrorMessage(err))
	}
	loc, err := f.Location()
	if err != nil {
		add(at("timezone"), "timezone", "%q is not a time zone name such as Africa/Nairobi", f.Timezone)
		loc = time.UTC
	}
	tariffs := map[string]bool{}
	for i := range f.Tariffs {
		t := &f.Tariffs[i]
		path := fmt.Sprintf("tariffs[%d]", i)
		if _, err := t.tariff(loc); err != nil {
			add(at("tariffs", i), path, "%s", aigrid.ErrorMessage(err))
		}
		if tariffs[t.Name+"@"+t.Effective] {
			add(at("tariffs", i, "name"), path+".name", "tariff %q is listed twice with the same effective date", t.Name)
		}
		tariffs[t.Name+"@"+t.Effective] = true
		tariffs[t.Name] = true
	}
	for i := range f.Tenants {
		ft := &f.Tenants[i]
		path := fmt.Sprintf("tenants[%d]", i)
		if ft.Tariff != "" && !tariffs[ft.Tariff] {
			add(at("tenants", i, "tariff"), path+".tariff", "no tariff %q in this file", ft.Tariff)
		}
		if l := ft.Limits; l != nil && (l.RPM < 0 || l.TPM < 0 || l.TokensPerDay < 0 || l.TokensPerMonth < 0) {
			add(at("tenants", i, "limits"), path+".limits", "limits must not be negative")
		}
		if a := ft.Account; a != nil {
			switch aigrid.AccountType(a.Type) {
			case aigrid.Prepaid:
				if a.CreditLimit != "" {
					add(at("tenants", i, "account"), path+".account", "a prepaid account has no credit_limit (did you mean postpaid?)")
				}
			case aigrid.Postpaid:
			case "":
				add(at("tenants", i, "account"), path+".account", "type is required: prepaid or postpaid")
			default:
				add(at("tenants", i, "account", "type"), path+".account.type", "%q is not prepaid or postpaid", a.Type)
			}
			for name, v := range map[string]Text{"balance": a.Balance, "credit_limit": a.CreditLimit} {
				if v == "" || cur.Code == "" {
					continue
				}
				if m, err := cur.ParseMoney(string(v)); err != nil || m < 0 {
					add(at("tenants", i, "account", name), path+".account."+name, "%q is not an amount in %s (at most %d decimals, not negative)", v, cur.Code, cur.Exponent)
				}
			}
		}
	}
}

// applyBilling writes tariffs and tenants' accounts. A tariff whose rates
// match no stored version gets a new version from its effective date (or
// from now), so that usage already priced keeps its price.
func (f *File) applyBilling(ctx context.Context, store aigrid.Store, tenants map[string]*aigrid.Tenant, res *Result) error {
	cur, err := f.CurrencyInfo()
	if err != nil {
		return err
	}
	loc, err := f.Location()
	if err != nil {
		return err
	}
	stored, err := store.ListTariffs(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for i := range f.Tariffs {
		t, err := f.Tariffs[i].tariff(loc)
		if err != nil {
			return err
		}
		var versions []*aigrid.Tariff
		for _, s := range stored {
			if s.Name == t.Name {
				versions = append(versions, s)
			}
		}
		// A version with these rates is stored already: either this file was
		// applied before, or the operator has since changed the tariff
		// through the admin API, which a restart must not undo.
		if slices.ContainsFunc(versions, func(v *aigrid.Tariff) bool {
			return sameRates(v, t) && (t.Effective.IsZero() || v.Effective.Equal(t.Effective))
		}) {
			continue
		}
		if t.Effective.IsZero() {
			t.Effective = now
		}
		if err := store.PutTariff(ctx, t); err != nil {
			return err
		}
		res.Tariffs++
	}
	for i := range f.Tenants {
		ft := &f.Tenants[i]
		if ft.Tariff == "" && ft.Account == nil && ft.Limits == nil {
			continue
		}
		t := tenants[ft.Name]
		a, err := store.GetAccount(ctx, t.ID)
		if aigrid.ErrorCode(err) == aigrid.ENotFound {
			a, err = &aigrid.Account{TenantID: t.ID}, nil
		}
		if err != nil {
			return err
		}
		if ft.Tariff != "" {
			a.Tariff = ft.Tariff
		}
		if ft.Limits != nil {
			a.Limits = ft.Limits.limits()
		}
		if fa := ft.Account; fa != nil {
			a.Type, a.CreditLimit = aigrid.AccountType(fa.Type), 0
			if fa.CreditLimit != "" {
				if a.CreditLimit, err = cur.ParseMoney(string(fa.CreditLimit)); err != nil {
					return err
				}
			}
		}
		if err := store.PutAccount(ctx, a); err != nil {
			return err
		}
		if fa := ft.Account; fa != nil && fa.Balance != "" {
			amount, err := cur.ParseMoney(string(fa.Balance))
			if err != nil {
				return err
			}
			if amount > 0 {
				account := aigrid.TenantAccount(t.ID)
				tx := &aigrid.LedgerTx{Key: "opening:" + t.Name, Kind: aigrid.TxTopUp, TenantID: t.ID, At: now,
					Memo: "opening balance from the config file", Actor: "config",
					Entries: []aigrid.Entry{{Account: account, Amount: amount}, {Account: aigrid.AccountCash, Amount: -amount}}}
				applied, err := store.CommitTxs(ctx, []*aigrid.LedgerTx{tx})
				if err != nil {
					return err
				}
				// The opening balance is credited once; a file that says
				// another amount later changes nothing, and says so.
				if !applied[0] {
					first, err := store.TxByKey(ctx, tx.Key)
					if err != nil {
						return err
					}
					if was := first.Entries[0].Amount; first.Entries[0].Account == account && was != amount {
						res.Warnings = append(res.Warnings, fmt.Sprintf("tenant %s: the opening balance was credited as %s at its first start; the file's %s changes nothing (top up or adjust to change a balance)",
							t.Name, cur.Format(was), cur.Format(amount)))
					}
				}
			}
		}
		res.Accounts++
	}
	return nil
}

// sameRates reports whether two tariff versions price alike.
func sameRates(a, b *aigrid.Tariff) bool {
	if !slices.Equal(a.Blocks, b.Blocks) || (a.OffPeak == nil) != (b.OffPeak == nil) {
		return false
	}
	return a.OffPeak == nil || *a.OffPeak == *b.OffPeak
}
