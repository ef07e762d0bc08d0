package transport

import (
	"log/slog"
	"runtime"
	"time"
)

// Config holds the Server's settings. Zero fields get the defaults of
// DefaultConfig; the config is not changed after NewServer.
type Config struct {
	// MaxMessageSize bounds one reassembled message; over it the connection
	// is closed with 1009. Default 64 KiB: a pub/sub message, not a file.
	MaxMessageSize int
	// WriteQueueSize bounds the bytes queued (and being written) per
	// connection; over it the connection is closed with 1008 "slow consumer".
	// Default 1 MiB: about 10,000 small deliveries of slack.
	WriteQueueSize int
	// PingInterval is how often every connection is pinged. A connection
	// from which no frame arrived for two intervals is closed with 1001
	// "ping timeout". Default 25 s, under common 30-60 s proxy idle timeouts.
	PingInterval time.Duration
	// WriteTimeout is the deadline of each blocking write: a connection
	// writes blocking when its socket is full, and always when it has no
	// file descriptor (TLS). Default 10 s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds writing the upgrade response. Default 10 s.
	HandshakeTimeout time.Duration
	// Workers is the read worker pool size (epoll mode only). Default
	// max(4, 2*GOMAXPROCS): handlers may block briefly, so a few more than
	// cores.
	Workers int
	// Writers is the number of shared non-blocking writer goroutines.
	// Default GOMAXPROCS: writing is CPU (syscall) bound.
	Writers int
	// UseGoroutines selects the goroutine-per-connection reader instead of
	// epoll for every connection. Always on outside Linux; connections
	// without a file descriptor (TLS) use that reader anyway.
	UseGoroutines bool
	// Logger receives debug and error logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults described on Config's fields.
func DefaultConfig() Config {
	procs := runtime.GOMAXPROCS(0)
	return Config{
		MaxMessageSize:   64 << 10,
		WriteQueueSize:   1 << 20,
		PingInterval:     25 * time.Second,
		WriteTimeout:     10 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		Workers:          max(4, 2*procs),
		Writers:          procs,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = d.MaxMessageSize
	}
	if c.WriteQueueSize <= 0 {
		c.WriteQueueSize = d.WriteQueueSize
	}
	if c.PingInterval <= 0 {
		c.PingInterval = d.PingInterval
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.Writers <= 0 {
		c.Writers = d.Writers
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c
}
