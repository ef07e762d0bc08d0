package cluster

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// memberState is a member's state as memberlist last reported it.
type memberState uint8

const (
	stateAlive memberState = iota
	stateDead              // failed: declared dead without announcing a leave
	stateLeft              // left gracefully
)

var memberStateNames = [...]string{"alive", "dead", "left"}

// member is what this node knows of another node, alive or not. A failed
// member's record is kept for ReconnectTimeout (it is retried and counted
// as expected by Standing), a departed one's up to maxDeparted (for Stats).
// Fields are guarded by Cluster.mu.
type member struct {
	name       string
	gossipAddr string // memberlist "ip:port", dialled to rejoin
	peerAddr   string
	state      memberState
	since      time.Time // last state change
	leaving    bool      // announced a graceful leave (metadata or a bye)
	epoch      uint64    // the member's process, from its metadata

	probing bool // a rejoin attempt is in flight
	// refused: the last rejoin attempt was refused (RST): the host answers
	// and the process is gone, so this is not a partition and Standing
	// does not count the member as expected.
	refused bool

	in incident // may we have missed publishes from it (incident.go)
}

// nodeInfo is a member as a memberlist event describes it.
type nodeInfo struct {
	name, gossipAddr, peerAddr string
	leaving                    bool
	epoch                      uint64
}

// maxDeparted bounds the member records kept for nodes that left.
const maxDeparted = 256

// peerAlive records a member reported alive (joined, updated, or back from
// dead) and makes sure a link to it is being set up at once. Called from
// memberlist's event callbacks: it must not block.
func (c *Cluster) peerAlive(n nodeInfo) {
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	m := c.members[n.name]
	event, down, was := "node joined", time.Duration(0), stateAlive
	switch {
	case m == nil:
		m = &member{name: n.name, since: now} // alive is the zero state
		m.in.unsyncedSince = now
		c.members[n.name] = m
	case m.state != stateAlive:
		event, down, was = "node restarted and rejoined", now.Sub(m.since), m.state
		if n.epoch == m.epoch {
			event = "partition healed: node reachable again"
		}
		m.in.unsyncedSince = now
	case m.epoch != 0 && n.epoch != m.epoch:
		event = "node restarted"
	default:
		event = ""
	}
	restarted := m.state == stateAlive && m.epoch != 0 && n.epoch != m.epoch
	if m.state != stateAlive {
		m.state, m.since = stateAlive, now
	}
	m.gossipAddr, m.peerAddr, m.leaving, m.epoch, m.refused = n.gossipAddr, n.peerAddr, n.leaving, n.epoch, false
	p := c.peers[n.name]
	if p == nil {
		p = newPeer(c, n.name, n.peerAddr)
		c.peers[n.name] = p
		c.wg.Add(1)
		go p.runDialer()
	} else {
		p.update(n.peerAddr, restarted, n.epoch)
	}
	c.recountLocked(now)
	c.mu.Unlock()
	c.stand.changed()
	switch {
	case down > 0:
		// Since it was declared dead or left: failure detection took a
		// few seconds more, so "unreachable for" understated the outage.
		c.log.Info(event, "peer", n.name, "addr", n.peerAddr, "was", memberStateNames[was],
			"gone_since_declared", down.Round(time.Millisecond).String())
	case event != "":
		c.log.Info(event, "peer", n.name, "addr", n.peerAddr)
	}
}

// peerGone records a member that left or was declared dead: its links
// close and its interest is forgotten. Subscribers are told about a gap if
// publishes from it may have been lost. Called from memberlist's event
// callbacks: it must not block.
func (c *Cluster) peerGone(name string) {
	now := time.Now()
	c.mu.Lock()
	p := c.peers[name]
	delete(c.peers, name)
	m := c.members[name]
	if m == nil || c.closed {
		c.mu.Unlock()
		if p != nil {
			p.stop()
		}
		return
	}
	gap := false
	if m.leaving {
		m.state = stateLeft
		gap = m.in.left()
	} else {
		m.state = stateDead
		gap = m.in.died()
	}
	m.since = now
	c.pruneLocked(now)
	c.recountLocked(now)
	c.mu.Unlock()
	if p != nil {
		p.stop()
	}
	c.stand.changed()
	if m.state == stateLeft {
		c.log.Info("node left", "peer", name)
	} else {
		c.log.Info("node declared dead; retrying it every reconnect interval", "peer", name,
			"reconnect_interval", c.cfg.ReconnectInterval.String())
		signal(c.reconnectKick)
	}
	if gap {
		c.gaps.push(name, "it was declared dead with publishes possibly in flight", nil)
	}
}

