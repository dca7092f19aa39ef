package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
	inFlight *prometheus.GaugeVec
}

// Buckets from 5 ms to about 80 s: gateway overhead at the low end, long generations at the top.
var latencyBuckets = prometheus.ExponentialBuckets(0.005, 2, 15)

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigrid_requests_total", Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "aigrid_request_duration_seconds", Help: "Time from request to the end of the response.", Buckets: latencyBuckets,
		}, []string{"endpoint"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "aigrid_time_to_first_token_seconds", Help: "Time from request to the first streamed chunk sent to the client.", Buckets: latencyBuckets,
		}, []string{"service_model", "provider"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aigrid_tokens_total", Help: "Tokens served, by direction (in: prompt, out: completion).",
		}, []string{"direction", "service_model", "provider", "class"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "aigrid_requests_in_flight", Help: "Requests being served now.",
		}, []string{"endpoint"}),
	}
	reg.MustRegister(m.requests, m.duration, m.ttft, m.tokens, m.inFlight,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// instrument counts, times and gauges the requests of one endpoint.
func (m *metrics) instrument(endpoint string, next http.Handler) http.Handler {
	inFlight := m.inFlight.WithLabelValues(endpoint)
	duration := m.duration.WithLabelValues(endpoint)
	ok := m.requests.WithLabelValues(endpoint, "200") // most requests': no label lookup for them
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inFlight.Inc()
		rec := requestOf(w)
		if rec == nil {
			rec = &reqWriter{ResponseWriter: w, status: http.StatusOK, base: slog.Default()}
			w = rec
		}
		defer func() {
			inFlight.Dec()
			elapsed := time.Since(start)
			duration.Observe(elapsed.Seconds())
			if rec.status == http.StatusOK {
				ok.Inc()
			} else {
				m.requests.WithLabelValues(endpoint, strconv.Itoa(rec.status)).Inc()
			}
			if logEnabled(w, r, slog.LevelInfo) {
				logger(w).Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
					"duration_ms", float64(elapsed.Microseconds())/1000)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
