package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/memberlist"

	"github.com/meshcast/meshcast/cluster"
	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/js"
	"github.com/meshcast/meshcast/transport"
)

//go:embed web
var webFS embed.FS

// node is one running meshcast: the HTTP listener, the hub and the cluster.
type node struct {
	log      *slog.Logger
	hub      *hub.Hub
	cluster  *cluster.Cluster
	http     *http.Server
	listener net.Listener
	tls      *tlsSetup  // tls.go: certificates reloaded on SIGHUP
	conns    *connLimit // httpserver.go: connections not upgraded (yet); its limits reloadable
	metrics  *nodeMetrics
	api      *swapHandler // the server API, its key reloadable

	// reloadMu serialises reloads (reload.go); cfg is the configuration
	// in force, which only reload replaces.
	reloadMu sync.Mutex
	cfg      config
	ready    atomic.Bool
	served   chan error

	stopOnce sync.Once
	stopErr  error
}

// nodeOptions are knobs tests set that have no flag.
type nodeOptions struct {
	memberlist func(*memberlist.Config)
	http       httpTimeouts
}

// startNode binds every listener, joins the cluster in the background and
// serves. Errors name the flag to fix.
func startNode(cfg config, log *slog.Logger, opts nodeOptions) (_ *node, err error) {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", cfg.listen, err)
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	ts, err := cfg.tls.setup()
	if err != nil {
		return nil, err
	}
	ln = ts.listen(ln)
	m, err := newNodeMetrics() // metrics.go
	if err != nil {
		return nil, err
	}
	if err := m.listen(cfg.metricsListen); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	hcfg, err := cfg.hubConfig(log) // reads every key and rule file first
	if err != nil {
		return nil, err
	}
	hcfg.Observer = m.hist
	cl, err := cfg.newCluster(ts, log, opts, m.hist)
	if err != nil {
		return nil, err
	}
	hcfg.Cluster = cl
	h, err := hub.New(hcfg) // starts the cluster; releases it if it fails
	if err != nil {
		return nil, err
	}
	conns := newConnLimit(cfg.security.maxConnections, cfg.security.maxConnectionsPerIP)
	if err = m.register(h, cl, conns); err != nil {
		_ = h.Shutdown(context.Background())
		return nil, err
	}
	n := &node{log: log, hub: h, cluster: cl, listener: ln, tls: ts, conns: conns, metrics: m, cfg: cfg, served: make(chan error, 1)}
	n.api = newSwapHandler(hub.NewAPI(h, cfg.security.key))
	m.serve(log)
	n.http = newHTTPServer(routesWithAPI(n.routes(cfg), n.api), log, opts.http, n.conns) // + the server API
	go func() { n.served <- n.http.Serve(ln) }()
	n.ready.Store(true)
	attrs := []any{
		slog.String("node", cl.Name()),
		slog.String("http", ts.scheme()+"://"+browsable(ln.Addr())),
		slog.Int("gossip_port", cl.GossipPort()),
		slog.Int("peer_port", cl.PeerPort()),
	}
	if h.Standing() != nil {
		// Listening, but clients get 503 until the cluster says ready.
		attrs = append(attrs, slog.String("standing", cl.Stats().Standing))
	}
	log.Info("meshcast serving", attrs...)
	return n, nil
}

