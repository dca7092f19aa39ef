package meter

import (
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"aigrid"
)

func rate(s string) aigrid.Rate {
	r, err := aigrid.ParseRate(s)
	if err != nil {
		panic(err)
	}
	return r
}

// public is the tariff of the issue: a free lifeline block, then two priced
// blocks, half price at night.
func public() *aigrid.Tariff {
	return &aigrid.Tariff{Name: "public", Blocks: []aigrid.Block{
		{UpTo: 200_000},
		{UpTo: 5_000_000, Input: rate("20"), Output: rate("60")},
		{Input: rate("30"), Output: rate("90")},
	}, OffPeak: &aigrid.TimeOfUse{From: 22 * 60, To: 6 * 60, Factor: 500}}
}

var kes = aigrid.Currency{Code: "KES", Exponent: 2}

func TestPriceStraddlesBlocks(t *testing.T) {
	noon := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	// 199,000 used: 1,000 input tokens are free, 500 input and 500 output
	// fall in block 2: 500×20/1M = 0.01 KES, 500×60/1M = 0.03 KES.
	c := Price(public(), kes, 199_000, 1500, 500, noon)
	if c.Total != 4 || len(c.Blocks) != 2 || c.OffPeak {
		t.Fatalf("charge %+v, want 4 cents over blocks 1 and 2", c)
	}
	if b := c.Blocks[0]; b.Block != 1 || b.Input != 1000 || b.Output != 0 || b.Amount != 0 {
		t.Errorf("block 1: %+v", b)
	}
	if b := c.Blocks[1]; b.Block != 2 || b.Input != 500 || b.Output != 500 || b.Amount != 4 {
		t.Errorf("block 2: %+v", b)
	}
	// The whole of a large call in the top block: 1M in × 30 + 1M out × 90 = 120 KES.
	c = Price(public(), kes, 6_000_000, 1_000_000, 1_000_000, noon)
	if c.Total != 12000 || len(c.Blocks) != 1 || c.Blocks[0].Block != 3 {
		t.Errorf("top block: %+v", c)
	}
	// Inside the lifeline block nothing is charged.
	if c := Price(public(), kes, 0, 100_000, 50_000, noon); c.Total != 0 {
		t.Errorf("lifeline: %+v", c)
	}
}

func TestPriceOffPeak(t *testing.T) {
	for _, tc := range []struct {
		hour, minute int
		off          bool
	}{{22, 0, true}, {23, 59, true}, {0, 0, true}, {5, 59, true}, {6, 0, false}, {21, 59, false}, {12, 0, false}} {
		at := time.Date(2026, 11, 24, tc.hour, tc.minute, 0, 0, time.UTC)
		c := Price(public(), kes, 6_000_000, 1_000_000, 1_000_000, at)
		want := aigrid.Money(12000)
		if tc.off {
			want = 6000
		}
		if c.OffPeak != tc.off || c.Total != want {
			t.Errorf("%02d:%02d: off-peak %v total %d, want %v %d", tc.hour, tc.minute, c.OffPeak, c.Total, tc.off, want)
		}
	}
}

func TestPriceRoundsHalfUpPerBlock(t *testing.T) {
	xof := aigrid.Currency{Code: "XOF", Exponent: 0}
	tariff := &aigrid.Tariff{Name: "t", Blocks: []aigrid.Block{{Input: rate("1"), Output: rate("3")}}}
	noon := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	// 500,000 input tokens at 1 XOF per 1M: 0.5 XOF, rounded half up to 1.
	if c := Price(tariff, xof, 0, 500_000, 0, noon); c.Total != 1 {
		t.Errorf("0.5 XOF rounds to %d, want 1", c.Total)
	}
	if c := Price(tariff, xof, 0, 499_999, 0, noon); c.Total != 0 {
		t.Errorf("0.499999 XOF rounds to %d, want 0", c.Total)
	}
	// Three decimals (KWD): 1,000 output tokens at 3 KWD per 1M = 0.003 KWD = 3 fils.
	kwd := aigrid.Currency{Code: "KWD", Exponent: 3}
	if c := Price(tariff, kwd, 0, 0, 1000, noon); c.Total != 3 {
		t.Errorf("KWD: %d fils, want 3", c.Total)
	}
}

