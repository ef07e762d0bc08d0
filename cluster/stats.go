package cluster

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// standingName turns Standing's error into the names Stats reports.
func standingName(err error) (name, reason string) {
	for _, s := range []struct {
		err  error
		name string
	}{{ErrJoining, "joining"}, {ErrIsolated, "isolated"}, {ErrResyncing, "resyncing"}, {ErrClosed, "closed"}} {
		if errors.Is(err, s.err) {
			// The name says the state; the reason is what follows it.
			reason = strings.TrimPrefix(strings.TrimPrefix(err.Error(), s.err.Error()), ": ")
			if reason == "" {
				reason = strings.TrimPrefix(s.err.Error(), "cluster: ")
			}
			return s.name, reason
		}
	}
	if err != nil {
		return "unknown", err.Error()
	}
	return "ready", ""
}

// Stats is a snapshot of the cluster for metrics and debugging.
type Stats struct {
	Node NodeStats `json:"node"`
	// Standing is "ready", or what keeps this node from serving:
	// "joining", "isolated", "resyncing", "closed"; StandingReason says more.
	Standing          string        `json:"standing"`
	StandingReason    string        `json:"standing_reason,omitempty"`
	Members           []MemberStats `json:"members"`
	Links             []LinkStats   `json:"links"`
	LocalChannels     int           `json:"local_channels"`     // channels this node has subscribers for
	InterestTimeouts  uint64        `json:"interest_timeouts"`  // AwaitInterest calls that timed out
	HandshakeFailures uint64        `json:"handshake_failures"` // peer links refused for auth/version/cluster/garbage
	RejectedLinks     uint64        `json:"rejected_links"`     // authenticated links from nodes not (yet) known alive
	MalformedFrames   uint64        `json:"malformed_frames"`   // links closed for a malformed frame
	PublishTooLarge   uint64        `json:"publish_too_large"`  // publishes over MaxFrameSize, not forwarded
	// PeerDrops and PeerDropsLinkDown are the links' Drops and
	// DropsLinkDown summed over every peer since start, gone ones included.
	PeerDrops         uint64 `json:"peer_drops"`
	PeerDropsLinkDown uint64 `json:"peer_drops_link_down"`
	GapIncidents      uint64 `json:"gap_incidents"`       // times subscribers were told they may have missed publishes
	GapChannels       uint64 `json:"gap_channels"`        // channels those gaps covered
	Stalls            uint64 `json:"stalls"`              // times this process was found frozen and re-verified
	JunkGossipPackets uint64 `json:"junk_gossip_packets"` // UDP packets refused before any key was proved (junk.go)
	JunkGossipStreams uint64 `json:"junk_gossip_streams"` // TCP gossip streams refused likewise
	// HealthScore is memberlist's awareness score: 0 is healthy; higher
	// means this node has been slow to answer probes (a loaded host) and
	// takes longer to declare others dead.
	HealthScore int           `json:"health_score"`
	Presence    PresenceStats `json:"presence"` // presence.go
}

// NodeStats describes this node.
type NodeStats struct {
	Name       string `json:"name"`
	GossipAddr string `json:"gossip_addr"`
	PeerAddr   string `json:"peer_addr"`
}

// MemberStats is one memberlist member as this node sees it.
type MemberStats struct {
	Name  string `json:"name"`
	Addr  string `json:"addr,omitempty"` // peer-link address
	State string `json:"state"`          // alive, dead, left
	// Since is when the member entered State (RFC 3339); empty for this node.
	Since string `json:"since,omitempty"`
	// Refused: a dead member whose host refuses rejoin attempts (the
	// process is gone, not partitioned away): it does not count against
	// this node's standing.
	Refused bool `json:"refused,omitempty"`
}

// LinkStats describes the links with one peer. "Msgs" are publishes;
// interest messages are counted apart.
type LinkStats struct {
	Peer               string `json:"peer"`
	Addr               string `json:"addr"`
	State              string `json:"state"`       // outbound link: connecting, up, backoff, closed
	InboundUp          bool   `json:"inbound_up"`  // the peer's link to us is up
	QueueDepth         int    `json:"queue_depth"` // frames waiting on the outbound link
	MsgsSent           uint64 `json:"msgs_sent"`
	BytesSent          uint64 `json:"bytes_sent"`
	MsgsReceived       uint64 `json:"msgs_received"`
	BytesReceived      uint64 `json:"bytes_received"`
	InterestSent       uint64 `json:"interest_sent"`
	InterestReceived   uint64 `json:"interest_received"`
	Drops              uint64 `json:"drops"`           // publishes dropped: queue full (or left in it at close)
	DropsLinkDown      uint64 `json:"drops_link_down"` // publishes for an interested peer while our link was down
	Reconnects         uint64 `json:"reconnects"`
	InterestedChannels int64  `json:"interested_channels"` // channels the peer wants from us
	Acked              uint64 `json:"acked"`               // highest interest seq the peer acked on this link
	// PresenceSent counts the presence frames (changes and set chunks)
	// queued for the peer: only for channels it wants.
	PresenceSent      uint64 `json:"presence_sent"`
	PresenceBytesSent uint64 `json:"presence_bytes_sent"`
}

