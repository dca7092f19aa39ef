package meter

import (
	"testing"
	"time"
)

func TestGCRAAllowsABurstThenTheRate(t *testing.T) {
	var g gcra
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	// 60 a minute: a burst of 60 at once, then one a second.
	for i := 0; i < 60; i++ {
		c := g.check(now, 60, time.Minute, 1)
		if !c.ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
		if c.remaining != int64(59-i) {
			t.Fatalf("request %d: remaining %d, want %d", i+1, c.remaining, 59-i)
		}
		g.tat = c.tat
	}
	c := g.check(now, 60, time.Minute, 1)
	if c.ok || c.retryAfter != time.Second {
		t.Fatalf("the 61st: ok %v, retry after %v; want refused, 1s", c.ok, c.retryAfter)
	}
	if c := g.check(now.Add(time.Second), 60, time.Minute, 1); !c.ok {
		t.Fatal("a second later one more fits")
	}
	// A cost larger than the whole allowance never fits.
	var h gcra
	if c := h.check(now, 100, time.Minute, 101); c.ok {
		t.Fatal("101 tokens fit in a 100-token minute")
	}
	// Giving back unused units makes room again.
	h.tat = h.check(now, 100, time.Minute, 100).tat
	h.give(now, 100, time.Minute, 40)
	if c := h.check(now, 100, time.Minute, 40); !c.ok {
		t.Fatal("40 returned tokens are not usable again")
	}
	// Units used beyond what was reserved are taken, even past the limit:
	// 100 are in use again, and 30 more were spent.
	h.tat = h.check(now, 100, time.Minute, 40).tat
	h.give(now, 100, time.Minute, -30)
	if c := h.check(now.Add(17*time.Second), 100, time.Minute, 1); c.ok {
		t.Fatal("a unit fits 17 s after 130 of a 100-a-minute allowance were spent")
	}
	if c := h.check(now.Add(19*time.Second), 100, time.Minute, 1); !c.ok {
		t.Fatal("no unit fits 19 s after 130 of a 100-a-minute allowance were spent")
	}
}

// A limit larger than the nanoseconds in its period works (an integer
// interval would be zero and divide by zero).
func TestGCRAHugeLimit(t *testing.T) {
	var g gcra
	now := time.Now()
	r := g.check(now, 100_000_000_000, time.Minute, 5_000)
	if !r.ok || r.remaining < 99_999_000_000 {
		t.Fatalf("%+v", r)
	}
	g.tat = r.tat
	g.give(now, 100_000_000_000, time.Minute, 5_000)
}

func TestPerMinuteUnit(t *testing.T) {
	for _, c := range []struct {
		unit string
		n    int64
		want string
	}{{"requests", 1, "request"}, {"requests", 2, "requests"}, {"tokens", 1, "token"}, {"tokens", 1000, "tokens"}} {
		if got := perMinuteUnit(c.unit, c.n); got != c.want {
			t.Errorf("%d %s: %q, want %q", c.n, c.unit, got, c.want)
		}
	}
}
