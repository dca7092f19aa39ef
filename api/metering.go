package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"aigrid"
)

// reserve holds the call's worst case on the tenant's meter, and sets the
// rate-limit headers a client library reads. It returns a nil hold when
// metering is off.
func (s *Server) reserve(ctx context.Context, w http.ResponseWriter, call *aigrid.Call, est aigrid.Estimate) (*aigrid.Hold, error) {
	if s.cfg.Meter == nil {
		return nil, nil
	}
	h, err := s.cfg.Meter.Reserve(ctx, call, est)
	if err != nil {
		var limited *aigrid.RateLimited
		if errors.As(err, &limited) {
			setRateHeaders(w.Header(), limited.Limits)
		}
		return nil, err
	}
	setRateHeaders(w.Header(), h.Limits)
	return h, nil
}

// setRateHeaders writes OpenAI's x-ratelimit-* headers for the limits that
// apply. They are on every metered response, so the values are written into
// one string and one slice shared by the six headers, and the keys in
// canonical form, as Header.Set would store them, without its
// canonicalizing each one again: two allocations, not a dozen.
func setRateHeaders(h http.Header, st aigrid.RateState) {
	limits := [2]struct {
		limit, remaining int64
		reset            time.Duration
		keys             [3]string
	}{
		{st.LimitRequests, st.RemainingRequests, st.ResetRequests,
			[3]string{"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"}},
		{st.LimitTokens, st.RemainingTokens, st.ResetTokens,
			[3]string{"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"}},
	}
	var (
		text [128]byte
		ends [6]int
		keys [6]string
	)
	b, n := text[:0], 0
	for _, l := range limits {
		if l.limit <= 0 {
			continue
		}
		b = strconv.AppendInt(b, l.limit, 10)
		ends[n] = len(b)
		b = strconv.AppendInt(b, l.remaining, 10)
		ends[n+1] = len(b)
		b = appendReset(b, l.reset)
		ends[n+2] = len(b)
		copy(keys[n:], l.keys[:])
		n += 3
	}
	if n == 0 {
		return
	}
	all, values := string(b), make([]string, n)
	start := 0
	for i := range n {
		values[i] = all[start:ends[i]]
		start = ends[i]
		h[keys[i]] = values[i : i+1 : i+1]
	}
}

// appendReset writes a duration as OpenAI does ("1s", "6m0s", "120ms").
func appendReset(b []byte, d time.Duration) []byte {
	if d < time.Second {
		return append(strconv.AppendInt(b, d.Milliseconds(), 10), "ms"...)
	}
	return append(b, d.Round(time.Millisecond).String()...)
}

// settle records what the call used. A call whose hold is nil (metering off)
// records nothing. When it fails, the client must not be told the call
// succeeded: what is not in the ledger was not sold.
func (s *Server) settle(w http.ResponseWriter, r *http.Request, call *aigrid.Call, h *aigrid.Hold, u aigrid.Usage, estimated bool) error {
	if h == nil {
		return nil
	}
	if err := s.cfg.Meter.Settle(r.Context(), h, aigrid.ServedBy(call, u, estimated)); err != nil {
		logger(w).Error("settle", "call", call.ID, "error", err.Error())
		return aigrid.Errorf(aigrid.EUnavailable, "The grid could not record this request in its ledger, so it was not completed. Try again.")
	}
	return nil
}

// release gives back the hold of a call that produced nothing.
func (s *Server) release(h *aigrid.Hold) {
	if h != nil {
		s.cfg.Meter.Release(h)
	}
}
