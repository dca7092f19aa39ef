package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"aigrid/internal/offstack"
)

// A panic in work moved off the handler's stack still reaches withRecover,
// which answers 500, instead of ending the process.
func TestPanicOffStack(t *testing.T) {
	s := &Server{cfg: Config{}}
	h := s.withRecover(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offstack.Run(func() { panic("deep") })
		w.WriteHeader(http.StatusOK)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/chat/completions", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
}
