package aigrid

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Tariff prices a tenant's usage: increasing blocks of cumulative tokens per
// calendar month (a free lifeline block first), and an off-peak factor. A
// tariff has versions: each applies from its Effective date, so that a change
// never reprices what was used before it.
type Tariff struct {
	Name string `json:"name"`
	// Effective is the first day (in the grid's time zone) this version applies.
	Effective time.Time  `json:"effective"`
	Blocks    []Block    `json:"blocks"`
	OffPeak   *TimeOfUse `json:"off_peak,omitempty"`
}

// Block is one block of a tariff: tokens (input and output together) up to
// UpTo in the month are priced at Input and Output per million tokens. The
// last block has UpTo 0: no upper bound.
type Block struct {
	UpTo   int64 `json:"up_to,omitempty"`
	Input  Rate  `json:"input"`
	Output Rate  `json:"output"`
}

// TimeOfUse multiplies the rates by Factor (in thousandths: 500 is half
// price) from From to To, minutes after midnight in the grid's time zone; the
// window may wrap past midnight.
type TimeOfUse struct {
	From   int
	To     int
	Factor int
}

// timeOfUseJSON is how people write a time-of-use window, in the config file
// and the admin API: {"from": "22:00", "to": "06:00", "factor": 0.5}.
type timeOfUseJSON struct {
	From   string      `json:"from"`
	To     string      `json:"to"`
	Factor json.Number `json:"factor"`
}

// MarshalJSON writes the window as people write it.
func (o TimeOfUse) MarshalJSON() ([]byte, error) {
	f := strconv.FormatFloat(float64(o.Factor)/1000, 'f', -1, 64)
	return json.Marshal(timeOfUseJSON{From: clock(o.From), To: clock(o.To), Factor: json.Number(f)})
}

// UnmarshalJSON reads the window as people write it.
func (o *TimeOfUse) UnmarshalJSON(b []byte) error {
	var v timeOfUseJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	t, err := ParseTimeOfUse(v.From, v.To, v.Factor.String())
	if err != nil {
		return err
	}
	*o = t
	return nil
}

