package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/meshcast/meshcast/transport/uring"
)

// Config holds the Server's settings. Zero fields get the defaults of
// DefaultConfig; negative sizes, durations and counts make NewServer fail
// with ErrInvalidConfig. The config is not changed after NewServer.
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
	// file descriptor (TLS). Default 10 s: one blocking write is at most
	// 32 KiB, which even a poor mobile link takes in that time, and a client
	// that does not read frees its goroutine and queue within seconds.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds writing the upgrade response. Default 10 s:
	// the response is a few hundred bytes, so only a client that is not
	// reading takes longer, and it should not hold the handshake goroutine.
	HandshakeTimeout time.Duration
	// CloseLinger bounds how long a socket stays open after a close the
	// server started: its close frame is followed by the end of the stream
	// (TCP FIN; TLS close_notify) and the socket closed once the client
	// closes its side, what the client still sends discarded meanwhile.
	// Closing at once would make the kernel answer what the client sent
	// with a reset, and some clients (browsers on Windows) then lose the
	// close frame and see 1006 instead of its code. Shutdown waits for it
	// too. Default 2 s: a client reading its socket closes within a round
	// trip.
	CloseLinger time.Duration
	// Workers is the read worker pool size (epoll mode only). Default
	// max(4, 2*GOMAXPROCS): handlers may block briefly, so a few more than
	// cores.
	Workers int
	// Writers is the number of shared non-blocking writer goroutines.
	// Default GOMAXPROCS: writing is CPU (syscall) bound.
	Writers int
	// UseGoroutines selects the goroutine-per-connection reader instead of
	// epoll for every connection. Default off: epoll is what keeps an idle
	// connection free of a goroutine. Always on outside Linux; connections
	// without a file descriptor (TLS) use that reader anyway.
	UseGoroutines bool
	// NoIOURing makes the shared writers use one write(2) per connection.
	// Default off: on Linux each shared writer sends to up to 16
	// connections (a burst's chunk, or connections from the ready list)
	// with one io_uring_enter, which costs about half as much CPU per
	// delivery on a VM; where io_uring is missing or refused (a kernel
	// before 5.6, kernel.io_uring_disabled, a container's seccomp profile)
	// the server falls back to write(2) by itself and logs it once at Info.
	NoIOURing bool
	// Logger receives debug and error logs. Default (nil) discards them: a
	// library logs only where its caller tells it to.
	Logger *slog.Logger

	ringSetup *ringSetup // nil: uring.New; tests play a kernel that refuses
}

// ringSetup replaces uring.New in tests. A pointer to it, unlike a func,
// keeps Config comparable.
type ringSetup struct {
	New func(entries uint32) (*uring.Ring, error)
}

// ErrInvalidConfig is wrapped by the error NewServer returns for a Config
// with a negative size, duration or count.
var ErrInvalidConfig = errors.New("transport: invalid config")

// DefaultConfig returns the defaults described on Config's fields.
func DefaultConfig() Config {
	procs := runtime.GOMAXPROCS(0)
	return Config{
		MaxMessageSize:   64 << 10,
		WriteQueueSize:   1 << 20,
		PingInterval:     25 * time.Second,
		WriteTimeout:     10 * time.Second,
		HandshakeTimeout: 10 * time.Second,
		CloseLinger:      2 * time.Second,
		Workers:          max(4, 2*procs),
		Writers:          procs,
		Logger:           slog.New(slog.DiscardHandler),
	}
}

// withDefaults fills zero fields from DefaultConfig and refuses negative
// ones, naming every field that is.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	err := errors.Join(
		orDefault(&c.MaxMessageSize, d.MaxMessageSize, "MaxMessageSize"),
		orDefault(&c.WriteQueueSize, d.WriteQueueSize, "WriteQueueSize"),
		orDefault(&c.PingInterval, d.PingInterval, "PingInterval"),
		orDefault(&c.WriteTimeout, d.WriteTimeout, "WriteTimeout"),
		orDefault(&c.HandshakeTimeout, d.HandshakeTimeout, "HandshakeTimeout"),
		orDefault(&c.CloseLinger, d.CloseLinger, "CloseLinger"),
		orDefault(&c.Workers, d.Workers, "Workers"),
		orDefault(&c.Writers, d.Writers, "Writers"),
	)
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	return c, err
}

// orDefault sets a zero *v to def and refuses a negative *v.
func orDefault[T int | time.Duration](v *T, def T, name string) error {
	switch {
	case *v < 0:
		return fmt.Errorf("%w: %s is %v, must not be negative", ErrInvalidConfig, name, *v)
	case *v == 0:
		*v = def
	}
	return nil
}
