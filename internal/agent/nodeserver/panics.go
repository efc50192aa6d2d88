package nodeserver

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/peapod/peapod/internal/httprecover"
)

// serverMetrics are the node server's own Prometheus collectors, served at
// GET /metrics (reached through the API server as nodes/<node>/proxy/
// metrics, as the kubelet's are). Only what the server itself counts: the
// Go runtime collectors would cost the agent memory for figures the API
// server's /metrics already show for the server process.
type serverMetrics struct {
	registry *prometheus.Registry
	panics   *prometheus.CounterVec
}

func newServerMetrics() *serverMetrics {
	m := &serverMetrics{
		registry: prometheus.NewRegistry(),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_server_request_panics_total",
			Help: "Requests to the node server whose handler panicked (answered 500), by method and endpoint.",
		}, []string{"method", "endpoint"}),
	}
	m.registry.MustRegister(m.panics)
	return m
}

func (m *serverMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// recoverPanics answers a request whose handler panicked with a 500 (or,
// when a stream had already started, aborts it), logs the panic and its
// stack at error level and counts it, so that no request, log or exec
// stream included, is left without an answer.
func (s *Server) recoverPanics(mux *http.ServeMux) http.Handler {
	return httprecover.Handler(mux, func(w http.ResponseWriter, r *http.Request, p httprecover.Panic, started bool) {
		_, endpoint := mux.Handler(r)
		s.metrics.panics.WithLabelValues(r.Method, endpoint).Inc()
		user := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			user = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		s.log.Error("node server handler panicked", "method", r.Method, "endpoint", endpoint, "path", r.URL.Path,
			"user", user, "panic", fmt.Sprint(p.Value), "responseStarted", started, "stack", string(p.Stack))
		if !started {
			http.Error(w, "internal error: the node server panicked serving this request; see the agent's log", http.StatusInternalServerError)
		}
	})
}
