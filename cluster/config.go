package cluster

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/memberlist"
)

// ProtocolVersion is the peer-link protocol version, sent in node metadata
// and checked in the handshake. Bump it on any incompatible frame change.
// Version 2: publishes carry no origin; links end with a bye, report
// dropped publishes with a gap frame, and carry re-verification marks.
// Version 3: the dialer proves the secret first; the acceptor's proof comes
// in the welcome (handshake.go).
// Version 4: history frames (13-16) and presence frames (20-21); a version
// 3 node would close the link on the first one.
// Version 5: presence goes only to the peers that want the channel: an
// interest add (and snapshot) says which channels are presence channels,
// and is answered with the acceptor's entries of them (frame 22, which
// replaces the whole-presence frame 21); presence queries (23-24). A
// version 4 node would wait for presence that never comes.
const ProtocolVersion uint8 = 5

// Config configures a Cluster. Zero fields get the defaults of DefaultConfig;
// the config is not changed after New.
type Config struct {
	// NodeName is unique per node; default hostname + ":" + peer port.
	NodeName string
	// GossipAddr is the memberlist bind "host:port" (TCP and UDP); default
	// ":7946", memberlist's usual port. Port 0 picks a free port.
	GossipAddr string
	// PeerAddr is the peer-link TCP listen "host:port"; default ":7947".
	// Port 0 picks a free port.
	PeerAddr string
	// AdvertiseAddr is the host (IP or name) other nodes use to reach this
	// one, for both gossip and peer links; default: the bind address, or a
	// private IP when bound to all interfaces.
	AdvertiseAddr string
	// Join lists seeds "host:port". A name resolving to several addresses
	// joins them all (Kubernetes headless Service). A node with seeds is not
	// ready (see Cluster.Standing) until it has joined one and linked with
	// every member, or JoinTimeout passed; it keeps retrying after that.
	Join []string
	// JoinTimeout bounds how long a node with seeds waits to join and link
	// before it serves anyway (loudly logged); default 10 s: enough for a
	// slow DNS answer and a few retries, short enough that the first node of
	// a cluster whose seeds all point at each other starts on its own.
	JoinTimeout time.Duration
	// ReconnectInterval is how often a node tries to rejoin the members it
	// saw fail (not those that left) and the seeds that are not members;
	// default 2 s, so a healed partition converges within a few seconds.
	// An attempt is one TCP connect to the member's gossip port, then a
	// memberlist push/pull if it answers.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is retried and counted
	// as expected (see Standing) before it is forgotten; default 24 h, as
	// serf does.
	ReconnectTimeout time.Duration
	// Secret is the cluster secret. Empty means an open cluster (a warning
	// is logged). It keys the memberlist keyring (AES-256-GCM, key derived
	// with HKDF-SHA256) and the peer-link handshake (HMAC-SHA256); it never
	// crosses the wire, but gossip ciphertext lets whoever captures it
	// guess offline, so use at least 16 random bytes (cmd/meshcast refuses
	// less than 128 bits).
	Secret []byte
	// ClusterName is checked in the peer handshake and is the memberlist
	// Label, so two clusters on one network never merge; default "meshcast".
	ClusterName string
	// InterestTimeout bounds AwaitInterest; default 2 s, long enough for a
	// reconnect plus snapshot on a LAN, short enough for a client waiting
	// for its sub ack.
	InterestTimeout time.Duration
	// LinkQueueSize is the number of frames queued per peer link; default
	// 32768 (about 4 MiB of 100-byte publishes, shared between links since
	// a publish is encoded once). Full: publishes are dropped and counted,
	// an interest message resets the link.
	LinkQueueSize int
	// MaxFrameSize bounds one peer frame (length prefix value); default 1 MiB.
	MaxFrameSize int
	// Replicas is how many nodes hold a publish on a channel with history
	// before it is acked, the publishing node included; default 2, so an
	// acked publish survives any one node's death. The peers that want the
	// channel store it anyway; when fewer of them are linked, backups
	// chosen by rendezvous hashing do. A cluster with fewer live nodes
	// keeps as many copies as it has nodes.
	Replicas int
	// HandshakeTimeout bounds the peer-link handshake (TLS included);
	// default 5 s.
	HandshakeTimeout time.Duration
	// TLS, when set, runs every peer link over TLS with this config on both
	// ends: the acceptor uses it as its server config, the dialer as its
	// client config (see tls.go for how the dialer checks the peer). Build it
	// with MutualTLS for mutual authentication against a private CA. The
	// secret handshake still runs, inside TLS. Nil: plain TCP. Gossip is not
	// affected (the Secret encrypts it).
	TLS *tls.Config
	// Memberlist, when set, adjusts the memberlist config after the cluster
	// filled it in from memberlist.DefaultLANConfig (tests shorten timings).
	// The bind address and transport are fixed by New and must not change.
	Memberlist func(*memberlist.Config)
	// Observer, if set, receives the peer-link round trips (observe.go);
	// package metrics has one for Prometheus. Nil costs nothing.
	Observer Observer
	// Logger receives the cluster's and memberlist's logs; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults New applies to zero fields.
func DefaultConfig() Config {
	return Config{
		GossipAddr:       ":7946",
		PeerAddr:         ":7947",
		ClusterName:      "meshcast",
		InterestTimeout:  2 * time.Second,
		LinkQueueSize:    32768,
		MaxFrameSize:     1 << 20,
		Replicas:         2,
		HandshakeTimeout: 5 * time.Second,

		JoinTimeout:       10 * time.Second,
		ReconnectInterval: 2 * time.Second,
		ReconnectTimeout:  24 * time.Hour,
	}
}

// Sentinel errors callers may branch on.
var (
	// ErrInterestTimeout: a subscribe was not acknowledged by every live
	// peer within InterestTimeout.
	ErrInterestTimeout = errors.New("cluster: interest not acknowledged by every peer in time")
	// ErrJoining: the node has not joined its seeds and linked with every
	// member yet (Standing).
	ErrJoining = errors.New("cluster: joining")
	// ErrIsolated: fewer than half of the members this node expects are
	// reachable; it may be on the minority side of a partition (Standing).
	ErrIsolated = errors.New("cluster: isolated")
	// ErrResyncing: this process was frozen long enough for peers to
	// declare it dead; it is re-verifying its links (Standing).
	ErrResyncing = errors.New("cluster: re-verifying membership after a stall")
	// ErrClosed: the cluster was shut down.
	ErrClosed = errors.New("cluster: closed")
	// ErrInvalidConfig wraps every configuration error from New.
	ErrInvalidConfig = errors.New("cluster: invalid config")
)

// minFrameSize leaves room for the handshake and a snapshot chunk.
const minFrameSize = 4 << 10

func (cfg Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	orDefault(&cfg.GossipAddr, d.GossipAddr)
	orDefault(&cfg.PeerAddr, d.PeerAddr)
	orDefault(&cfg.ClusterName, d.ClusterName)
	orDefault(&cfg.InterestTimeout, d.InterestTimeout)
	orDefault(&cfg.LinkQueueSize, d.LinkQueueSize)
	orDefault(&cfg.MaxFrameSize, d.MaxFrameSize)
	orDefault(&cfg.Replicas, d.Replicas)
	orDefault(&cfg.HandshakeTimeout, d.HandshakeTimeout)
	orDefault(&cfg.JoinTimeout, d.JoinTimeout)
	orDefault(&cfg.ReconnectInterval, d.ReconnectInterval)
	orDefault(&cfg.ReconnectTimeout, d.ReconnectTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.InterestTimeout < 0 || cfg.HandshakeTimeout < 0 || cfg.JoinTimeout < 0 || cfg.ReconnectTimeout < 0:
		return cfg, fmt.Errorf("%w: negative timeout", ErrInvalidConfig)
	case cfg.ReconnectInterval < 10*time.Millisecond:
		return cfg, fmt.Errorf("%w: ReconnectInterval %v below 10ms", ErrInvalidConfig, cfg.ReconnectInterval)
	case cfg.LinkQueueSize < 0:
		return cfg, fmt.Errorf("%w: negative LinkQueueSize", ErrInvalidConfig)
	case cfg.Replicas < 1:
		return cfg, fmt.Errorf("%w: Replicas %d, want at least 1", ErrInvalidConfig, cfg.Replicas)
	case cfg.MaxFrameSize < minFrameSize:
		return cfg, fmt.Errorf("%w: MaxFrameSize %d below %d", ErrInvalidConfig, cfg.MaxFrameSize, minFrameSize)
	case len(cfg.ClusterName) > memberlist.LabelMaxSize:
		return cfg, fmt.Errorf("%w: ClusterName longer than %d bytes", ErrInvalidConfig, memberlist.LabelMaxSize)
	case len(cfg.NodeName) > maxNameLen:
		return cfg, fmt.Errorf("%w: NodeName longer than %d bytes", ErrInvalidConfig, maxNameLen)
	}
	return cfg, validateTLS(cfg.TLS)
}

// orDefault sets *v to d when it is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// deriveKey turns the cluster secret into an independent 32-byte key per
// purpose, so the gossip key and the handshake key never coincide.
func deriveKey(secret []byte, purpose string) []byte {
	if len(secret) == 0 {
		return nil
	}
	k, err := hkdf.Key(sha256.New, secret, nil, "meshcast/"+purpose+"/v1", 32)
	if err != nil { // only for absurd lengths with SHA-256; 32 is fine
		panic(err)
	}
	return k
}
