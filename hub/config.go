package hub

import (
	"fmt"
	"log/slog"
	"reflect"

	"github.com/meshcast/meshcast/internal/relay"
	"github.com/meshcast/meshcast/transport"
)

// Config configures a Hub. Zero fields take the defaults of DefaultConfig;
// the config is not changed after New.
type Config struct {
	// NodeName is sent to clients in hello; default "meshcast". With a
	// Cluster the node's name is the cluster's (cluster.Config.NodeName):
	// leave this empty.
	NodeName string
	// Transport configures the WebSocket layer (limits, queues, pings).
	Transport transport.Config
	// Cluster joins this hub to other nodes: a *cluster.Cluster from
	// cluster.New. New starts it (and releases it if New fails), Ready
	// reports when the node has joined, and Shutdown closes the clients,
	// then leaves the cluster. Nil, or a nil *cluster.Cluster (a service
	// that creates one only when it has peers): a single node.
	Cluster relay.Cluster
	// MaxDataSize bounds the data of one publish (err 413). Default 32 KiB:
	// every byte of it is queued once per subscriber and forwarded to every
	// interested peer, so it stays well under the 1 MiB write queue.
	MaxDataSize int
	// MaxSubscriptions bounds the channels one connection may join (err
	// 429); default 1,024: a browser tab wants a handful, and each costs a
	// slot in a channel's subscriber list.
	MaxSubscriptions int
	// AllowedOrigins lists the Origin values a browser may connect from
	// ("https://example.com", or "*" for any), besides the request's own
	// host, which always may (the node's own pages). Empty: the own host and
	// localhost. Requests without an Origin (non-browser clients) pass.
	AllowedOrigins []string
	// HistoryMemory bounds the bytes of history this node keeps, for all
	// channels with history together (Namespace.History); past it the
	// oldest messages of the node go first. Default 256 MiB.
	HistoryMemory int64

	// Authenticator decides, before the upgrade, whether a request may
	// connect and as whom: user, channel patterns, expiry (Identity). A
	// *TokenVerifier checks JWTs; AuthenticatorFunc adapts a function.
	// Nil: every connection is anonymous.
	Authenticator Authenticator
	// Security configures channel permissions and limits (auth.go); the
	// zero value is an open hub.
	Security SecurityConfig

	// Events. Each is optional and runs on the goroutine of what caused it,
	// with no hub lock held, so it may call any Hub or Client method but
	// Shutdown, which waits for running hooks (start it on a goroutine of
	// its own: go h.Shutdown(ctx)). A
	// client's requests are handled one at a time: the hooks of one client
	// never overlap and come in order, OnConnect first (before its first
	// request is read) and OnDisconnect last (after an OnUnsubscribe for
	// each channel it was still in). Client.Subscribe and
	// Client.Unsubscribe run OnSubscribe and OnUnsubscribe on the caller's
	// goroutine. A client waits for its hooks: keep them fast.
	OnConnect     func(c *Client)
	OnDisconnect  func(c *Client, reason *transport.CloseError)
	OnSubscribe   func(c *Client, ch string)
	OnUnsubscribe func(c *Client, ch string)
	// OnUserOnline and OnUserOffline report a user's first connection on
	// any node of the cluster and the end of its last one (node deaths
	// included), on one goroutine of the hub, in order per user (online.go).
	// Set them on every node: a node without them does not report its
	// users to the others.
	OnUserOnline  func(user string)
	OnUserOffline func(user string)

	// Decisions. A hook that is set replaces the built-in namespace and
	// personal-channel rules (c.CanSubscribe, c.CanPublish), which it may
	// call to refine them. A non-nil error refuses with err 403 and the
	// error's text, or with the Code and Reason of a *hub.Error (whose
	// Err the client never sees). Origin checks, limits and the reserved
	// "$" prefix apply whatever they say.
	AuthorizeSubscribe func(c *Client, ch string) error
	AuthorizePublish   func(c *Client, ch string, data []byte) error

	// Observer, if set, receives timings for histograms (sub-ack wait,
	// publish to local enqueue); package metrics has one for Prometheus.
	// Nil costs nothing.
	Observer Observer

	// Logger receives the hub's logs (and the cluster's, unless
	// cluster.Config.Logger is set); nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		Transport:        transport.DefaultConfig(),
		MaxDataSize:      32 << 10,
		MaxSubscriptions: 1024,
		HistoryMemory:    256 << 20,
	}
}

// withDefaults fills zero fields from DefaultConfig and rejects values
// that cannot be meant.
func (cfg Config) withDefaults() (Config, error) {
	if isNilCluster(cfg.Cluster) {
		cfg.Cluster = nil
	}
	l := cfg.live()
	if err := l.normalize(); err != nil {
		return cfg, err
	}
	cfg.Security, cfg.MaxDataSize, cfg.MaxSubscriptions = l.Security, l.MaxDataSize, l.MaxSubscriptions
	if cfg.HistoryMemory < 0 {
		return cfg, fmt.Errorf("%w: negative HistoryMemory", ErrInvalidConfig)
	}
	if cfg.HistoryMemory == 0 {
		cfg.HistoryMemory = DefaultConfig().HistoryMemory
	}
	if cfg.NodeName == "" && cfg.Cluster == nil {
		cfg.NodeName = "meshcast"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport.Logger == nil {
		cfg.Transport.Logger = cfg.Logger
	}
	return cfg, nil
}

// isNilCluster reports whether cl is nil or a nil pointer in the interface:
// var cl *cluster.Cluster, left nil on a single node, is not == nil once in
// Config.Cluster, and calling it would panic.
func isNilCluster(cl relay.Cluster) bool {
	if cl == nil {
		return true
	}
	v := reflect.ValueOf(cl)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
