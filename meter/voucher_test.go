package meter

import (
	"strings"
	"testing"
)

func TestVoucherCodesCatchTypos(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		code, err := NewVoucherCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != VoucherDigits || seen[code] {
			t.Fatalf("code %q: wrong length or repeated", code)
		}
		seen[code] = true
		if got, err := NormalizeVoucherCode(code[:5] + " " + code[5:10] + "-" + code[10:]); err != nil || got != code {
			t.Fatalf("a valid code with separators is refused: %v", err)
		}
		// Every single-digit change is caught.
		for pos := 0; pos < VoucherDigits; pos++ {
			for d := byte('0'); d <= '9'; d++ {
				if d == code[pos] {
					continue
				}
				typo := code[:pos] + string(d) + code[pos+1:]
				if _, err := NormalizeVoucherCode(typo); err == nil || !strings.Contains(err.Error(), "typo") {
					t.Fatalf("typo %q at %d not caught: %v", typo, pos, err)
				}
			}
		}
		// Swapping two different neighbours is caught (except 0↔9, Luhn's blind spot).
		for pos := 0; pos+1 < VoucherDigits; pos++ {
			a, b := code[pos], code[pos+1]
			if a == b || a+b == '0'+'9' {
				continue
			}
			swapped := code[:pos] + string(b) + string(a) + code[pos+2:]
			if _, err := NormalizeVoucherCode(swapped); err == nil {
				t.Fatalf("swap at %d not caught", pos)
			}
		}
	}
	for _, bad := range []string{"", "123", "1234567890123456789a", "123456789012345678901"} {
		if _, err := NormalizeVoucherCode(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// FuzzNormalizeVoucherCode feeds what a tenant may type: nothing panics, an
// accepted code is its input's digits, 20 of them, passing the check, and
// normalizing it again changes nothing.
func FuzzNormalizeVoucherCode(f *testing.F) {
	for _, seed := range []string{"", "1234-5678 9012-3456 7890", "00000000000000000000", "１２３", "12345678901234567897", "\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		code, err := NormalizeVoucherCode(in)
		if err != nil {
			return
		}
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, in)
		if code != digits || len(code) != VoucherDigits || luhnCheckDigit(code[:VoucherDigits-1]) != int(code[VoucherDigits-1]-'0') {
			t.Fatalf("%q accepted as %q", in, code)
		}
		if again, err := NormalizeVoucherCode(code); err != nil || again != code {
			t.Fatalf("%q normalized again: %q, %v", code, again, err)
		}
	})
}
