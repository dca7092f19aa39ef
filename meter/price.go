// Package meter sells the grid's tokens the way a utility sells power: it
// prices usage by the tenant's tariff (increasing monthly blocks, a free
// lifeline block first, off-peak factors), holds the worst case before a call
// is dispatched, settles what was used afterwards as balanced ledger entries,
// enforces rate limits and quotas, and mints and redeems prepaid vouchers.
package meter

import (
	"math"
	"math/big"
	"math/bits"
	"time"

	"aigrid"
)

// Price prices in input and out output tokens of a call made at time at
// (already in the grid's time zone), when the tenant had already used
// monthBefore tokens this month. The input tokens fill the blocks first, then
// the output tokens: a call that straddles a block boundary is priced in both.
// Each block carries its exact price (millionths of a minor unit) and that
// price rounded to the minor unit (half up); the total is the sum of the
// rounded blocks. Settling rounds the month's running sum instead (Round).
func Price(t *aigrid.Tariff, cur aigrid.Currency, monthBefore, in, out int64, at time.Time) aigrid.Charge {
	var c aigrid.Charge
	if t == nil {
		return c // no tariff in effect: the call is recorded, free
	}
	factor := int64(1000)
	offPeak := t.OffPeak != nil && inWindow(t.OffPeak, at)
	if offPeak {
		factor = int64(t.OffPeak.Factor)
	}
	c.OffPeak = offPeak
	inEnd := monthBefore + in
	outEnd := inEnd + out
	var lo int64
	for i, b := range t.Blocks {
		hi := b.UpTo
		if hi == 0 {
			hi = 1<<63 - 1
		}
		bin := overlap(monthBefore, inEnd, lo, hi)
		bout := overlap(inEnd, outEnd, lo, hi)
		if bin > 0 || bout > 0 {
			exact := blockExact(bin, b.Input, bout, b.Output, factor, cur.Exponent)
			amount := roundMicro(exact)
			c.Blocks = append(c.Blocks, aigrid.BlockCharge{Block: i + 1, Input: bin, Output: bout, Amount: amount, Exact: exact})
			c.Total += amount
		}
		lo = hi
	}
	return c
}

// overlap is the length of [a, b) ∩ [lo, hi).
func overlap(a, b, lo, hi int64) int64 {
	a, b = max(a, lo), min(b, hi)
	return max(b-a, 0)
}

// perMillion is 10^6 tokens × RateScale × 1000 (the factor's permille) ÷
// 10^6 (the millionths of a minor unit): the divisor that turns tokens ×
// Rate × factor × 10^exponent into millionths of a minor unit.
const perMillion = aigrid.RateScale * 1000

// blockExact is (in×rateIn + out×rateOut) × factor/1000 per million tokens,
// in millionths of a minor unit, rounded half up. Every call is priced, so
// the usual sizes take 128-bit integer arithmetic; the rest big integers:
// the product of a month's tokens and a rate overflows 64 bits long before
// the amount does.
func blockExact(in int64, rateIn aigrid.Rate, out int64, rateOut aigrid.Rate, factor int64, exponent int) int64 {
	if v, ok := blockExact128(in, rateIn, out, rateOut, factor, exponent); ok {
		return v
	}
	return blockExactBig(in, rateIn, out, rateOut, factor, exponent)
}

// blockExact128 is blockExact where the sum of products fits 64 bits, the
// scale factor 32, and the result 63; ok is false otherwise.
func blockExact128(in int64, rateIn aigrid.Rate, out int64, rateOut aigrid.Rate, factor int64, exponent int) (int64, bool) {
	if in < 0 || rateIn < 0 || out < 0 || rateOut < 0 || factor < 0 || factor > 1<<20 || exponent < 0 || exponent > 6 {
		return 0, false
	}
	h1, l1 := bits.Mul64(uint64(in), uint64(rateIn))
	h2, l2 := bits.Mul64(uint64(out), uint64(rateOut))
	sum, carry := bits.Add64(l1, l2, 0)
	if h1 != 0 || h2 != 0 || carry != 0 {
		return 0, false
	}
	scale := uint64(factor)
	for range exponent {
		scale *= 10
	}
	hi, lo := bits.Mul64(sum, scale)
	lo, carry = bits.Add64(lo, perMillion/2, 0)
	hi += carry
	if hi >= perMillion {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, perMillion)
	if q > math.MaxInt64 {
		return 0, false
	}
	return int64(q), true
}

// blockExactBig is blockExact in big integers.
func blockExactBig(in int64, rateIn aigrid.Rate, out int64, rateOut aigrid.Rate, factor int64, exponent int) int64 {
	var num, t big.Int
	num.Mul(big.NewInt(in), big.NewInt(int64(rateIn)))
	t.Mul(big.NewInt(out), big.NewInt(int64(rateOut)))
	num.Add(&num, &t)
	num.Mul(&num, big.NewInt(factor))
	num.Mul(&num, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exponent)), nil))
	num.Add(&num, big.NewInt(perMillion/2))
	num.Quo(&num, big.NewInt(perMillion))
	return num.Int64()
}

// roundMicro rounds millionths of a minor unit to the minor unit, half up.
func roundMicro(x int64) aigrid.Money { return aigrid.Money((x + 500_000) / 1_000_000) }

// Round sets the charge's amounts from the running sums of exact prices of
// the month's calls before it, by block (carry, which it advances): each
// block is charged round(sum after) − round(sum before). The month's
// charges then add up to its exact price rounded once per block, however
// small each call.
func Round(c *aigrid.Charge, carry map[int]int64) {
	c.Total = 0
	for i := range c.Blocks {
		b := &c.Blocks[i]
		before := carry[b.Block]
		after := before + b.Exact
		b.Amount = roundMicro(after) - roundMicro(before)
		carry[b.Block] = after
		c.Total += b.Amount
	}
}

// Unround takes the charge's exact prices back out of carry, for a
// settlement that was not written.
func Unround(c *aigrid.Charge, carry map[int]int64) {
	for _, b := range c.Blocks {
		carry[b.Block] -= b.Exact
	}
}

// inWindow reports whether at falls in the time-of-use window.
func inWindow(w *aigrid.TimeOfUse, at time.Time) bool {
	m := at.Hour()*60 + at.Minute()
	if w.From < w.To {
		return m >= w.From && m < w.To
	}
	return m >= w.From || m < w.To
}

// Cost is what the operator pays the offer for a call, in minor units.
func Cost(p aigrid.Price, cur aigrid.Currency, in, out int64) aigrid.Money {
	return roundMicro(blockExact(in, p.Input, out, p.Output, 1000, cur.Exponent))
}

// Version picks the tariff version in effect at time at from versions sorted
// by Effective, or nil if none has started yet.
func Version(versions []*aigrid.Tariff, at time.Time) *aigrid.Tariff {
	var cur *aigrid.Tariff
	for _, v := range versions {
		if v.Effective.After(at) {
			break
		}
		cur = v
	}
	return cur
}
