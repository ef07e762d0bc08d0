package transport

import "sync/atomic"

// Stats is a snapshot of the server's counters. Counters only grow; Conns is
// the current number of registered connections.
type Stats struct {
	Conns               int64  `json:"conns"`
	Upgrades            uint64 `json:"upgrades"`
	UpgradeErrors       uint64 `json:"upgrade_errors"`
	SlowConsumerCloses  uint64 `json:"slow_consumer_closes"`
	ProtocolErrorCloses uint64 `json:"protocol_error_closes"`
	PingTimeouts        uint64 `json:"ping_timeouts"`
	// Writes counts batches written: deliveries / Writes is the coalescing.
	Writes uint64 `json:"writes"`
	// BlockedWrites counts hand-offs to a connection's own blocking writer
	// (its socket was full).
	BlockedWrites uint64 `json:"blocked_writes"`
}

// counters are updated per event, never per Send, so they cost nothing on
// the fan-out path.
type counters struct {
	upgrades       atomic.Uint64
	upgradeErrors  atomic.Uint64
	slowConsumers  atomic.Uint64
	protocolErrors atomic.Uint64
	pingTimeouts   atomic.Uint64
	writes         atomic.Uint64
	blockedWrites  atomic.Uint64
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.RLock()
	n := len(s.conns)
	s.mu.RUnlock()
	return Stats{
		Conns:               int64(n),
		Upgrades:            s.stats.upgrades.Load(),
		UpgradeErrors:       s.stats.upgradeErrors.Load(),
		SlowConsumerCloses:  s.stats.slowConsumers.Load(),
		ProtocolErrorCloses: s.stats.protocolErrors.Load(),
		PingTimeouts:        s.stats.pingTimeouts.Load(),
		Writes:              s.stats.writes.Load(),
		BlockedWrites:       s.stats.blockedWrites.Load(),
	}
}