// newCluster binds the gossip and peer ports; hub.New starts it.
func (cfg *config) newCluster(ts *tlsSetup, log *slog.Logger, opts nodeOptions, obs cluster.Observer) (*cluster.Cluster, error) {
	secret, err := cfg.strongSecret()
	if err != nil {
		return nil, err
	}
	ccfg := cluster.DefaultConfig()
	ccfg.NodeName = cfg.name
	ccfg.GossipAddr = cfg.gossip
	ccfg.PeerAddr = cfg.peer
	ccfg.AdvertiseAddr = cfg.advertise
	ccfg.Join = splitList(cfg.join)
	ccfg.Secret = secret
	ccfg.TLS = ts.peerConfig
	ccfg.ClusterName = cfg.clusterName
	ccfg.JoinTimeout = cfg.joinTimeout
	ccfg.ReconnectInterval = cfg.reconnectInterval
	ccfg.ReconnectTimeout = cfg.reconnectTimeout
	ccfg.Replicas = cfg.historyReplicas
	ccfg.Memberlist = opts.memberlist
	ccfg.Observer = obs
	ccfg.Logger = log.With(slog.String("component", "cluster"))
	cl, err := cluster.New(ccfg)
	if errors.Is(err, syscall.EADDRINUSE) {
		// Mostly a second node on one machine, started with the defaults.
		return nil, fmt.Errorf("%w (another node on this machine? each needs its own --gossip and --peer ports)", err)
	}
	return cl, err
}

// hubConfig is the hub's config from the flags, security included.
func (cfg *config) hubConfig(log *slog.Logger) (hub.Config, error) {
	tcfg := transport.DefaultConfig()
	tcfg.MaxMessageSize = cfg.maxMessage
	tcfg.WriteQueueSize = cfg.writeQueue
	tcfg.NoIOURing = !cfg.ioURing
	tcfg.PingInterval = cfg.pingInterval
	hcfg := hub.DefaultConfig()
	hcfg.Transport = tcfg
	hcfg.MaxDataSize = cfg.maxData
	hcfg.MaxSubscriptions = cfg.maxSubscriptions
	hcfg.HistoryMemory = int64(cfg.historyMemory) << 20
	hcfg.AllowedOrigins = splitList(cfg.allowedOrigins)
	hcfg.Logger = log.With(slog.String("component", "hub"))
	return hcfg, cfg.security.apply(&hcfg, log) // security.go: tokens, permissions, limits
}

func (n *node) routes(cfg config) http.Handler {
	mux := http.NewServeMux()
	if cfg.metricsListen == "" {
		mux.Handle("GET /metrics", n.metrics.handler(n.log))
	}
	if cfg.pprof {
		mux.HandleFunc("GET /debug/pprof/", httppprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", httppprof.Trace)
	}
	mux.Handle("/ws", n.hub) // any method: the hub refuses what is not an upgrade, in JSON
	web, _ := fs.Sub(webFS, "web")
	mux.Handle("/", staticHandler(web))
	mux.Handle("GET /meshcast.js", js.Handler()) // the JavaScript client, which the demo page imports
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.HandleFunc("GET /api/cluster", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, n.cluster.Stats())
	})
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			hub.Stats
			Goroutines  int    `json:"goroutines"`
			HTTPRefused uint64 `json:"http_refused"` // connections closed over a limit before any request
		}{n.hub.Stats(), runtime.NumGoroutine(), n.conns.refused.Load()})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// readyz answers 200 while the node serves, and 503 with what keeps it from
// serving otherwise: draining, joining, isolated, resyncing.
func (n *node) readyz(w http.ResponseWriter, r *http.Request) {
	if !n.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	if err := n.hub.Standing(); err != nil {
		st := n.cluster.Stats()
		reason := st.StandingReason // without the error's package prefixes
		if st.Standing == "ready" || reason == "" {
			reason = err.Error()
		}
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": st.Standing, "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// shutdown drains: readiness off, stop accepting, close every client with
// 1001, leave the cluster, all within ctx. Later calls return the first
// call's result.
func (n *node) shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() { n.stopErr = n.drain(ctx) })
	return n.stopErr
}

func (n *node) drain(ctx context.Context) error {
	n.ready.Store(false)
	var errs []error
	if err := n.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	if err := n.hub.Shutdown(ctx); err != nil { // clients, then the cluster
		errs = append(errs, fmt.Errorf("hub: %w", err))
	}
	if err := <-n.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	// Last, so the final counters of a drain can still be scraped.
	if err := n.metrics.shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// browsable is addr as a browser on this machine can open it: a listener
// on every interface ([::]:8080) is localhost:8080.
func browsable(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("localhost", strconv.Itoa(tcp.Port))
}