// Stats returns a snapshot of membership, links and counters.
func (c *Cluster) Stats() Stats {
	s := Stats{
		Node: NodeStats{
			Name:       c.name,
			GossipAddr: net.JoinHostPort(c.advertiseHostOr(), strconv.Itoa(c.gossipPort)),
			PeerAddr:   net.JoinHostPort(c.advertiseHostOr(), strconv.Itoa(c.peerPort)),
		},
		InterestTimeouts:  c.interestTimeouts.Load(),
		HandshakeFailures: c.handshakeFailures.Load(),
		RejectedLinks:     c.rejectedLinks.Load(),
		MalformedFrames:   c.malformedFrames.Load(),
		PublishTooLarge:   c.tooLarge.Load(),
		PeerDrops:         c.peerDrops.Load(),
		PeerDropsLinkDown: c.peerDropsDown.Load(),
		GapIncidents:      c.stand.gapIncidents.Load(),
		GapChannels:       c.stand.gapChannels.Load(),
		Stalls:            c.stand.stalls.Load(),
		JunkGossipPackets: c.junk.packets.total.Load(),
		JunkGossipStreams: c.junk.streams.total.Load(),
	}
	s.Standing, s.StandingReason = standingName(c.standing())
	if ml := c.ml.Load(); ml != nil {
		s.HealthScore = ml.GetHealthScore()
	}
	s.Presence = c.presenceStats()
	c.local.mu.Lock()
	s.LocalChannels = len(c.local.chans)
	c.local.mu.Unlock()
	s.Members = c.memberStats()
	for _, p := range c.peerList() {
		s.Links = append(s.Links, p.stats())
	}
	slices.SortFunc(s.Links, func(a, b LinkStats) int { return strings.Compare(a.Peer, b.Peer) })
	return s
}

func (c *Cluster) advertiseHostOr() string {
	if c.ml.Load() == nil {
		return "" // not started: the advertise host is fixed in Start
	}
	return c.advertiseHost
}

// memberStats reports members from memberlist's events (memberlist's own
// node list cannot be read without racing with it). Events do not report
// suspicion, so a suspect member shows as alive until declared dead.
// Failed members stay listed (dead) while they are retried.
func (c *Cluster) memberStats() []MemberStats {
	out := []MemberStats{{Name: c.name, Addr: net.JoinHostPort(c.advertiseHostOr(), strconv.Itoa(c.peerPort)), State: "alive"}}
	c.mu.Lock()
	for _, m := range c.members {
		out = append(out, MemberStats{Name: m.name, Addr: m.peerAddr, State: memberStateNames[m.state],
			Since: m.since.UTC().Format(time.RFC3339Nano), Refused: m.refused})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b MemberStats) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (p *peer) stats() LinkStats {
	ls := LinkStats{
		Peer:               p.name,
		Addr:               p.getAddr(),
		State:              linkStateNames[p.state.Load()],
		MsgsSent:           p.msgsSent.Load(),
		BytesSent:          p.bytesSent.Load(),
		MsgsReceived:       p.msgsRecv.Load(),
		BytesReceived:      p.bytesRecv.Load(),
		InterestSent:       p.interestSent.Load(),
		InterestReceived:   p.interestRcv.Load(),
		Drops:              p.drops.Load(),
		DropsLinkDown:      p.dropsDown.Load(),
		Reconnects:         p.reconnects.Load(),
		InterestedChannels: p.interested.Load(),
		PresenceSent:       p.presSent.Load(),
		PresenceBytesSent:  p.presSentBytes.Load(),
	}
	if oc := p.out.Load(); oc != nil {
		ls.QueueDepth = oc.q.len()
	}
	p.mu.Lock()
	ls.InboundUp = p.in != nil
	ls.Acked = p.acked
	p.mu.Unlock()
	return ls
}
