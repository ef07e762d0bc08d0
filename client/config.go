package client

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"
)

// Config configures a Client. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// URLs are ws:// or wss:// URLs of the /ws endpoint of one or more
	// nodes. Each reconnect tries the next one.
	URLs []string
	// Token is sent as "Authorization: Bearer <token>" on the upgrade.
	Token string
	// GetToken, when set, is called for a fresh token before every
	// connection attempt (and so after a 4001 "token expired"), and to
	// refresh a live connection's: when the node's hello says when the
	// connection's identity expires, a fresh token is sent on the
	// connection before then, so that it is not closed with 4001 (see
	// the package doc, Tokens). It is called on the client's goroutines,
	// one call at a time, with a context that ends after DialTimeout, at
	// Close, or, for a refresh, when the connection is lost.
	GetToken func(ctx context.Context) (string, error)
	// Header is added to every upgrade request.
	Header http.Header
	// TLSConfig is used for wss:// URLs.
	TLSConfig *tls.Config

	// MinReconnectDelay is the first reconnect's delay cap; default 500 ms,
	// short enough that a node restart goes unnoticed by a person.
	MinReconnectDelay time.Duration
	// MaxReconnectDelay bounds the doubling cap; default 20 s, so a
	// thousand clients of a dead node do not hammer the others.
	MaxReconnectDelay time.Duration
	// DialTimeout bounds one connection attempt, the hello included;
	// default 10 s.
	DialTimeout time.Duration
	// RequestTimeout bounds Publish, History and Subscribe when their
	// context has no deadline, waiting for a connection included; default
	// 10 s.
	RequestTimeout time.Duration
	// WriteTimeout bounds one frame write; default 10 s.
	WriteTimeout time.Duration
	// ReadTimeout closes a connection that received nothing for this long;
	// default 75 s, three of the server's default 25 s ping intervals. Keep
	// it above the server's --ping-interval.
	ReadTimeout time.Duration
	// MaxMessageSize bounds one message from the server; default 16 MiB
	// (a history answer holds many publishes).
	MaxMessageSize int64
	// Buffer is each subscription's queue, in messages; default 1,024.
	// Past it messages are dropped and a gap is delivered.
	Buffer int

	// OnEvent, when set, is told about connections, gaps and errors, in
	// order, on a goroutine of its own: it may call the client's methods
	// (but Close). While it is busy up to 1,024 events wait; past that
	// they are dropped (and logged).
	OnEvent func(Event)
	Logger  *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		MinReconnectDelay: 500 * time.Millisecond,
		MaxReconnectDelay: 20 * time.Second,
		DialTimeout:       10 * time.Second,
		RequestTimeout:    10 * time.Second,
		WriteTimeout:      10 * time.Second,
		ReadTimeout:       75 * time.Second,
		MaxMessageSize:    16 << 20,
		Buffer:            1024,
	}
}

func (cfg Config) withDefaults() Config {
	def := DefaultConfig()
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&cfg.MinReconnectDelay, def.MinReconnectDelay)
	set(&cfg.MaxReconnectDelay, def.MaxReconnectDelay)
	set(&cfg.DialTimeout, def.DialTimeout)
	set(&cfg.RequestTimeout, def.RequestTimeout)
	set(&cfg.WriteTimeout, def.WriteTimeout)
	set(&cfg.ReadTimeout, def.ReadTimeout)
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = def.MaxMessageSize
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = def.Buffer
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// EventType says what an Event is about.
type EventType int

// Event types.
const (
	EventConnected    EventType = iota + 1 // Node, ClientID, User
	EventDisconnected                      // Code, Reason, Reconnect, Delay, Err
	EventGap                               // Channel, Reason
	EventError                             // Err
)

// Event is what Config.OnEvent is told.
type Event struct {
	Type EventType

	Node, ClientID, User string // the server's hello

	Code      int           // close code; 1006 when the connection failed or dropped
	Reason    string        // close reason, or why a gap happened (see Message.Reason)
	Reconnect bool          // the client will try again after Delay
	Delay     time.Duration //
	Channel   string
	Err       error
}
