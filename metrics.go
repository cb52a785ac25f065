package mooring

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mooring-dev/mooring/content/errdef"
	"github.com/mooring-dev/mooring/remote"
	"github.com/mooring-dev/mooring/task"
)

// Metrics are the Prometheus metrics of an opened Mooring: what its
// syncs, task workers and registry caches did in this process, the state
// of the database it shares with other processes (task queue, uploads,
// workers online), and the HTTP requests a server reports through
// ObserveRequest. Serve them with Handler. Names start with "mooring_".
type Metrics struct {
	m        *Mooring
	registry *prometheus.Registry

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	sent     *prometheus.CounterVec

	syncs          *prometheus.CounterVec
	syncSeconds    *prometheus.HistogramVec
	syncBytes      prometheus.Counter
	syncBlobs      prometheus.Counter
	upstreamErrors *prometheus.CounterVec

	taskSeconds *prometheus.HistogramVec
}

func newMetrics(m *Mooring) *Metrics {
	mt := &Metrics{m: m, registry: prometheus.NewRegistry()}
	mt.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mooring_http_requests_total",
		Help: "HTTP requests answered, by service (api, content), route, method and status code.",
	}, []string{"service", "route", "method", "code"})
	mt.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mooring_http_request_duration_seconds",
		Help:    "Time from a request's arrival to the end of its response, by service, route and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"service", "route", "method"})
	mt.sent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mooring_http_response_bytes_total",
		Help: "Response body bytes sent, by service and route (blobs streamed included; redirected blobs are not).",
	}, []string{"service", "route"})
	mt.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mooring_syncs_total",
		Help: "Syncs run in this process, by result: changed (a new version), unchanged, failed or canceled.",
	}, []string{"result"})
	mt.syncSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mooring_sync_duration_seconds",
		Help:    "How long syncs took, by result.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2.5, 12), // 100ms .. ~6h
	}, []string{"result"})
	mt.syncBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mooring_sync_downloaded_bytes_total",
		Help: "Blob bytes syncs downloaded from upstream registries (blobs already stored are not downloaded).",
	})
	mt.syncBlobs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mooring_sync_downloaded_blobs_total",
		Help: "Blobs syncs downloaded from upstream registries.",
	})
	mt.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mooring_sync_upstream_errors_total",
		Help: "Syncs that failed talking to the upstream, by kind: unauthorized, not_found, rate_limited, server_error, client_error, timeout, tls, network, invalid_content, other.",
	}, []string{"kind"})
	mt.taskSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mooring_task_duration_seconds",
		Help:    "How long task handlers run in this process ran, by task name and final state.",
		Buckets: prometheus.ExponentialBuckets(0.01, 3, 13), // 10ms .. ~1.5h
	}, []string{"name", "state"})
	mt.registry.MustRegister(mt.requests, mt.latency, mt.sent, mt.syncs, mt.syncSeconds, mt.syncBytes, mt.syncBlobs,
		mt.upstreamErrors, mt.taskSeconds, &stateCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return mt
}

// Registry returns the Prometheus registry the metrics are in, to which
// an embedding program may add its own.
func (mt *Metrics) Registry() *prometheus.Registry { return mt.registry }

