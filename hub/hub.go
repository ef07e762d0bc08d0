package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/meshcast/meshcast/internal/relay"
	"github.com/meshcast/meshcast/transport"
)

// Config configures a Hub. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// NodeName is sent to clients in hello; default "meshcast". With a
	// Cluster the node's name is the cluster's (cluster.Config.NodeName):
	// leave this empty.
	NodeName string
	// Transport configures the WebSocket layer (limits, queues, pings).
	Transport transport.Config
	// Cluster joins this hub to other nodes: a *cluster.Cluster from
	// cluster.New. hub.New starts it (and releases it if New fails), Ready
	// reports when it has joined, and Shutdown closes the clients, then
	// leaves the cluster. Nil: a single node.
	Cluster relay.Cluster
	// MaxDataSize bounds the data of one publish (err 413). Default 32 KiB:
	// every byte of it is queued once per subscriber and forwarded to every
	// interested peer, so it stays well under the 1 MiB write queue.
	MaxDataSize int
	// MaxSubscriptions bounds the channels one connection may join (err
	// 429); default 1,024.
	MaxSubscriptions int
	// AllowedOrigins lists the Origin values a browser may connect from
	// ("https://example.com", or "*" for any). Empty: the request's own host
	// and localhost. Requests without an Origin (non-browser clients) pass.
	AllowedOrigins []string

	// Security configures token auth, channel permissions and limits
	// (auth.go); the zero value is an open hub.
	Security SecurityConfig

	// The hooks override the built-in decisions: a hook that is set is
	// called instead of the built-in decision it names, and may call that
	// decision itself (TokenResult, ClientInfo.CanSubscribe,
	// ClientInfo.CanPublish) to refine it. Origin checks, limits and the
	// reserved "$" prefix are applied whatever the hooks say.
	//
	// Authorize decides whether an upgrade request may connect and names
	// its user, instead of the token check. Returning an error refuses with
	// HTTP 403, or the status of an *HTTPError.
	Authorize func(r *http.Request) (user string, err error)
	// AuthorizeSubscribe and AuthorizePublish refuse an operation with err
	// 403 and the error's text as reason, instead of the namespace rules.
	// They run on the connection's read path: keep them fast.
	AuthorizeSubscribe func(c ClientInfo, ch string) error
	AuthorizePublish   func(c ClientInfo, ch string, data []byte) error

	Logger *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		Transport:        transport.DefaultConfig(),
		MaxDataSize:      32 << 10,
		MaxSubscriptions: 1024,
	}
}

// ClientInfo describes a connection to the hooks.
type ClientInfo struct {
	ID         string  // unique on this node, sent in hello
	User       string  // the token's sub or Authorize's user; empty for anonymous clients
	Claims     *Claims // the verified token; nil without one
	RemoteAddr string
	Origin     string // the upgrade request's Origin header; empty from non-browsers

	s *session // for CanSubscribe and CanPublish
}

// HTTPError lets Authorize choose the HTTP status of a refusal.
type HTTPError struct {
	Status int
	Reason string
}

func (e *HTTPError) Error() string { return e.Reason }

// Errors of Publish.
var (
	ErrBadChannel = errors.New("hub: invalid channel name")
	ErrBadData    = errors.New("hub: data is not a single valid JSON value")
	ErrTooLarge   = errors.New("hub: data is larger than MaxDataSize")
	ErrClosed     = errors.New("hub: closed")
	// ErrUnavailable: this node is not a member in good standing of its
	// cluster (joining, isolated, re-verifying after a stall), so it
	// refuses what it could not deliver cluster-wide; the error says why.
	ErrUnavailable = errors.New("hub: cluster unavailable")
)

// Hub is a node's set of client sessions and channels. It is an
// http.Handler for the WebSocket endpoint: mount it where clients connect.
type Hub struct {
	cfg       Config
	log       *slog.Logger
	relay     relay.Relay
	transport *transport.Server
	reg       *registry
	idPrefix  string
	nextID    atomic.Uint64
	metrics   metrics
	sec       hubSecurity

	ctx    context.Context // ends at Shutdown; bounds relay waits
	cancel context.CancelFunc
	wg     sync.WaitGroup // interest waits
	closed atomic.Bool
}

