package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"aigrid"
)

// Call ids are unique, and their time prefix never goes backwards, so that
// ids made later sort after ids made in an earlier millisecond.
func TestRequestIDsSortByTime(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := range 20_000 {
		id := newRequestID()
		if !strings.HasPrefix(id, "req_") || len(id) != 28 || seen[id] {
			t.Fatalf("id %d: %q (seen before: %v)", i, id, seen[id])
		}
		seen[id] = true
		if prefix := id[4:16]; prefix < prev {
			t.Fatalf("id %d: time prefix %s after %s", i, prefix, prev)
		} else {
			prev = prefix
		}
		if i == 10_000 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if first, last := newRequestID(), (func() string { time.Sleep(2 * time.Millisecond); return newRequestID() })(); first >= last {
		t.Errorf("%s made before %s sorts after it", first, last)
	}
}

// A request's log line carries its id (the client's, when sane) and the
// status written, which the request's writer keeps.
func TestRequestLog(t *testing.T) {
	var logs bytes.Buffer
	s := New(Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	for _, id := range []string{"clinic-req-42", "bad id"} {
		logs.Reset()
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(`{}`))
		r.Header.Set("X-Request-Id", id)
		s.ServeHTTP(w, r) // no key: 401
		var line struct {
			Msg       string
			RequestID string `json:"request_id"`
			Status    int
		}
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("log %q: %v", logs.String(), err)
		}
		echoed := w.Header().Get("X-Request-Id")
		if line.Msg != "request" || line.Status != http.StatusUnauthorized || line.RequestID != echoed || echoed == "" {
			t.Errorf("id %q: log %s, X-Request-Id %q", id, logs.String(), echoed)
		}
		if (echoed == id) != (id == "clinic-req-42") {
			t.Errorf("id %q echoed as %q", id, echoed)
		}
	}
}

// The rate-limit headers are stored under the keys Header.Get looks up.
func TestRateHeadersCanonical(t *testing.T) {
	h := http.Header{}
	setRateHeaders(h, aigrid.RateState{LimitRequests: 600, RemainingRequests: 599, ResetRequests: 100 * time.Millisecond,
		LimitTokens: 1000, RemainingTokens: 10, ResetTokens: 90 * time.Second})
	for key, want := range map[string]string{
		"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "599", "x-ratelimit-reset-requests": "100ms",
		"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "10", "x-ratelimit-reset-tokens": "1m30s",
	} {
		if got := h.Get(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
	tokensOnly := http.Header{"Content-Type": {"application/json"}}
	setRateHeaders(tokensOnly, aigrid.RateState{LimitTokens: 200_000, RemainingTokens: 199_000, ResetTokens: 3 * time.Second})
	if len(tokensOnly) != 4 || tokensOnly.Get("x-ratelimit-limit-tokens") != "200000" ||
		tokensOnly.Get("x-ratelimit-remaining-tokens") != "199000" || tokensOnly.Get("x-ratelimit-reset-tokens") != "3s" {
		t.Errorf("tokens only: %v", tokensOnly)
	}
	none := http.Header{}
	setRateHeaders(none, aigrid.RateState{})
	if len(none) != 0 {
		t.Errorf("no limits: %v", none)
	}
}

func BenchmarkRateHeaders(b *testing.B) {
	st := aigrid.RateState{LimitRequests: 600, RemainingRequests: 599, ResetRequests: 100 * time.Millisecond,
		LimitTokens: 200_000, RemainingTokens: 123_456, ResetTokens: 1500 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		setRateHeaders(http.Header{}, st)
	}
}
