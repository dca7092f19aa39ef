package aigrid

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Money is an amount in the minor units of the grid's currency (cents,
// kobo...): integers, never floats, so that sums are exact.
type Money int64

// Currency is an ISO 4217 currency and how many decimal places its minor unit has.
type Currency struct {
	Code     string `json:"code"`
	Exponent int    `json:"exponent"`
}

// currencyCodes are ISO 4217's codes of money (not of metals, funds units
// or tests), the current ones and a few lately withdrawn: a grid's currency
// is fixed at its first start, so a typo must be caught before it.
var currencyCodes = strings.Fields(`
	AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV
	BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE
	CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
	HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD
	KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN
	MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
	RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS
	TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST
	XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL`)

// currencyExponents lists the ISO 4217 minor-unit exponents that are not 2.
var currencyExponents = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

// LookupCurrency returns the currency of an ISO 4217 code such as KES or XOF.
func LookupCurrency(code string) (Currency, error) {
	if !slices.Contains(currencyCodes, code) {
		msg := fmt.Sprintf("currency %q is not an ISO 4217 code such as KES, XOF, NGN, INR or USD", code)
		if near := nearCurrencies(code); len(near) > 0 {
			msg += " (did you mean " + strings.Join(near, " or ") + "?)"
		}
		return Currency{}, Errorf(EInvalid, "%s", msg)
	}
	exp, ok := currencyExponents[code]
	if !ok {
		exp = 2
	}
	return Currency{Code: code, Exponent: exp}, nil
}

// nearCurrencies lists the codes one letter away from code, written in
// capitals: KES for KEZ or kes.
func nearCurrencies(code string) []string {
	code = strings.ToUpper(code)
	if slices.Contains(currencyCodes, code) {
		return []string{code}
	}
	var near []string
	for _, c := range currencyCodes {
		if len(c) != len(code) {
			continue
		}
		diff := 0
		for i := range c {
			if c[i] != code[i] {
				diff++
			}
		}
		if diff <= 1 {
			near = append(near, c)
		}
	}
	return near
}

// Format writes m in major units with the currency's decimals: "1234.50 KES".
func (c Currency) Format(m Money) string {
	return c.Decimal(m) + " " + c.Code
}

// Decimal writes m in major units without the code: "-12.05".
func (c Currency) Decimal(m Money) string {
	sign := ""
	v := int64(m)
	if v < 0 {
		sign, v = "-", -v
	}
	if c.Exponent == 0 {
		return sign + strconv.FormatInt(v, 10)
	}
	scale := int64(math.Pow10(c.Exponent))
	return fmt.Sprintf("%s%d.%0*d", sign, v/scale, c.Exponent, v%scale)
}

// ParseMoney reads an amount in major units ("100", "12.5") as minor units,
// refusing more decimals than the currency has.
func (c Currency) ParseMoney(s string) (Money, error) {
	micros, err := parseDecimal(s, c.Exponent)
	if err != nil {
		return 0, Errorf(EInvalid, "amount %q: %v (%s has %d decimal places)", s, err, c.Code, c.Exponent)
	}
	return Money(micros), nil
}

// Rate is a price per million tokens in millionths of the currency's major
// unit, so that "0.035 per 1M tokens" is exact whatever the currency.
type Rate int64

// RateScale is the number of Rate units in one major unit.
const RateScale = 1_000_000

// ParseRate reads a price per million tokens in major units: "20", "0.035".
func ParseRate(s string) (Rate, error) {
	v, err := parseDecimal(s, 6)
	if err != nil {
		return 0, Errorf(EInvalid, "price %q: %v", s, err)
	}
	if v < 0 {
		return 0, Errorf(EInvalid, "price %q must not be negative", s)
	}
	return Rate(v), nil
}

// String writes the rate in major units, without trailing zeros.
func (r Rate) String() string {
	s := fmt.Sprintf("%d.%06d", int64(r)/RateScale, int64(r)%RateScale)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Float is the rate in major units, for ranking offers, never for charging.
func (r Rate) Float() float64 { return float64(r) / RateScale }

// MarshalJSON writes the rate as a JSON number in major units.
func (r Rate) MarshalJSON() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalJSON reads a JSON number (or a string holding one) in major units.
func (r *Rate) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// parseDecimal reads a plain decimal number ("12", "-0.5", "3.25") as an
// integer count of 10^-places units, exactly; no exponents, no floats.
func parseDecimal(s string, places int) (int64, error) {
	t := strings.TrimSpace(s)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "-"), "+")
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("not a number")
	}
	for _, part := range []string{whole, frac} {
		if strings.ContainsFunc(part, func(r rune) bool { return r < '0' || r > '9' }) {
			return 0, fmt.Errorf("not a plain decimal number")
		}
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > places {
		return 0, fmt.Errorf("more than %d decimal places", places)
	}
	frac += strings.Repeat("0", places-len(frac))
	if whole == "" {
		whole = "0"
	}
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("out of range")
	}
	if neg {
		v = -v
	}
	return v, nil
}