// recountLocked recomputes whether this node is isolated: fewer members
// reachable (itself and the live peers) than members it expects but cannot
// reach (failed, not gone for good, within ReconnectTimeout). A node on the
// minority side of a partition is isolated; the survivors of a crash are
// not, since a crashed member's host refuses the rejoin attempts.
func (c *Cluster) recountLocked(now time.Time) {
	reachable := 1
	var unreachable []string
	for _, m := range c.members {
		switch {
		case m.state == stateAlive:
			reachable++
		case m.state == stateDead && !m.refused && now.Sub(m.since) < c.cfg.ReconnectTimeout:
			unreachable = append(unreachable, m.name)
		}
	}
	s := &c.stand
	if reachable >= len(unreachable) {
		if s.setIsolated("") {
			took := now.Sub(s.isolatedAt).Round(time.Millisecond).String()
			if s.isolationWarned {
				c.log.Info("no longer isolated: a majority of the members is reachable again; serving",
					"reachable", reachable, "members", reachable+len(unreachable), "isolated_for", took)
			} else {
				c.log.Info("was isolated briefly (members declared dead and back at once, as when a partition "+
					"heals); serving", "isolated_for", took, "why", s.isolatedWhy)
			}
		}
		return
	}
	slices.Sort(unreachable)
	why := fmt.Sprintf("%d of %d members reachable; cannot reach %s",
		reachable, reachable+len(unreachable), strings.Join(unreachable, ", "))
	if s.setIsolated(why) {
		s.isolatedAt, s.isolationWarned = now, false
	}
	s.isolatedWhy = why
	if !s.isolationWarned && now.Sub(s.isolatedAt) >= isolationWarnAfter {
		// Readiness is 503: say so, or the operator sees only the others
		// declared dead and a node that refuses everyone.
		s.isolationWarned = true
		c.log.Warn("isolated: this node is on the minority side of a partition; refusing new connections, "+
			"subscribes and publishes (503) until the network heals", "why", why)
	}
}

// isolationWarnAfter is how long a node is isolated before it says so at
// warn (beat rechecks every beatEvery). When a partition heals, the side
// that saw the others dead gossips it, and for a few milliseconds members
// of the majority side can count each other dead and refute it: that is
// logged at info, when it ends, not as a partition.
const isolationWarnAfter = time.Second

// pruneLocked forgets failed members after ReconnectTimeout and the oldest
// departed ones beyond maxDeparted.
func (c *Cluster) pruneLocked(now time.Time) {
	var departed []*member
	for name, m := range c.members {
		switch {
		case m.state == stateDead && now.Sub(m.since) >= c.cfg.ReconnectTimeout:
			delete(c.members, name)
			c.log.Warn("giving up on a failed node", "peer", name, "failed_for", now.Sub(m.since).Round(time.Second).String())
		case m.state == stateLeft:
			departed = append(departed, m)
		}
	}
	if len(departed) <= maxDeparted {
		return
	}
	slices.SortFunc(departed, func(a, b *member) int { return a.since.Compare(b.since) })
	for _, m := range departed[:len(departed)-maxDeparted] {
		delete(c.members, m.name)
	}
}

// setRefused records the outcome of a rejoin attempt of a failed member.
func (c *Cluster) setRefused(name string, refused bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.members[name]; m != nil && m.state == stateDead && m.refused != refused {
		m.refused = refused
		c.recountLocked(time.Now())
	}
}
