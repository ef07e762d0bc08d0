package main

import (
	"context"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// httpTimeouts bound how long a connection on --listen may take before it
// is upgraded to a WebSocket (which then runs on the transport's own
// pings and write timeouts: the upgrade clears these deadlines).
type httpTimeouts struct {
	// readHeader bounds reading a request's header; 5 s: a request line
	// and headers are one packet or a few.
	readHeader time.Duration
	// read bounds reading a whole request, body included (the server API)
	// and, with TLS, the TLS handshake; 15 s.
	read time.Duration
	// idle bounds a keep-alive connection waiting for its next request;
	// 30 s: long enough to reuse a connection between the requests of a
	// page load, short enough that idle connections cannot pile up.
	idle time.Duration
}

func (t httpTimeouts) withDefaults() httpTimeouts {
	if t.readHeader == 0 {
		t.readHeader = 5 * time.Second
	}
	if t.read == 0 {
		t.read = 15 * time.Second
	}
	if t.idle == 0 {
		t.idle = 30 * time.Second
	}
	return t
}

// maxHeaderBytes caps a request's header. The largest header a client
// needs is a token (at most 8 KiB) in Authorization or the query string;
// Go's default of 1 MiB let each unfinished request hold 1 MiB.
const maxHeaderBytes = 16 << 10

// newHTTPServer is the server of --listen, with its timeouts, header cap
// and the pre-upgrade connection limits.
func newHTTPServer(h http.Handler, logger *slog.Logger, t httpTimeouts, limit *connLimit) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.readHeader,
		ReadTimeout:       t.read,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         limit.connState,
		ErrorLog:          log.New(httpErrorLog{logger}, "", 0),
	}
}

// httpErrorLog writes net/http's own log lines: a failed TLS handshake,
// which anyone can cause at will, at debug; anything else (an accept
// error: out of file descriptors) at warn.
type httpErrorLog struct{ log *slog.Logger }

func (w httpErrorLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.Contains(line, "TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, line, slog.String("component", "http"))
	return len(p), nil
}

// connLimit counts the connections on --listen that are not WebSockets
// (yet): from accept until they close or are upgraded (hijacked), when
// the hub's own count of WebSocket connections takes over. They are held
// to --max-connections and --max-connections-per-ip, in a pool of their
// own, so that idle keep-alive and slow-header connections cannot pile up
// beyond those numbers: over either limit a new connection is closed at
// once, before any byte is read. Zero limits are unlimited. A reload
// (reload.go) may change the limits; connections are counted even with
// none set, so that a limit set later applies to those already open, as
// the hub's own limits do.
type connLimit struct {
	refused atomic.Uint64 // connections closed over a limit

	// mu guards the limits, the counts and held; held only for map
	// updates.
	mu                 sync.Mutex
	maxTotal, maxPerIP int // 0: unlimited
	total              int
	perIP              map[string]int
	held               map[net.Conn]string // counted connections and their address
}

func newConnLimit(maxTotal, maxPerIP int) *connLimit {
	l := &connLimit{perIP: map[string]int{}, held: map[net.Conn]string{}}
	l.set(maxTotal, maxPerIP)
	return l
}

// set replaces the limits. Connections already over a lowered limit stay;
// new ones are refused until enough have gone.
func (l *connLimit) set(maxTotal, maxPerIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxTotal, l.maxPerIP = max(0, maxTotal), max(0, maxPerIP)
}

// connState is the http.Server hook. It runs on the accept loop for
// StateNew, so it only counts and closes; it never blocks.
func (l *connLimit) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		if !l.acquire(c) {
			l.refused.Add(1)
			c.Close() // the server then reads EOF and calls StateClosed
		}
	case http.StateHijacked, http.StateClosed:
		l.release(c)
	}
}

func (l *connLimit) acquire(c net.Conn) bool {
	ip := hostOf(c.RemoteAddr())
	l.mu.Lock()
	defer l.mu.Unlock()
	if (l.maxTotal > 0 && l.total >= l.maxTotal) || (l.maxPerIP > 0 && l.perIP[ip] >= l.maxPerIP) {
		return false
	}
	l.total++
	l.perIP[ip]++
	l.held[c] = ip
	return true
}

func (l *connLimit) release(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip, ok := l.held[c]
	if !ok {
		return // refused, or released already
	}
	delete(l.held, c)
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

func hostOf(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
