// Package api serves the grid over HTTP: the OpenAI-compatible API under /v1
// for tenants, the admin API under /admin/v1 for the operator, and /metrics,
// /healthz and /readyz for whoever watches it.
package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aigrid"
	"aigrid/dispatch"
	"aigrid/internal/openaierr"
	"aigrid/meter"
)

// DefaultMaxBodyBytes is the request body limit when none is configured.
const DefaultMaxBodyBytes = 8 << 20

// ProviderSet is what the admin API changes when the operator changes
// providers or service models.
type ProviderSet interface {
	Set(cfg *aigrid.ProviderConfig) error
	Remove(name string)
	SetServiceModel(m *aigrid.ServiceModel)
}

// Explainer shows the merit order of a service model.
type Explainer interface {
	Explain(service string, t *aigrid.Tenant) (*dispatch.Explanation, error)
}

// Config is what a Server needs.
type Config struct {
	Store      aigrid.Store
	Dispatcher aigrid.Dispatcher
	Providers  ProviderSet
	Explainer  Explainer
	// Packages are the turnkey packages served under /v1/packages/NAME/.
	Packages []aigrid.Package
	// Public handlers are served without a key under /public/NAME/ (an
	// alert feed that aggregators read anonymously).
	Public map[string]http.Handler
	// Meter, when set, holds, settles and shows each tenant's usage; nil
	// serves everything unmetered.
	Meter  *meter.Meter
	Logger *slog.Logger
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Registry receives the server's metrics; nil makes a new one.
	Registry *prometheus.Registry
	// Ready, when set, reports whether the server's dependencies can serve.
	Ready func(ctx context.Context) error
	// Backup, when set, writes a copy of the whole store as it stands to a
	// new file and returns its path; the server sends it, then removes it.
	Backup func(ctx context.Context) (path string, err error)
}

// Server is the HTTP face of the grid.
type Server struct {
	cfg      Config
	keys     *keyCache
	metrics  *metrics
	handler  http.Handler
	draining atomic.Bool
	// backups holds the turn of the one backup that runs at a time.
	backups chan struct{}
}

// New returns a server ready to be mounted in an http.Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, keys: newKeyCache(cfg.Store), metrics: newMetrics(cfg.Registry), backups: make(chan struct{}, 1)}
	s.handler = s.routes()
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Drain marks the server as shutting down: /readyz fails so that load
// balancers stop sending new requests, while those in flight finish.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	tenant := func(h func(http.ResponseWriter, *http.Request, *aigrid.Call)) http.Handler {
		return s.tenantAuth(h)
	}
	s.handle(mux, "POST /v1/chat/completions", tenant(s.chatCompletions))
	s.handle(mux, "POST /v1/embeddings", tenant(s.embeddings))
	s.handle(mux, "GET /v1/models", tenant(s.listModels))
	s.handle(mux, "GET /v1/models/{model...}", tenant(s.getModel))
	s.handle(mux, "GET /v1/balance", tenant(s.getBalance))
	s.handle(mux, "GET /v1/usage", tenant(s.getUsage))
	s.handle(mux, "GET /v1/statements/{month}", tenant(s.getStatement))
	s.handle(mux, "POST /v1/vouchers/redeem", tenant(s.redeemVoucher))
	s.adminRoutes(mux)
	s.packageRoutes(mux)

	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, aigrid.Errorf(aigrid.ENotFound, "There is no endpoint %s %s.", r.Method, r.URL.Path))
	})
	return s.withRequestID(s.withRecover(mux))
}

// handle registers h for pattern ("METHOD /path") and answers any other
// method on the same path with an OpenAI-shaped 405.
func (s *Server) handle(mux *http.ServeMux, pattern string, h http.Handler) {
	mux.Handle(pattern, s.metrics.instrument(pattern, h))
	method, path, _ := cut(pattern)
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		writeErrorStatus(w, http.StatusMethodNotAllowed, "invalid_request_error", aigrid.Errorf(openaierr.MethodNotAllowed,
			"%s %s is not supported; use %s.", r.Method, r.URL.Path, method))
	})
}

func cut(pattern string) (method, path string, ok bool) {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == ' ' {
			return pattern[:i], pattern[i+1:], true
		}
	}
	return "", pattern, false
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, r, aigrid.Errorf(aigrid.EUnavailable, "The server is shutting down."))
		return
	}
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			logger(w).Error("not ready", "error", err.Error())
			writeError(w, r, aigrid.Errorf(aigrid.EUnavailable, "The store is not reachable."))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

type ctxKey int

const adminKeyIDKey ctxKey = iota

// reqWriter is a request's response writer: it remembers the status written,
// for the metrics and the request log, and carries the request's id and
// logger. withRequestID makes one a request, so that the id travels without
// a context value: a stream holds its request for its whole life, and
// r.WithContext copies the request (a few hundred bytes). The logger that
// carries the id is made when the request first logs, for the same reason.
// Unwrap lets http.ResponseController reach the connection's Flush and
// deadlines.
type reqWriter struct {
	http.ResponseWriter
	status int
	id     string
	base   *slog.Logger
	log    *slog.Logger
}

func (w *reqWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *reqWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestOf finds the request's writer under w's wrappers, or nil when w was
// not made by withRequestID.
func requestOf(w http.ResponseWriter) *reqWriter {
	for {
		switch x := w.(type) {
		case *reqWriter:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
}

// withRequestID keeps a client's X-Request-Id (when it is sane) or makes one,
// echoes it in the response and gives it to the request's writer, for the
// logger.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(&reqWriter{ResponseWriter: w, status: http.StatusOK, id: id, base: s.cfg.Logger}, r)
	})
}

// withRecover turns a panic in a handler into a 500 and a log line with the
// stack, so that no panic reaches a client as a dropped connection.
func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger(w).Error("panic", "panic", v)
				writeError(w, r, aigrid.Errorf(aigrid.EInternal, "Internal error."))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// newRequestID returns a call id whose first 12 hex digits are the time in
// milliseconds and the other 12 random (2^48 a millisecond). Ids sort by
// time, so the ledger's index of them grows at its end: a batch of calls
// rewrites a few of its pages rather than one page each, at random.
func newRequestID() string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	return "req_" + hex.EncodeToString(b[:])
}

func requestID(w http.ResponseWriter) string {
	if rw := requestOf(w); rw != nil {
		return rw.id
	}
	return ""
}

// logEnabled reports whether the request's logger writes at level, without
// making the logger: a line logged on every call is skipped at no cost when
// the operator's level leaves it out.
func logEnabled(w http.ResponseWriter, r *http.Request, level slog.Level) bool {
	base := slog.Default()
	if rw := requestOf(w); rw != nil {
		base = rw.base
	}
	return base.Enabled(r.Context(), level)
}

// logger returns the request's logger, which carries its id. Only the
// request's own goroutine calls it.
func logger(w http.ResponseWriter) *slog.Logger {
	rw := requestOf(w)
	if rw == nil {
		return slog.Default()
	}
	if rw.log == nil {
		rw.log = rw.base.With("request_id", rw.id)
	}
	return rw.log
}
