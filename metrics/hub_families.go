package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshcast/meshcast/hub"
)

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// hubStats are the hub's and the transport's single-valued metrics.
func hubStats() []stat[hub.Stats] {
	return []stat[hub.Stats]{
		{newDesc("meshcast_connections", "Client connections open on this node."), gauge,
			func(s *hub.Stats) float64 { return float64(s.Sessions) }},
		{newDesc("meshcast_connections_total", "Client connections opened on this node."), counter,
			func(s *hub.Stats) float64 { return float64(s.Connects) }},
		{newDesc("meshcast_upgrades_total", "WebSocket handshakes completed."), counter,
			func(s *hub.Stats) float64 { return float64(s.Transport.Upgrades) }},
		{newDesc("meshcast_subscriptions", "Client subscriptions on this node (a connection in 3 channels counts 3)."), gauge,
			func(s *hub.Stats) float64 { return float64(s.Subscriptions) }},
		{newDesc("meshcast_channels", "Channels with at least one subscriber on this node."), gauge,
			func(s *hub.Stats) float64 { return float64(s.Channels) }},
		{newDesc("meshcast_bad_requests_total", "Client requests refused as malformed (err 400)."), counter,
			func(s *hub.Stats) float64 { return float64(s.BadRequests) }},
		{newDesc("meshcast_unavailable_total", "Upgrades, subs and pubs refused with 503 while the node was not in good standing."), counter,
			func(s *hub.Stats) float64 { return float64(s.Unavailable) }},
		{newDesc("meshcast_interest_timeouts_total", "Client subs acked before every peer confirmed them (followed by a gap)."), counter,
			func(s *hub.Stats) float64 { return float64(s.InterestTimeouts) }},
		{newDesc("meshcast_gap_frames_total", "Gap frames sent to subscribers: they may have missed messages."), counter,
			func(s *hub.Stats) float64 { return float64(s.Gaps) }},
		{newDesc("meshcast_ping_timeouts_total", "Connections closed because the client sent nothing for two ping intervals."), counter,
			func(s *hub.Stats) float64 { return float64(s.Transport.PingTimeouts) }},
		{newDesc("meshcast_socket_writes_total", "Batched socket writes to clients (deliveries / writes is the coalescing)."), counter,
			func(s *hub.Stats) float64 { return float64(s.Transport.Writes) }},
		{newDesc("meshcast_ring_writes_total", "Of the socket writes, those sent in batches through io_uring (0 where it is off or refused: --io-uring)."), counter,
			func(s *hub.Stats) float64 { return float64(s.Transport.RingWrites) }},
		{newDesc("meshcast_blocked_writes_total", "Writes handed to a blocking writer because a client's socket was full."), counter,
			func(s *hub.Stats) float64 { return float64(s.Transport.BlockedWrites) }},
	}
}

// hubLabeled are the hub's families with one label.
func hubLabeled() []labeled[hub.Stats] {
	return []labeled[hub.Stats]{
		{prometheus.NewDesc("meshcast_upgrade_failures_total",
			"Upgrade requests refused or failed, by reason: origin, limit, auth, unavailable (503, not in good standing), handshake (not a valid WebSocket upgrade, or the handshake failed).",
			[]string{"reason"}, nil), counter, upgradeFailures},
		{prometheus.NewDesc("meshcast_publishes_total",
			"Publishes handled, by origin: local (made on this node by a client or the API) or peer (forwarded by another node).",
			[]string{"origin"}, nil), counter, func(s *hub.Stats) map[string]float64 {
			return map[string]float64{"local": float64(s.Publishes), "peer": float64(s.RemoteDeliveries)}
		}},
		{prometheus.NewDesc("meshcast_deliveries_total",
			"Messages queued to local subscribers, by where the publish was made: local or peer.",
			[]string{"origin"}, nil), counter, func(s *hub.Stats) map[string]float64 {
			return map[string]float64{"local": float64(s.Deliveries - s.PeerDeliveries), "peer": float64(s.PeerDeliveries)}
		}},
		{prometheus.NewDesc("meshcast_err_frames_total",
			"Err frames sent to clients, by code (400, 403, 413, 429, 503, other).",
			[]string{"code"}, nil), counter, func(s *hub.Stats) map[string]float64 { return floats(s.ErrCodes) }},
		{prometheus.NewDesc("meshcast_token_refreshes_total",
			"Token refreshes over live connections, by result: ok, or refused (invalid token, another user, a channel no longer allowed).",
			[]string{"result"}, nil), counter, func(s *hub.Stats) map[string]float64 {
			return map[string]float64{"ok": float64(s.Refreshes), "refused": float64(s.RefreshesRefused)}
		}},
		{prometheus.NewDesc("meshcast_close_frames_total",
			"Close frames this node started, by close code (1001 shutdown or ping timeout, 1008 slow consumer, 4001 token expired, ...).",
			[]string{"code"}, nil), counter, func(s *hub.Stats) map[string]float64 { return floats(s.Transport.CloseCodes) }},
	}
}

func upgradeFailures(s *hub.Stats) map[string]float64 {
	return map[string]float64{
		"origin":      float64(s.RefusedOrigin),
		"limit":       float64(s.RefusedLimit),
		"auth":        float64(s.RefusedAuth),
		"unavailable": float64(s.RefusedUnavailable),
		"handshake":   float64(s.RefusedUpgrade + s.Transport.UpgradeErrors),
	}
}

func floats(m map[string]uint64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}

func historyStats() []stat[HistoryStats] {
	return []stat[HistoryStats]{
		{newDesc("meshcast_history_channels", "Channels with message history kept on this node."), gauge,
			func(s *HistoryStats) float64 { return float64(s.Channels) }},
		{newDesc("meshcast_history_messages", "Messages kept in history on this node."), gauge,
			func(s *HistoryStats) float64 { return float64(s.Messages) }},
		{newDesc("meshcast_history_bytes", "Bytes of message history kept on this node."), gauge,
			func(s *HistoryStats) float64 { return float64(s.Bytes) }},
		{newDesc("meshcast_history_evicted_total", "History messages evicted to stay within the memory limit."), counter,
			func(s *HistoryStats) float64 { return float64(s.Evicted) }},
		{newDesc("meshcast_history_recoveries_total", "Subscribes with since (a client resuming from a position)."), counter,
			func(s *HistoryStats) float64 { return float64(s.Recoveries) }},
		{newDesc("meshcast_history_recoveries_partial_total", "Recoveries acked with recovered:false."), counter,
			func(s *HistoryStats) float64 { return float64(s.RecoveriesPartial) }},
		{newDesc("meshcast_history_refills_total", "Catch-ups of a channel from the peers after this node may have missed publishes."), counter,
			func(s *HistoryStats) float64 { return float64(s.Refills) }},
		{newDesc("meshcast_history_refills_incomplete_total", "Refills that could not fill every hole (subscribers got a gap)."), counter,
			func(s *HistoryStats) float64 { return float64(s.RefillsIncomplete) }},
		{newDesc("meshcast_history_not_stored_total", "Publishes on channels with history refused with 503: not held by enough nodes."), counter,
			func(s *HistoryStats) float64 { return float64(s.NotStored) }},
	}
}

func presenceStats() []stat[PresenceStats] {
	return []stat[PresenceStats]{
		{newDesc("meshcast_presence_channels", "Channels with presence tracked on this node."), gauge,
			func(s *PresenceStats) float64 { return float64(s.Channels) }},
		{newDesc("meshcast_presence_members", "Presence entries (channel, client) on this node."), gauge,
			func(s *PresenceStats) float64 { return float64(s.Members) }},
	}
}
