package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seatwatch/greenhouse-collector/events"
)

// metrics are the collector's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg             *prometheus.Registry
	syncs           *prometheus.CounterVec
	syncFailures    *prometheus.CounterVec
	syncDuration    *prometheus.HistogramVec
	requests        prometheus.Counter
	throttled       prometheus.Counter
	auditEvents     prometheus.Counter
	eventsPublished prometheus.Counter
	shardsOwned     prometheus.Gauge
	runsWaiting     *prometheus.GaugeVec
	apiRequests     *prometheus.CounterVec
	lastSuccess     *prometheus.GaugeVec
	publishFailures prometheus.Counter
	storeFailures   prometheus.Counter
	usersReads      *prometheus.CounterVec
	actionOutcomes  *prometheus.CounterVec
	own             []prometheus.Collector // the collector's own metrics (docs/api.md#metrics)
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		syncs: counterVec("collector_syncs_total",
			"Sync runs by kind (users, audit) and status (succeeded, failed, panic).", "kind", "status"),
		requests: counter("collector_greenhouse_requests_total", "Requests sent to Greenhouse."),
		syncFailures: counterVec("collector_sync_failures_total",
			"Failed sync runs by kind and error code: a Greenhouse check code, or storage_unavailable, nats_unavailable, client_unavailable for the collector's own dependencies.", "kind", "code"),
		throttled: counter("collector_greenhouse_throttled_total", "429 responses received from Greenhouse."),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "collector_sync_duration_seconds", Help: "Duration of sync runs by kind.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}, []string{"kind"}),
		auditEvents:     counter("collector_audit_events_stored_total", "Audit Log events written to ClickHouse (re-reads of overlaps included)."),
		shardsOwned:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "collector_shards_owned", Help: "Tenant shards leased by this replica."}),
		eventsPublished: counter("collector_events_published_total", "CloudEvents acknowledged by JetStream."),
		runsWaiting: gaugeVec("collector_runs_waiting",
			"Due syncs of owned tenants waiting for a worker, by class: first_sync (a tenant's first full sync) or routine.", "class"),
		publishFailures: counter("collector_publish_failures_total", "Publishes to JetStream that were not fully acknowledged (the step is retried later)."),
		apiRequests:     counterVec("collector_api_requests_total", "HTTP API requests by route and status code.", "route", "code"),
		storeFailures:   counter("collector_store_failures_total", "ClickHouse writes that failed (the step is retried later)."),
		usersReads: counterVec("collector_users_reads_total",
			"A tenant's users read by a users sync or an activity pass, by source: cache (held since this replica stored them) or clickhouse.", "source"),
		actionOutcomes: counterVec("collector_action_outcomes_total",
			"Users' outcomes of reclaim actions recorded, by action type and outcome.", "type", "outcome"),
		lastSuccess: gaugeVec("collector_tenant_last_success_timestamp_seconds",
			"End of the last successful sync per tenant and kind; time() minus it is the data's age.", "tenant", "kind"),
	}
	m.own = []prometheus.Collector{m.lastSuccess, m.publishFailures, m.storeFailures, m.syncs, m.syncFailures, m.syncDuration, m.requests,
		m.throttled, m.auditEvents, m.eventsPublished, m.shardsOwned, m.runsWaiting, m.apiRequests, m.actionOutcomes, m.usersReads}
	m.reg.MustRegister(m.own...)
	m.reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

func (m *metrics) observeRun(sum events.SyncSummary) {
	kind := string(sum.Kind)
	m.syncs.WithLabelValues(kind, string(sum.Status)).Inc()
	if sum.Status == events.RunFailed {
		m.syncFailures.WithLabelValues(kind, sum.ErrorCode).Inc()
	}
	m.syncDuration.WithLabelValues(kind).Observe(sum.FinishedAt.Sub(sum.StartedAt).Seconds())
	m.requests.Add(float64(sum.Requests))
	m.throttled.Add(float64(sum.Throttled))
	if sum.Status == events.RunSucceeded {
		m.lastSuccess.WithLabelValues(sum.TenantID, kind).Set(float64(sum.FinishedAt.Unix()))
	}
}

// forgetTenant deletes the tenant's series: a disconnected tenant is no longer listed.
func (m *metrics) forgetTenant(tenant string) {
	m.lastSuccess.DeletePartialMatch(prometheus.Labels{"tenant": tenant})
}
