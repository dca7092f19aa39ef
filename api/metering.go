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
// apply. The keys are written in canonical form, as Header.Set would store
// them, without its canonicalizing each one again on every call.
func setRateHeaders(h http.Header, st aigrid.RateState) {
	if st.LimitRequests > 0 {
		h["X-Ratelimit-Limit-Requests"] = []string{strconv.FormatInt(st.LimitRequests, 10)}
		h["X-Ratelimit-Remaining-Requests"] = []string{strconv.FormatInt(st.RemainingRequests, 10)}
		h["X-Ratelimit-Reset-Requests"] = []string{resetString(st.ResetRequests)}
	}
	if st.LimitTokens > 0 {
		h["X-Ratelimit-Limit-Tokens"] = []string{strconv.FormatInt(st.LimitTokens, 10)}
		h["X-Ratelimit-Remaining-Tokens"] = []string{strconv.FormatInt(st.RemainingTokens, 10)}
		h["X-Ratelimit-Reset-Tokens"] = []string{resetString(st.ResetTokens)}
	}
}

// resetString writes a duration as OpenAI does ("1s", "6m0s", "120ms").
func resetString(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

// settle records what the call used. A call whose hold is nil (metering off)
// records nothing. When it fails, the client must not be told the call
// succeeded: what is not in the ledger was not sold.
func (s *Server) settle(r *http.Request, call *aigrid.Call, h *aigrid.Hold, u aigrid.Usage, estimated bool) error {
	if h == nil {
		return nil
	}
	if err := s.cfg.Meter.Settle(r.Context(), h, aigrid.ServedBy(call, u, estimated)); err != nil {
		logger(r).Error("settle", "call", call.ID, "error", err.Error())
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