type metrics struct {
	sessions         atomic.Int64
	connects         atomic.Uint64
	publishes        atomic.Uint64
	remoteDeliveries atomic.Uint64
	deliveries       atomic.Uint64
	badRequests      atomic.Uint64
	interestTimeouts atomic.Uint64
	refused          atomic.Uint64
	unavailable      atomic.Uint64 // requests refused with 503: not in good standing
	gaps             atomic.Uint64 // gap frames sent to subscribers
}

// New builds a hub, starts its transport and, with cfg.Cluster, starts the
// cluster with this hub as its receiver. With a cluster the hub serves
// once the node has joined (Ready).
func New(cfg Config) (*Hub, error) {
	def := DefaultConfig()
	if cfg.NodeName == "" && cfg.Cluster == nil {
		cfg.NodeName = "meshcast"
	}
	if cfg.MaxDataSize <= 0 {
		cfg.MaxDataSize = def.MaxDataSize
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = def.MaxSubscriptions
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport.Logger == nil {
		cfg.Transport.Logger = cfg.Logger
	}
	ts, err := transport.NewServer(cfg.Transport)
	if err != nil {
		releaseCluster(cfg.Cluster)
		return nil, fmt.Errorf("hub: %w", err)
	}
	var prefix [4]byte
	_, _ = rand.Read(prefix[:])
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		cfg:       cfg,
		log:       cfg.Logger,
		relay:     localRelay{name: cfg.NodeName},
		transport: ts,
		reg:       newRegistry(),
		idPrefix:  hex.EncodeToString(prefix[:]),
		ctx:       ctx,
		cancel:    cancel,
	}
	if err := h.attach(cfg.Cluster); err != nil {
		cancel()
		_ = ts.Shutdown(context.Background())
		return nil, err
	}
	h.initSecurity()
	return h, nil
}

// attach starts the cluster with this hub as its receiver.
func (h *Hub) attach(cl relay.Cluster) error {
	if cl == nil {
		return nil
	}
	r, err := cl.Attach(receiver{h}, h.log)
	if err != nil {
		releaseCluster(cl)
		return fmt.Errorf("hub: start cluster: %w", err)
	}
	if name := h.cfg.NodeName; name != "" && name != r.Name() {
		_ = r.Shutdown(context.Background())
		return fmt.Errorf("hub: NodeName %q is not the cluster's name %q: name the node in cluster.Config only", name, r.Name())
	}
	h.cfg.NodeName = r.Name()
	h.relay = r
	return nil
}

// releaseCluster shuts down a cluster hub.New will not use.
func releaseCluster(cl relay.Cluster) {
	if cl != nil {
		_ = cl.Shutdown(context.Background())
	}
}

// ServeHTTP upgrades a client to the WebSocket protocol. Origin, limits
// and the token (or the Authorize hook) are checked before the upgrade
// (admit, auth.go).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.closed.Load() {
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	if err := h.relay.Standing(); err != nil {
		h.metrics.unavailable.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "node not ready: "+err.Error())
		return
	}
	info, ok := h.admit(w, r)
	if !ok {
		return
	}
	info.ID = h.newClientID()
	s := &session{hub: h, info: info}
	s.info.s = s
	if _, err := h.transport.Upgrade(w, r, s); err != nil {
		h.sec.conns.release(r.RemoteAddr) // no OnClose will come
		h.log.Debug("upgrade failed", slog.String("remote", r.RemoteAddr), slog.Any("err", err))
	}
}

func (h *Hub) newClientID() string {
	return h.idPrefix + strconv.FormatUint(h.nextID.Add(1), 36)
}

// Publish sends data, which must be one valid JSON value, to every
// subscriber of ch on every node. It returns once the local deliveries are
// queued and the publish is handed to the relay; it does not block on any
// subscriber.
func (h *Hub) Publish(ctx context.Context, ch string, data []byte) error {
	return h.Broadcast(ctx, []string{ch}, data)
}

