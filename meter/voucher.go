package meter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"

	"aigrid"
)

// VoucherDigits is the length of a voucher code: 19 random digits and a Luhn
// check digit, like a prepaid electricity token, so that a mistyped digit or
// two swapped neighbours are caught before any lookup.
const VoucherDigits = 20

// NewVoucherCode returns a fresh random code.
func NewVoucherCode() (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(VoucherDigits-1), nil)
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		return "", err
	}
	body := n.Text(10)
	body = strings.Repeat("0", VoucherDigits-1-len(body)) + body
	return body + string(rune('0'+luhnCheckDigit(body))), nil
}

// luhnCheckDigit is the digit that makes body+digit pass the Luhn check.
func luhnCheckDigit(body string) int {
	sum := 0
	double := true // the digit left of the check digit is doubled
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10 - sum%10) % 10
}

// NormalizeVoucherCode strips the spaces and dashes people type and checks
// the length, the digits and the check digit.
func NormalizeVoucherCode(code string) (string, error) {
	var b strings.Builder
	for _, r := range code {
		switch {
		case r == ' ' || r == '-':
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			return "", &aigrid.Error{Code: aigrid.EInvalid, Param: "code", Message: "A voucher code has only digits (spaces and dashes are ignored)."}
		}
	}
	c := b.String()
	if len(c) != VoucherDigits {
		return "", &aigrid.Error{Code: aigrid.EInvalid, Param: "code", Message: "A voucher code has 20 digits; this one has " + itoa(len(c)) + "."}
	}
	if luhnCheckDigit(c[:VoucherDigits-1]) != int(c[VoucherDigits-1]-'0') {
		return "", &aigrid.Error{Code: aigrid.EInvalid, Param: "code", Message: "This voucher code has a typo: its check digit does not match. Check the 20 digits and try again."}
	}
	return c, nil
}

// HashVoucherCode is what the store keeps of a code: its SHA-256.
func HashVoucherCode(code string) string {
	h := sha256.Sum256([]byte(code))
	return hex.EncodeToString(h[:])
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// VoidVouchers cancels the vouchers of a batch, or the one voucher of a
// code (exactly one of them is given), that are neither redeemed nor voided,
// expired ones included: their value leaves voucher_float, back against
// voucher_sales, in a transaction that keeps the reason and who voided them.
// A code is checked as Redeem checks it, before any lookup.
func (m *Meter) VoidVouchers(ctx context.Context, batch, code, reason, actor string) (aigrid.VoucherVoid, error) {
	if (batch == "") == (code == "") {
		return aigrid.VoucherVoid{}, &aigrid.Error{Code: aigrid.EInvalid, Param: "batch", Message: "Give the batch or the code of the vouchers to void: one of them, not both."}
	}
	if reason == "" {
		return aigrid.VoucherVoid{}, &aigrid.Error{Code: aigrid.EInvalid, Param: "reason", Message: "A void needs a reason; it is kept in the ledger for audit."}
	}
	var hash string
	if code != "" {
		c, err := NormalizeVoucherCode(code)
		if err != nil {
			return aigrid.VoucherVoid{}, err
		}
		hash = HashVoucherCode(c)
	}
	now := m.now()
	tx := &aigrid.LedgerTx{Key: "void:" + randomID(), Kind: aigrid.TxVoucherVoid, At: now, Memo: reason, Actor: actor}
	return m.ledger.VoidVouchers(ctx, batch, hash, now, tx)
}

// VoucherBatches counts every batch's vouchers by state now, newest batch first.
func (m *Meter) VoucherBatches(ctx context.Context) ([]aigrid.VoucherBatch, error) {
	return m.ledger.VoucherBatches(ctx, m.now())
}
