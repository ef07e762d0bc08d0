package transport

import (
	"strconv"
	"sync/atomic"
)

// Stats is a snapshot of the server's counters. Counters only grow; Conns is
// the current number of open sockets, lingering ones included (see
// Config.CloseLinger).
type Stats struct {
	Conns               int64  `json:"conns"`
	Upgrades            uint64 `json:"upgrades"`
	UpgradeErrors       uint64 `json:"upgrade_errors"`
	SlowConsumerCloses  uint64 `json:"slow_consumer_closes"`
	ProtocolErrorCloses uint64 `json:"protocol_error_closes"`
	PingTimeouts        uint64 `json:"ping_timeouts"`
	// Writes counts batches written: deliveries / Writes is the coalescing.
	Writes uint64 `json:"writes"`
	// RingWrites counts the writes of Writes sent in batches through
	// io_uring; 0 where it is off (Config.NoIOURing) or unavailable.
	RingWrites uint64 `json:"ring_writes"`
	// BlockedWrites counts hand-offs to a connection's own blocking writer
	// (its socket was full).
	BlockedWrites uint64 `json:"blocked_writes"`
	// CloseCodes counts the close frames this server started, by code
	// ("1001", "1008", ...; "other" for codes outside closeCodeSlots). A
	// client's own close, echoed back, is not counted.
	CloseCodes map[string]uint64 `json:"close_codes"`
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
	ringWrites     atomic.Uint64
	closeCodes     [len(closeCodeSlots) + 1]atomic.Uint64 // the last: other codes
}

// closeCodeSlots are the close codes counted one by one: the transport's
// and the hub's (4001 token expired, 4003 disconnected). A fixed set keeps
// them usable as a metric label whatever codes a caller sends.
var closeCodeSlots = [...]StatusCode{CloseNormal, CloseGoingAway, CloseProtocolError, CloseUnsupportedData,
	CloseInvalidPayload, ClosePolicyViolation, CloseTooBig, CloseInternalError, 4001, 4003}

// countClose counts a close frame this server started.
func (c *counters) countClose(code StatusCode) {
	for i, s := range closeCodeSlots {
		if s == code {
			c.closeCodes[i].Add(1)
			return
		}
	}
	c.closeCodes[len(closeCodeSlots)].Add(1)
}

func (c *counters) closeCodeCounts() map[string]uint64 {
	m := make(map[string]uint64, len(c.closeCodes))
	for i, s := range closeCodeSlots {
		m[strconv.Itoa(int(s))] = c.closeCodes[i].Load()
	}
	m["other"] = c.closeCodes[len(closeCodeSlots)].Load()
	return m
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
		RingWrites:          s.stats.ringWrites.Load(),
		BlockedWrites:       s.stats.blockedWrites.Load(),
		CloseCodes:          s.stats.closeCodeCounts(),
	}
}