// serving reports why the hub cannot take a request now: closed, or not a
// member in good standing of its cluster.
func (h *Hub) serving(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if h.closed.Load() {
		return ErrClosed
	}
	if err := h.relay.Standing(); err != nil {
		h.metrics.unavailable.Add(1)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// publish encodes the msg frame once, queues it to every local subscriber
// and hands the same bytes to the relay.
func (h *Hub) publish(ch string, data []byte) {
	h.metrics.publishes.Add(1)
	frame, kept := msgFrame(ch, data)
	h.fanOut(ch, frame)
	h.relay.Publish(ch, kept)
}

// deliver takes a publish that arrived from another node: it goes to local
// subscribers only, never back to the cluster. data is a valid JSON value,
// only read during the call.
func (h *Hub) deliver(ch string, data []byte) {
	if isReserved(ch) {
		h.deliverSystem(ch, data)
		return
	}
	h.metrics.remoteDeliveries.Add(1)
	frame, _ := msgFrame(ch, data)
	h.fanOut(ch, frame)
}

func (h *Hub) fanOut(ch string, frame []byte) {
	subs := h.reg.snapshot(ch)
	for _, s := range subs {
		s.send(frame)
	}
	h.metrics.deliveries.Add(uint64(len(subs)))
}

// gap tells the local subscribers of each channel that they may have
// missed publishes on it (the cluster found a broken link, a dead peer, a
// dropped frame). Subscribes not acked yet are skipped: nothing was
// promised to them. Reserved channels have no clients to tell.
func (h *Hub) gap(chs []string) {
	for _, ch := range chs {
		if isReserved(ch) {
			continue
		}
		subs := h.reg.snapshot(ch)
		if len(subs) == 0 {
			continue
		}
		frame := gapFrame(ch)
		for _, s := range subs {
			if s.confirmedOn(ch) {
				s.send(frame)
				h.metrics.gaps.Add(1)
			}
		}
	}
}

// Ready blocks until the node is a member in good standing of its cluster
// (at once without a cluster), or ctx ends.
func (h *Hub) Ready(ctx context.Context) error {
	if h.closed.Load() {
		return ErrClosed
	}
	return h.relay.Ready(ctx)
}

// Standing is nil while the node serves: not closed, and a member in good
// standing of its cluster. Otherwise it says why (for readiness probes).
func (h *Hub) Standing() error {
	return h.serving(context.Background())
}

func (h *Hub) sessionOpened() {
	h.metrics.sessions.Add(1)
	h.metrics.connects.Add(1)
}

func (h *Hub) sessionClosed(s *session, err error) {
	h.metrics.sessions.Add(-1)
	h.log.Debug("client gone", slog.String("client", s.info.ID), slog.Any("why", err))
}

// Shutdown refuses new clients, closes every connection with 1001 "going
// away", then leaves the cluster (flushing the peer links first) and waits
// for the hub's goroutines, or until ctx ends. It is idempotent.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.closed.Store(true)
	err := errors.Join(h.transport.Shutdown(ctx), h.relay.Shutdown(ctx))
	h.cancel()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Stats is a snapshot of the hub's counters.
type Stats struct {
	Sessions         int64           `json:"sessions"`
	Connects         uint64          `json:"connects"`
	Channels         int             `json:"channels"`
	Publishes        uint64          `json:"publishes"`
	RemoteDeliveries uint64          `json:"remote_publishes"`
	Deliveries       uint64          `json:"deliveries"`
	BadRequests      uint64          `json:"bad_requests"`
	InterestTimeouts uint64          `json:"interest_timeouts"`
	Refused          uint64          `json:"refused"`
	Unavailable      uint64          `json:"unavailable"` // upgrades, subs and pubs refused with 503 while not in good standing
	Gaps             uint64          `json:"gaps"`        // gap frames sent to subscribers
	Transport        transport.Stats `json:"transport"`
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	m := &h.metrics
	return Stats{
		Sessions:         m.sessions.Load(),
		Connects:         m.connects.Load(),
		Channels:         h.reg.count(),
		Publishes:        m.publishes.Load(),
		RemoteDeliveries: m.remoteDeliveries.Load(),
		Deliveries:       m.deliveries.Load(),
		BadRequests:      m.badRequests.Load(),
		InterestTimeouts: m.interestTimeouts.Load(),
		Refused:          m.refused.Load(),
		Unavailable:      m.unavailable.Load(),
		Gaps:             m.gaps.Load(),
		Transport:        h.transport.Stats(),
	}
}
