package aigrid

import (
	"strings"
	"testing"
)

func TestLookupCurrency(t *testing.T) {
	for code, exp := range map[string]int{"KES": 2, "XOF": 0, "NGN": 2, "INR": 2, "USD": 2, "KWD": 3, "UGX": 0, "CLF": 4, "ZWG": 2} {
		c, err := LookupCurrency(code)
		if err != nil || c.Code != code || c.Exponent != exp {
			t.Errorf("%s: %+v, %v; want exponent %d", code, c, err, exp)
		}
	}
	for code, want := range map[string]string{
		"KEZ":  "did you mean KES?",
		"kes":  "did you mean KES?",
		"NGM":  "did you mean NGN?",
		"XAU":  "not an ISO 4217 code", // gold: not money to bill in
		"KESH": "not an ISO 4217 code",
		"":     "not an ISO 4217 code",
		"QQQ":  "such as KES, XOF, NGN, INR or USD",
	} {
		_, err := LookupCurrency(code)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", code, err, want)
		}
	}
	// Every code with its own exponent is a known code.
	for code := range currencyExponents {
		if _, err := LookupCurrency(code); err != nil {
			t.Errorf("%s has an exponent and is refused: %v", code, err)
		}
	}
}
