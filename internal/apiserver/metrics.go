package apiserver

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/peapod/peapod/internal/storage"
)

// metrics are the server's Prometheus collectors, in a registry of its own.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	etcd     *prometheus.HistogramVec
	watchers *prometheus.GaugeVec
	panics   *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total", Help: "Requests by verb, resource and HTTP code.",
		}, []string{"verb", "resource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "apiserver_request_duration_seconds", Help: "Request latency by verb and resource (watches excluded).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"verb", "resource"}),
		etcd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "etcd_request_duration_seconds", Help: "Storage request latency by operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"operation"}),
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_registered_watchers", Help: "Open watches by resource.",
		}, []string{"resource"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_panics_total", Help: "Requests whose handler panicked (answered 500), by verb and resource.",
		}, []string{"verb", "resource"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.etcd, m.watchers, m.panics,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeRequest(verb, resource string, code int, d time.Duration) {
	m.requests.WithLabelValues(verb, resource, strconv.Itoa(code)).Inc()
	if d > 0 {
		m.latency.WithLabelValues(verb, resource).Observe(d.Seconds())
	}
}

// instrumentedStore times every storage call.
type instrumentedStore struct {
	storage.Store
	m *metrics
}

func instrumentStore(s storage.Store, m *metrics) storage.Store {
	if s == nil {
		return nil
	}
	return instrumentedStore{Store: s, m: m}
}

func (s instrumentedStore) observe(op string, start time.Time) {
	s.m.etcd.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (s instrumentedStore) Get(ctx context.Context, key string) (storage.KV, error) {
	defer s.observe("get", time.Now())
	return s.Store.Get(ctx, key)
}

func (s instrumentedStore) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	defer s.observe("list", time.Now())
	return s.Store.List(ctx, prefix, opts)
}

func (s instrumentedStore) Create(ctx context.Context, key string, value []byte, opts ...storage.WriteOption) (int64, error) {
	defer s.observe("create", time.Now())
	return s.Store.Create(ctx, key, value, opts...)
}

func (s instrumentedStore) Update(ctx context.Context, key string, value []byte, rev int64, opts ...storage.WriteOption) (int64, error) {
	defer s.observe("update", time.Now())
	return s.Store.Update(ctx, key, value, rev, opts...)
}

func (s instrumentedStore) Delete(ctx context.Context, key string, rev int64) (storage.KV, error) {
	defer s.observe("delete", time.Now())
	return s.Store.Delete(ctx, key, rev)
}
