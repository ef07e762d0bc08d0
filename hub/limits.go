package hub

import (
	"net"
	"sync"
	"time"
)

// connLimiter counts connections per node and per remote IP. A slot is
// taken before the upgrade and given back when the session closes (or the
// upgrade fails), so a burst of upgrades cannot overshoot the limits. It
// counts even with no limit set, so that a limit set later
// (UpdateSecurity) applies to the connections already open.
type connLimiter struct {
	// mu guards the counts; it is held only for map updates.
	mu    sync.Mutex
	total int
	perIP map[string]int
}

func newConnLimiter() *connLimiter {
	return &connLimiter{perIP: map[string]int{}}
}

// acquire takes a slot for a connection from remoteAddr, or returns which
// limit of sc refused it (zero limits: unlimited).
func (l *connLimiter) acquire(remoteAddr string, sc *SecurityConfig) string {
	ip := remoteIP(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if sc.MaxConnections > 0 && l.total >= sc.MaxConnections {
		return "too many connections on this node"
	}
	if sc.MaxConnectionsPerIP > 0 && l.perIP[ip] >= sc.MaxConnectionsPerIP {
		return "too many connections from this address"
	}
	l.total++
	l.perIP[ip]++
	return ""
}

// release gives back the slot acquire took for remoteAddr.
func (l *connLimiter) release(remoteAddr string) {
	ip := remoteIP(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.perIP[ip] - 1; n > 0 {
		l.perIP[ip] = n
	} else {
		delete(l.perIP, ip) // the map holds only addresses with connections
	}
}

// count returns the connections counted, for tests.
func (l *connLimiter) count() (total int, perIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.perIP)
}

func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// bucket is a connection's publish token bucket. Only the session's read
// path touches it, so it needs no lock; it costs 16 bytes per session and
// a clock read per publish only when a rate is set.
type bucket struct {
	tokens float64
	last   int64 // unix nanos of the last refill; 0 before the first publish
}

// allow takes one token, refilling at rate per second up to burst.
func (b *bucket) allow(rate float64, burst int, now time.Time) bool {
	ns := now.UnixNano()
	if b.last == 0 {
		b.tokens = float64(burst)
	} else if elapsed := ns - b.last; elapsed > 0 {
		b.tokens = min(float64(burst), b.tokens+rate*float64(elapsed)/1e9)
	}
	b.last = ns
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// publishAllowed applies the hub's publish rate to s.
func (s *session) publishAllowed() bool {
	sc := &s.hub.live().Security
	if sc.PublishRate <= 0 {
		return true
	}
	return s.sec.bucket.allow(sc.PublishRate, sc.PublishBurst, time.Now())
}
