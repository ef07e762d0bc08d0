package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/metrics"
)

// version is set at release builds: -ldflags "-X main.version=v1.2.3".
// Without it the module version (or "devel") is reported.
var version string

// nodeMetrics is a node's Prometheus registry, its own and not the global
// one, so tests can run several nodes in one process.
type nodeMetrics struct {
	reg  *prometheus.Registry
	hist *metrics.Histograms
	// srv serves /metrics on --metrics-listen; nil when /metrics is on
	// --listen.
	srv    *http.Server
	ln     net.Listener
	served chan error
}

// newNodeMetrics creates the registry and the histograms, which the hub
// and the cluster need before they exist themselves.
func newNodeMetrics() (*nodeMetrics, error) {
	m := &nodeMetrics{reg: prometheus.NewRegistry()}
	var err error
	if m.hist, err = metrics.NewHistograms(m.reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return m, nil
}

// register adds the collectors that read the running node.
func (m *nodeMetrics) register(h *hub.Hub, cl *cluster.Cluster, conns *connLimit) error {
	return errors.Join(
		m.reg.Register(metrics.NewCollector(metrics.Sources{Hub: h.Stats, Cluster: cl.Stats, History: historySource(h), Presence: presenceSource(h)})),
		m.reg.Register(httpRefusedCounter(conns)),
		m.reg.Register(metrics.NewBuildInfoCollector(metrics.ReadBuildInfo(version))),
		m.reg.Register(collectors.NewGoCollector()),
		m.reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	)
}

// httpRefusedCounter exports the connections the pre-upgrade limit
// closed (httpserver.go), /api/stats' http_refused.
func httpRefusedCounter(l *connLimit) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "meshcast_http_refused_total",
		Help: "HTTP connections closed before any request, over --max-connections or --max-connections-per-ip (not upgraded yet).",
	}, func() float64 { return float64(l.refused.Load()) })
}

func (m *nodeMetrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// A scrape that fails halfway still shows what it gathered.
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// listen binds --metrics-listen, if set, before the node starts serving,
// so a port in use fails the start.
func (m *nodeMetrics) listen(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	m.ln = ln
	return nil
}

// serve serves /metrics on the --metrics-listen listener, if bound.
func (m *nodeMetrics) serve(log *slog.Logger) {
	if m.ln == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.handler(log))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	m.served = make(chan error, 1)
	go func() { m.served <- m.srv.Serve(m.ln) }()
}

// close releases the listener of a node that failed to start.
func (m *nodeMetrics) close() {
	if m.ln != nil && m.srv == nil {
		m.ln.Close()
	}
}

// shutdown stops the --metrics-listen server and waits for it.
func (m *nodeMetrics) shutdown(ctx context.Context) error {
	if m.srv == nil {
		return nil
	}
	err := m.srv.Shutdown(ctx)
	if serr := <-m.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

// historySource is the node's history figures for the metrics.
func historySource(h *hub.Hub) func() metrics.HistoryStats {
	return func() metrics.HistoryStats {
		s := h.HistoryStats()
		return metrics.HistoryStats{
			Channels: s.Channels, Messages: s.Messages, Bytes: s.Bytes, Evicted: s.EvictedForMemory,
			Recoveries: s.Recoveries, RecoveriesPartial: s.RecoveriesPartial,
			Refills: s.Refills, RefillsIncomplete: s.RefillsIncomplete, NotStored: s.NotStored,
		}
	}
}

// presenceSource is the node's presence table sizes for the metrics.
func presenceSource(h *hub.Hub) func() metrics.PresenceStats {
	return func() metrics.PresenceStats {
		p := h.PresenceCounts()
		return metrics.PresenceStats{Channels: p.Channels, Members: p.Entries}
	}
}
