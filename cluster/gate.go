package cluster

import (
	"net"
	"sync"
)

// connGate bounds the inbound connections that have not proved themselves
// yet (peer links before the handshake, gossip streams before their first
// message): each holds a goroutine and a buffer, and anyone who reaches
// the port can open them. Strangers share maxTotal slots, at most
// maxPerIP from one address, so that one host cannot take them all and
// many hosts cannot hold them for long (the handshake deadlines). A
// connection from the address of a known member draws on a pool of its
// own, not limited per address (several nodes may share one, behind NAT
// or on one host), so a flood of strangers never keeps members from
// linking. Members come and go by memberlist, whose gossip is encrypted
// with the secret, so only the cluster decides who is one.
type connGate struct {
	maxTotal   int // strangers' connections
	maxPerIP   int // one stranger's
	maxMembers int // members' connections
	isMember   func(ip string) bool

	// mu guards the counts; it is held only for map updates.
	mu        sync.Mutex
	strangers int
	members   int
	perIP     map[string]int
}

func newConnGate(maxTotal, maxPerIP int, isMember func(ip string) bool) *connGate {
	return &connGate{maxTotal: maxTotal, maxPerIP: maxPerIP, maxMembers: maxTotal, isMember: isMember, perIP: map[string]int{}}
}

// admit takes a slot for a connection from addr and returns the function
// that gives it back, or ok false when the connection must be refused.
func (g *connGate) admit(addr net.Addr) (release func(), ok bool) {
	ip := addrIP(addr)
	member := g.isMember(ip) // before g.mu: it takes the cluster's lock
	g.mu.Lock()
	defer g.mu.Unlock()
	if member {
		if g.members >= g.maxMembers {
			return nil, false
		}
		g.members++
		return sync.OnceFunc(g.releaseMember), true
	}
	if g.strangers >= g.maxTotal || g.perIP[ip] >= g.maxPerIP {
		return nil, false
	}
	g.strangers++
	g.perIP[ip]++
	return sync.OnceFunc(func() { g.releaseStranger(ip) }), true
}

func (g *connGate) releaseMember() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members--
}

func (g *connGate) releaseStranger(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.strangers--
	if g.perIP[ip]--; g.perIP[ip] <= 0 {
		delete(g.perIP, ip) // the map holds only addresses with connections
	}
}

// counts returns the slots taken, for tests and stats.
func (g *connGate) counts() (strangers, members, addrs int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.strangers, g.members, len(g.perIP)
}

// addrIP is the IP of a TCP address as a string ("" if it has none).
func addrIP(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, _ := net.SplitHostPort(a.String())
	return host
}

// isMemberIP reports whether ip is the address of a member this node
// knows (alive, failed or departed: a member back from a partition dials
// before it is alive again here), as gossip or peer-link host.
func (c *Cluster) isMemberIP(ip string) bool {
	if ip == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if hostIs(m.gossipAddr, ip) || hostIs(m.peerAddr, ip) {
			return true
		}
	}
	return false
}

func hostIs(hostport, ip string) bool {
	host, _, err := net.SplitHostPort(hostport)
	return err == nil && host == ip
}