// Handler serves the metrics in Prometheus' text format (or OpenMetrics,
// when asked for), for GET /metrics.
func (mt *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(mt.registry, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// ObserveRequest records one HTTP request a server answered: its service
// ("api", "content"), route name, method, status code, response body
// bytes and duration. Methods other than the standard ones are counted as
// "OTHER", so a client cannot grow the label set.
func (mt *Metrics) ObserveRequest(service, route, method string, code int, bytes int64, elapsed time.Duration) {
	method = methodLabel(method)
	mt.requests.WithLabelValues(service, route, method, strconv.Itoa(code)).Inc()
	mt.latency.WithLabelValues(service, route, method).Observe(elapsed.Seconds())
	if bytes > 0 {
		mt.sent.WithLabelValues(service, route).Add(float64(bytes))
	}
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// observeSync is the Syncer's OnSync hook.
func (mt *Metrics) observeSync(res *remote.SyncResult, err error, elapsed time.Duration) {
	result := "unchanged"
	switch {
	case errors.Is(err, context.Canceled):
		result = "canceled"
	case err != nil:
		result = "failed"
		if kind := upstreamErrorKind(err); kind != "" {
			mt.upstreamErrors.WithLabelValues(kind).Inc()
		}
	case res.Version != nil:
		result = "changed"
	}
	mt.syncs.WithLabelValues(result).Inc()
	mt.syncSeconds.WithLabelValues(result).Observe(elapsed.Seconds())
	if res != nil {
		mt.syncBytes.Add(float64(res.BytesDownloaded))
		mt.syncBlobs.Add(float64(res.BlobsDownloaded))
	}
}

// upstreamOps are the steps of a sync that talk to the upstream.
var upstreamOps = map[string]bool{"list tags": true, "resolve tag": true, "fetch manifest": true, "download blob": true}

// upstreamErrorKind classifies why a sync's talk with its upstream
// failed; "" when the failure was not the upstream's.
func upstreamErrorKind(err error) string {
	var se *remote.SyncError
	if !errors.As(err, &se) || !upstreamOps[se.Op] {
		return ""
	}
	var ne net.Error
	var status interface{ HTTPStatus() int }
	switch {
	case errors.Is(err, errdef.ErrUnauthenticated), errors.Is(err, errdef.ErrDenied):
		return "unauthorized"
	case errors.As(err, &status):
		return statusKind(status.HTTPStatus())
	case errors.Is(err, errdef.ErrNotFound):
		return "not_found"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case isTLSError(err):
		return "tls"
	case errors.As(err, &ne):
		return "network"
	case errors.Is(err, errdef.ErrInvalid), errors.Is(err, errdef.ErrTooLarge):
		return "invalid_content"
	}
	if code := errdef.Status(err); code >= 400 && code < 600 && code != http.StatusInternalServerError {
		return statusKind(code)
	}
	return "other"
}

func statusKind(code int) string {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return "unauthorized"
	case code == http.StatusNotFound:
		return "not_found"
	case code == http.StatusTooManyRequests:
		return "rate_limited"
	case code >= 500:
		return "server_error"
	}
	return "client_error"
}

// stateCollector reads, at each scrape, what the database and the caches
// hold now.
type stateCollector struct{ m *Mooring }

var (
	tasksDesc     = prometheus.NewDesc("mooring_tasks", "Tasks not finished, by state: waiting (the queue depth) and running, across every process sharing the database.", []string{"state"}, nil)
	uploadsDesc   = prometheus.NewDesc("mooring_registry_uploads_in_progress", "Registry blob uploads started and not yet finished, across every process sharing the database.", nil, nil)
	workersDesc   = prometheus.NewDesc("mooring_task_workers_online", "Task workers whose heartbeat is recent, across every process sharing the database.", nil, nil)
	databaseDesc  = prometheus.NewDesc("mooring_database_up", "1 when the database answers, else 0.", nil, nil)
	storageDesc   = prometheus.NewDesc("mooring_storage_up", "1 when blob storage answers, else 0.", nil, nil)
	cacheHitsDesc = prometheus.NewDesc("mooring_registry_cache_hits_total", "Lookups the registry's caches answered without the database, by cache (manifests, tags, blobs).", []string{"cache"}, nil)
	cacheMissDesc = prometheus.NewDesc("mooring_registry_cache_misses_total", "Lookups the registry's caches sent to the database, by cache.", []string{"cache"}, nil)
	cacheSizeDesc = prometheus.NewDesc("mooring_registry_cache_entries", "Entries the registry's caches hold, by cache.", []string{"cache"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tasksDesc, uploadsDesc, workersDesc, databaseDesc, storageDesc, cacheHitsDesc, cacheMissDesc, cacheSizeDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := c.m.Check(ctx)
	ch <- prometheus.MustNewConstMetric(databaseDesc, prometheus.GaugeValue, up(h.Database))
	ch <- prometheus.MustNewConstMetric(storageDesc, prometheus.GaugeValue, up(h.Storage))
	if h.Database == nil {
		if q, err := c.m.Tasks.Queue(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(q.Waiting), "waiting")
			ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(q.Running), "running")
		}
		if n, err := c.m.Push.UploadsInProgress(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(uploadsDesc, prometheus.GaugeValue, float64(n))
		}
		if ws, err := c.m.Tasks.Workers(ctx, time.Now().Add(-c.m.workerTimeout)); err == nil {
			ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(len(ws)))
		}
	}
	st := c.m.Registry.CacheStats()
	for name, cc := range map[string]struct{ hits, misses uint64 }{
		"manifests": {st.Manifests.Hits, st.Manifests.Misses}, "tags": {st.Tags.Hits, st.Tags.Misses}, "blobs": {st.Blobs.Hits, st.Blobs.Misses},
	} {
		ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(cc.hits), name)
		ch <- prometheus.MustNewConstMetric(cacheMissDesc, prometheus.CounterValue, float64(cc.misses), name)
	}
	for name, n := range map[string]int{"manifests": st.Manifests.Entries, "tags": st.Tags.Entries, "blobs": st.Blobs.Entries} {
		ch <- prometheus.MustNewConstMetric(cacheSizeDesc, prometheus.GaugeValue, float64(n), name)
	}
}

func up(err error) float64 {
	if err != nil {
		return 0
	}
	return 1
}

// observeTask is the task Runner's OnFinish hook.
func (mt *Metrics) observeTask(name string, state task.State, ran time.Duration) {
	mt.taskSeconds.WithLabelValues(name, string(state)).Observe(ran.Seconds())
}

// isTLSError reports whether err is a failed TLS handshake or certificate
// check.
func isTLSError(err error) bool {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var header tls.RecordHeaderError
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &header)
}
