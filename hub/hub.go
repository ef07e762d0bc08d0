package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/meshcast/meshcast/transport"
)

// Config configures a Hub. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// NodeName is sent to clients in hello; default "meshcast".
	NodeName string
	// Transport configures the WebSocket layer (limits, queues, pings).
	Transport transport.Config
	// Relay connects the hub to the rest of a cluster; nil means a single
	// node.
	Relay Relay
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
		NodeName:         "meshcast",
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
)

// Hub is a node's set of client sessions and channels. It is an
// http.Handler for the WebSocket endpoint: mount it where clients connect.
type Hub struct {
	cfg       Config
	log       *slog.Logger
	relay     Relay
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
}

// New builds a hub and starts its transport.
func New(cfg Config) (*Hub, error) {
	def := DefaultConfig()
	if cfg.NodeName == "" {
		cfg.NodeName = def.NodeName
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
	relay := cfg.Relay
	if relay == nil {
		relay = localRelay{}
	}
	ts, err := transport.NewServer(cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	var prefix [4]byte
	_, _ = rand.Read(prefix[:])
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		cfg:       cfg,
		log:       cfg.Logger,
		relay:     relay,
		transport: ts,
		reg:       newRegistry(),
		idPrefix:  hex.EncodeToString(prefix[:]),
		ctx:       ctx,
		cancel:    cancel,
	}
	h.initSecurity()
	return h, nil
}

// ServeHTTP upgrades a client to the WebSocket protocol. Origin, limits
// and the token (or the Authorize hook) are checked before the upgrade
// (admit, auth.go).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.closed.Load() {
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
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
	if err := ctx.Err(); err != nil {
		return err
	}
	if h.closed.Load() {
		return ErrClosed
	}
	if reason := validChannel(ch); reason != "" {
		return fmt.Errorf("%w: %s", ErrBadChannel, reason)
	}
	if isReserved(ch) {
		return ErrReserved
	}
	if len(data) > h.cfg.MaxDataSize {
		return ErrTooLarge
	}
	if !json.Valid(data) {
		return ErrBadData
	}
	h.publish(ch, data)
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

// Deliver hands the hub a publish that arrived from another node: it goes
// to local subscribers only, never back to the cluster. data is a valid
// JSON value, only read during the call.
func (h *Hub) Deliver(ch string, data []byte) {
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

func (h *Hub) sessionOpened() {
	h.metrics.sessions.Add(1)
	h.metrics.connects.Add(1)
}

func (h *Hub) sessionClosed(s *session, err error) {
	h.metrics.sessions.Add(-1)
	h.log.Debug("client gone", slog.String("client", s.info.ID), slog.Any("why", err))
}

// Shutdown refuses new clients, closes every connection with 1001 "going
// away" and waits for the hub's goroutines, or until ctx ends. It is
// idempotent.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.closed.Store(true)
	err := h.transport.Shutdown(ctx)
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
		Transport:        h.transport.Stats(),
	}
}