// Properties over random tariffs and call sequences: every token is priced in
// exactly one block, in block order; a call's total is the sum of its blocks;
// and the sum of all per-call charges (what a statement adds up) is within
// half a minor unit per priced block piece of the exact rational price.
func TestPriceProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noon := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for trial := 0; trial < 200; trial++ {
		var blocks []aigrid.Block
		var upTo int64
		n := 1 + rng.IntN(4)
		for i := 0; i < n; i++ {
			b := aigrid.Block{Input: aigrid.Rate(rng.Int64N(100 * aigrid.RateScale)), Output: aigrid.Rate(rng.Int64N(300 * aigrid.RateScale))}
			if i < n-1 {
				upTo += 1 + rng.Int64N(2_000_000)
				b.UpTo = upTo
			}
			blocks = append(blocks, b)
		}
		tariff := &aigrid.Tariff{Name: "t", Blocks: blocks}
		if err := tariff.Validate(); err != nil {
			t.Fatal(err)
		}
		var used int64
		var sum aigrid.Money
		var pieces int64
		exact := new(big.Rat)
		for call := 0; call < 50; call++ {
			in, out := rng.Int64N(20_000), rng.Int64N(5_000)
			c := Price(tariff, kes, used, in, out, noon)
			var tokens int64
			var total aigrid.Money
			prev := 0
			for _, b := range c.Blocks {
				if b.Block <= prev {
					t.Fatalf("blocks out of order: %+v", c.Blocks)
				}
				prev = b.Block
				tokens += b.Input + b.Output
				total += b.Amount
				rates := blocks[b.Block-1]
				// exact amount in cents: tokens × rate / 1M / RateScale × 100
				v := new(big.Rat).SetFrac(
					new(big.Int).Add(new(big.Int).Mul(big.NewInt(b.Input), big.NewInt(int64(rates.Input))),
						new(big.Int).Mul(big.NewInt(b.Output), big.NewInt(int64(rates.Output)))),
					big.NewInt(1_000_000*aigrid.RateScale/100))
				exact.Add(exact, v)
				pieces++
			}
			if tokens != in+out || total != c.Total {
				t.Fatalf("call %d: %d tokens priced of %d; total %d, blocks sum %d", call, tokens, in+out, c.Total, total)
			}
			used += in + out
			sum += c.Total
		}
		diff := new(big.Rat).Sub(new(big.Rat).SetInt64(int64(sum)), exact)
		bound := new(big.Rat).SetFrac64(pieces, 2)
		if diff.Abs(diff).Cmp(bound) > 0 {
			t.Fatalf("trial %d: charged %d, exact %s: off by more than half a cent per piece", trial, sum, exact.FloatString(3))
		}
	}
}

func TestVersionPicksTheTariffInEffect(t *testing.T) {
	old := &aigrid.Tariff{Name: "p", Effective: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	next := &aigrid.Tariff{Name: "p", Effective: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	versions := []*aigrid.Tariff{old, next}
	if v := Version(versions, time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)); v != old {
		t.Error("November uses the old version")
	}
	if v := Version(versions, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)); v != next {
		t.Error("December uses the new version")
	}
	if v := Version(versions, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)); v != nil {
		t.Error("before any version: none")
	}
}

// The 128-bit path prices exactly as big integers do, where it applies, and
// declines where it does not.
func TestBlockExactPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int64{0, 1, 999, 1_000_000, 1 << 31, 1 << 40, 1 << 62}
	pick := func() int64 {
		if rng.IntN(3) == 0 {
			return sizes[rng.IntN(len(sizes))]
		}
		return rng.Int64N(1 << uint(rng.IntN(62)+1))
	}
	fast := 0
	for range 200_000 {
		in, out := pick(), pick()
		rin, rout := aigrid.Rate(pick()), aigrid.Rate(pick())
		factor := []int64{0, 500, 1000, 1500, 1 << 20}[rng.IntN(5)]
		exp := rng.IntN(5)
		want := blockExactBig(in, rin, out, rout, factor, exp)
		got, ok := blockExact128(in, rin, out, rout, factor, exp)
		if !ok {
			continue
		}
		fast++
		if got != want {
			t.Fatalf("blockExact(%d, %d, %d, %d, %d, %d) = %d by 128 bits, %d by big integers", in, rin, out, rout, factor, exp, got, want)
		}
	}
	if fast < 10_000 {
		t.Fatalf("the 128-bit path took only %d of the cases", fast)
	}
	// A month of tokens at a high rate fits; a product past 64 bits does not.
	if _, ok := blockExact128(10_000_000, 90*aigrid.RateScale, 5_000_000, 270*aigrid.RateScale, 1000, 2); !ok {
		t.Error("usual sizes declined")
	}
	if _, ok := blockExact128(1<<40, 1<<40, 0, 0, 1000, 2); ok {
		t.Error("a product past 64 bits accepted")
	}
}
