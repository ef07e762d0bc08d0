package transport

import "time"

// sweepLoop is the one keepalive goroutine: each PingInterval it pings every
// connection and closes those silent for two intervals. No per-connection
// timers: one pass over the registry per interval.
func (s *Server) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	var conns []*Conn
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			conns = s.snapshot(conns[:0])
			s.sweep(conns, now)
			clear(conns) // do not keep closed connections alive until next tick
		}
	}
}

// sweep pings or times out each connection.
func (s *Server) sweep(conns []*Conn, now time.Time) {
	limit := now.Add(-2 * s.cfg.PingInterval).UnixNano()
	for _, c := range conns {
		if c.lastSeen.Load() < limit {
			ce := &CloseError{Code: CloseGoingAway, Reason: ReasonPingTimeout}
			if c.closeWith(ce, true, false) {
				s.stats.pingTimeouts.Add(1)
			}
			continue
		}
		// ErrQueueFull closes a slow consumer; ErrClosed needs nothing.
		_ = c.Send(s.ping)
	}
}