// ParseTimeOfUse reads a window from "HH:MM" times of day and a decimal
// factor ("0.5"), exactly.
func ParseTimeOfUse(from, to, factor string) (TimeOfUse, error) {
	var o TimeOfUse
	var err error
	if o.From, err = parseClock(from); err != nil {
		return o, Errorf(EInvalid, "off_peak from: %v", err)
	}
	if o.To, err = parseClock(to); err != nil {
		return o, Errorf(EInvalid, "off_peak to: %v", err)
	}
	f, err := parseDecimal(factor, 3)
	if err != nil || f < 0 {
		return o, Errorf(EInvalid, "off_peak factor %q must be a number of at most three decimals, at least 0 (0.5 is half price)", factor)
	}
	o.Factor = int(f)
	return o, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day as HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

func clock(minutes int) string { return fmt.Sprintf("%02d:%02d", minutes/60, minutes%60) }

// Validate checks the blocks increase and end unbounded.
func (t *Tariff) Validate() error {
	if err := ValidateName("tariff", t.Name); err != nil {
		return err
	}
	if len(t.Blocks) == 0 {
		return Errorf(EInvalid, "tariff %q has no blocks", t.Name)
	}
	var prev int64
	for i, b := range t.Blocks {
		last := i == len(t.Blocks)-1
		switch {
		case b.Input < 0 || b.Output < 0:
			return Errorf(EInvalid, "tariff %q block %d: prices must not be negative", t.Name, i+1)
		case last && b.UpTo != 0:
			return Errorf(EInvalid, "tariff %q: the last block must have no up_to, so that every token has a price", t.Name)
		case !last && b.UpTo == 0:
			return Errorf(EInvalid, "tariff %q block %d: only the last block may leave out up_to; this one needs the token count it ends at", t.Name, i+1)
		case !last && b.UpTo <= prev:
			return Errorf(EInvalid, "tariff %q block %d: up_to %d must be above the previous block's %d", t.Name, i+1, b.UpTo, prev)
		}
		prev = b.UpTo
	}
	if o := t.OffPeak; o != nil {
		if o.From < 0 || o.From >= 1440 || o.To < 0 || o.To >= 1440 || o.From == o.To {
			return Errorf(EInvalid, "tariff %q: off_peak from and to must be distinct times of day", t.Name)
		}
		if o.Factor < 0 {
			return Errorf(EInvalid, "tariff %q: off_peak factor must not be negative", t.Name)
		}
	}
	return nil
}

// AccountType says how a tenant pays.
type AccountType string

const (
	// Prepaid accounts spend a balance topped up in advance (or by vouchers).
	Prepaid AccountType = "prepaid"
	// Postpaid accounts run up charges to a credit limit and are billed.
	Postpaid AccountType = "postpaid"
)

// Account is how a tenant pays and what it may use.
type Account struct {
	TenantID int64       `json:"tenant_id"`
	Type     AccountType `json:"type"`
	// CreditLimit is how far below zero a postpaid balance may go.
	CreditLimit Money  `json:"credit_limit"`
	Tariff      string `json:"tariff"`
	Limits      Limits `json:"limits"`
}

// Limits bound a tenant's (or a key's) use; zero means no limit.
type Limits struct {
	RPM            int64 `json:"rpm,omitempty"`
	TPM            int64 `json:"tpm,omitempty"`
	TokensPerDay   int64 `json:"tokens_per_day,omitempty"`
	TokensPerMonth int64 `json:"tokens_per_month,omitempty"`
}

// Estimate is what a call may use at most, known before it is dispatched.
type Estimate struct {
	PromptTokens int
	// MaxTokens is the most output the call may produce; 0 means the meter's
	// default, unless NoOutput.
	MaxTokens int
	// NoOutput marks a call that produces no output tokens (embeddings).
	NoOutput bool
}

// Hold is the worst-case charge and tokens reserved for one call until it is
// settled or released.
type Hold struct {
	CallID   string
	TenantID int64
	KeyID    string
	Amount   Money
	Tokens   int64
	At       time.Time
	// Limits describes the tenant's rate-limit state after this reservation,
	// for the x-ratelimit-* response headers.
	Limits RateState
}

// RateState is what the x-ratelimit-* headers tell a client.
type RateState struct {
	LimitRequests, RemainingRequests int64
	ResetRequests                    time.Duration
	LimitTokens, RemainingTokens     int64
	ResetTokens                      time.Duration
}

// RateLimited is a call refused by a rate limit, with the state of the
// limits that apply, for the x-ratelimit-* headers of the 429.
type RateLimited struct {
	Err    *Error
	Limits RateState
}

func (e *RateLimited) Error() string { return e.Err.Error() }
func (e *RateLimited) Unwrap() error { return e.Err }

// Served is what the meter records of a served call.
type Served struct {
	Service  string
	Provider string
	Model    string
	// Cost is what the offer costs the operator per million tokens.
	Cost  Price
	Usage Usage
	// Estimated marks usage that the grid counted itself because the stream
	// ended (the client left) before the provider reported it.
	Estimated bool
}

// ServedBy is what the meter records of a call the dispatcher served:
// the offer that took it, at that offer's cost.
func ServedBy(call *Call, u Usage, estimated bool) Served {
	s := Served{Service: call.Service, Provider: call.Provider, Usage: u, Estimated: estimated}
	if call.Offer != nil {
		s.Model, s.Cost = call.Offer.Model, call.Offer.Price
	}
	return s
}

// Meter reserves before dispatch and settles after.
type Meter interface {
	// Reserve checks the tenant's limits and balance and holds the worst case;
	// ERateLimited or EQuotaExhausted when it cannot.
	Reserve(ctx context.Context, call *Call, est Estimate) (*Hold, error)
	// Settle records what the call used, durably, and releases the rest of
	// the hold. Settling the same call twice counts once.
	Settle(ctx context.Context, h *Hold, s Served) error
	// Release gives back a hold of a call that used nothing.
	Release(h *Hold)
}
