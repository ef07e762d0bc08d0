package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshcast/meshcast/cluster"
)

// clusterStats are the cluster's single-valued metrics.
func clusterStats() []stat[cluster.Stats] {
	return []stat[cluster.Stats]{
		{newDesc("meshcast_member_health_score", "memberlist's awareness score: 0 is healthy; higher means this node answers probes late."), gauge,
			func(s *cluster.Stats) float64 { return float64(s.HealthScore) }},
		{newDesc("meshcast_handshake_failures_total", "Peer links refused in the handshake: wrong secret, cluster, version or TLS certificate."), counter,
			func(s *cluster.Stats) float64 { return float64(s.HandshakeFailures) }},
		{newDesc("meshcast_rejected_links_total", "Authenticated peer links refused because their node was not (yet) known alive."), counter,
			func(s *cluster.Stats) float64 { return float64(s.RejectedLinks) }},
		{newDesc("meshcast_malformed_frames_total", "Peer links closed for a malformed frame."), counter,
			func(s *cluster.Stats) float64 { return float64(s.MalformedFrames) }},
		{newDesc("meshcast_publish_too_large_total", "Publishes over the peer frame limit, not forwarded."), counter,
			func(s *cluster.Stats) float64 { return float64(s.PublishTooLarge) }},
		{newDesc("meshcast_gap_incidents_total", "Incidents after which subscribers were told they may have missed messages."), counter,
			func(s *cluster.Stats) float64 { return float64(s.GapIncidents) }},
		{newDesc("meshcast_gap_channels_total", "Channels the gap incidents covered."), counter,
			func(s *cluster.Stats) float64 { return float64(s.GapChannels) }},
		{newDesc("meshcast_stalls_total", "Times this process was found frozen (SIGSTOP, VM pause) and re-verified its membership."), counter,
			func(s *cluster.Stats) float64 { return float64(s.Stalls) }},
		{newDesc("meshcast_junk_gossip_packets_total", "Gossip UDP packets dropped before memberlist saw them: no cluster label or not encrypted with the cluster's key."), counter,
			func(s *cluster.Stats) float64 { return float64(s.JunkGossipPackets) }},
		{newDesc("meshcast_junk_gossip_streams_total", "Gossip TCP streams closed before memberlist saw them: no free slot, or a first message without the cluster label, over the length bound, not encrypted with the cluster's key or not in time."), counter,
			func(s *cluster.Stats) float64 { return float64(s.JunkGossipStreams) }},
		{newDesc("meshcast_cluster_interest_timeouts_total", "Subscribes (client and in-process) not confirmed by every peer within the interest timeout."), counter,
			func(s *cluster.Stats) float64 { return float64(s.InterestTimeouts) }},
	}
}

// standingStates and memberStates are every value the gauges below take,
// so each series exists from the first scrape (0 or 1) and never vanishes.
var (
	standingStates = []string{"ready", "joining", "isolated", "resyncing", "closed"}
	memberStates   = []string{"alive", "dead", "left"}
	linkStates     = []string{"connecting", "up", "backoff", "closed"}
)

func clusterLabeled() []labeled[cluster.Stats] {
	return []labeled[cluster.Stats]{
		{prometheus.NewDesc("meshcast_standing",
			"1 for this node's standing (ready, joining, isolated, resyncing, closed), 0 for the others; only ready serves.",
			[]string{"state"}, nil), gauge, func(s *cluster.Stats) map[string]float64 {
			return oneHot(standingStates, s.Standing)
		}},
		{prometheus.NewDesc("meshcast_members",
			"Cluster members as this node sees them, itself included, by state (alive, dead, left).",
			[]string{"state"}, nil), gauge, memberCounts},
	}
}

func memberCounts(s *cluster.Stats) map[string]float64 {
	m := oneHot(memberStates, "")
	for _, mem := range s.Members {
		if _, ok := m[mem.State]; ok {
			m[mem.State]++
		}
	}
	return m
}

// oneHot maps every state to 0 but current to 1.
func oneHot(states []string, current string) map[string]float64 {
	m := make(map[string]float64, len(states))
	for _, st := range states {
		m[st] = 0
	}
	if _, ok := m[current]; ok {
		m[current] = 1
	}
	return m
}

// peerStat is one per-peer metric, labelled by the peer's node name.
type peerStat struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	val  func(*cluster.LinkStats) float64
}

func newPeerDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"peer"}, nil)
}

func peerStats() []peerStat {
	return []peerStat{
		{newPeerDesc("meshcast_peer_inbound_up", "1 while the peer's link to this node is up."), gauge,
			func(l *cluster.LinkStats) float64 { return bool01(l.InboundUp) }},
		{newPeerDesc("meshcast_peer_queue_frames", "Frames waiting on the outbound link to the peer."), gauge,
			func(l *cluster.LinkStats) float64 { return float64(l.QueueDepth) }},
		{newPeerDesc("meshcast_peer_sent_bytes_total", "Publish bytes sent to the peer."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.BytesSent) }},
		{newPeerDesc("meshcast_peer_received_bytes_total", "Publish bytes received from the peer."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.BytesReceived) }},
		{newPeerDesc("meshcast_peer_sent_frames_total", "Publish frames sent to the peer."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.MsgsSent) }},
		{newPeerDesc("meshcast_peer_received_frames_total", "Publish frames received from the peer."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.MsgsReceived) }},
		{newPeerDesc("meshcast_peer_interest_sent_total", "Interest messages sent to the peer."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.InterestSent) }},
		{newPeerDesc("meshcast_peer_interest_received_total", "Interest messages received from the peer."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.InterestReceived) }},
		{newPeerDesc("meshcast_peer_dropped_queue_full_total", "Publishes for the peer dropped because its link queue was full."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.Drops) }},
		{newPeerDesc("meshcast_peer_dropped_link_down_total", "Publishes for the peer dropped while the link to it was down."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.DropsLinkDown) }},
		{newPeerDesc("meshcast_peer_reconnects_total", "Times the outbound link to the peer was dialled again."), counter,
			func(l *cluster.LinkStats) float64 { return float64(l.Reconnects) }},
		{newPeerDesc("meshcast_peer_interested_channels", "Channels the peer wants from this node."), gauge,
			func(l *cluster.LinkStats) float64 { return float64(l.InterestedChannels) }},
	}
}

func (c *Collector) collectPeers(ch chan<- prometheus.Metric, s *cluster.Stats) {
	for i := range s.Links {
		l := &s.Links[i]
		for _, p := range c.peers {
			ch <- prometheus.MustNewConstMetric(p.desc, p.typ, p.val(l), l.Peer)
		}
		for st, v := range oneHot(linkStates, l.State) {
			ch <- prometheus.MustNewConstMetric(c.peerState, gauge, v, l.Peer, st)
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
