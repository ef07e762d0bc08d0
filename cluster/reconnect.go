package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// joinResult is the outcome of one initial join attempt.
type joinResult int

const (
	joinFailed joinResult = iota
	joinDone              // a seed answered, or another node joined us
	joinFirst             // every seed is this node: it starts the cluster
)

// joinLoop is the joining phase of a node with seeds: join one, then link
// with every member, both within JoinTimeout; the node is ready after it
// (Standing). Past the timeout it serves anyway, loudly, and the reconnect
// loop keeps trying the seeds; unless a seed refused it (joinRefused):
// then it stays joining and keeps trying.
func (c *Cluster) joinLoop() {
	defer c.wg.Done()
	defer c.markJoined()
	deadline := time.Now().Add(c.cfg.JoinTimeout)
	b := newBackoff(200*time.Millisecond, 2*time.Second)
	refusedLogged := false
	for {
		switch c.joinOnce() {
		case joinFirst:
			c.log.Info("every seed is this node: starting the cluster")
			return
		case joinDone:
			if c.awaitLinks(deadline) {
				// The line an operator waits for: before it /readyz says
				// joining, and a node that others joined logged nothing else.
				c.log.Info("joined the cluster and linked with every member: ready",
					"members", c.ml.Load().NumMembers())
			}
			return
		}
		if !time.Now().Before(deadline) && !c.joinRefused.Load() {
			c.log.Error("could not join any seed within the join timeout: serving on its own, "+
				"retrying the seeds every reconnect interval", "seeds", strings.Join(c.cfg.Join, ","),
				"join_timeout", c.cfg.JoinTimeout.String(), "last_err", c.lastJoinErr)
			return
		}
		if !time.Now().Before(deadline) && !refusedLogged {
			// A seed that refuses us is a live node of a cluster we are
			// not configured for: serving on our own would be a second
			// cluster, acking publishes its subscribers never see.
			refusedLogged = true
			c.log.Error("could not join any seed within the join timeout: refused by a seed, so not serving "+
				"on its own (that would split the cluster); still joining, retrying. Fix the configuration "+
				"and restart", "seeds", strings.Join(c.cfg.Join, ","),
				"join_timeout", c.cfg.JoinTimeout.String(), "last_err", c.lastJoinErr)
		}
		delay := b.next()
		if time.Now().Before(deadline) {
			delay = min(delay, time.Until(deadline))
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
	}
}

// joinOnce makes one join attempt: a memberlist join of every seed at once
// (one unreachable seed must not hold up the others for memberlist's TCP
// timeout).
func (c *Cluster) joinOnce() joinResult {
	ml := c.ml.Load()
	if ml.NumMembers() > 1 {
		return joinDone // someone joined us
	}
	addrs, err := expandSeeds(c.ctx, net.DefaultResolver.LookupHost, c.cfg.Join)
	if err != nil {
		level := slog.LevelDebug // the retries, as below
		if !c.joinResolveLogged {
			c.joinResolveLogged, level = true, slog.LevelWarn
		}
		c.log.Log(c.ctx, level, "some join seeds do not resolve", "err", err)
	}
	var others []string
	for _, a := range addrs {
		if !c.isSelf(a) { // a headless Service lists this pod too
			others = append(others, a)
		}
	}
	if len(others) == 0 {
		if err == nil && len(addrs) > 0 {
			return joinFirst
		}
		c.lastJoinErr = "no seed address resolved"
		c.joinRefused.Store(false)
		if err != nil {
			c.lastJoinErr = joinError(err)
		}
		return joinFailed
	}
	via, err := c.joinAny(others)
	if via == "" {
		var refused bool
		c.lastJoinErr, refused = joinErrorRefused(err)
		c.joinRefused.Store(refused)
		// The first failure at info, the retries (several a second at
		// first) at debug: the join timeout's line says how it ended.
		level := slog.LevelDebug
		if !c.joinFailLogged {
			c.joinFailLogged, level = true, slog.LevelInfo
		}
		c.log.Log(c.ctx, level, "no seed could be joined yet; retrying until the join timeout",
			"seeds", strings.Join(others, ","), "err", c.lastJoinErr, "join_timeout", c.cfg.JoinTimeout.String())
		return joinFailed
	}
	c.log.Info("joined cluster", "via", via, "members", ml.NumMembers())
	return joinDone
}

// joinAny joins every address at once and returns the first that answered,
// or the errors once all failed. Joins still running then finish in the
// background (they are harmless, and owned by c.wg).
func (c *Cluster) joinAny(addrs []string) (string, error) {
	ml := c.ml.Load()
	type result struct {
		addr string
		err  error
	}
	results := make(chan result, len(addrs))
	for _, a := range addrs {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_, err := ml.Join([]string{a})
			results <- result{a, err}
		}()
	}
	var errs []error
	for range addrs {
		select {
		case r := <-results:
			if r.err == nil {
				return r.addr, nil
			}
			errs = append(errs, r.err)
		case <-c.ctx.Done():
			return "", c.ctx.Err()
		}
	}
	return "", errors.Join(errs...)
}

// joinError is the one-line form of memberlist's join errors (a
// multierror of several lines), each seed's cause with a hint where the
// cause points at the configuration: a seed that accepts the gossip
// connection and closes it without an answer refused our first message,
// which is what a different secret or cluster name gets (gossipguard.go).
func joinError(err error) string {
	msg, _ := joinErrorRefused(err)
	return msg
}

// joinErrorRefused is joinError, and whether a seed refused us: accepted
// the connection and closed it unanswered (another --secret or
// --cluster-name, or not a gossip port), as opposed to being unreachable.
func joinErrorRefused(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	var errs []error
	var multi interface{ WrappedErrors() []error }
	var joined interface{ Unwrap() []error }
	switch {
	case errors.As(err, &joined):
		for _, e := range joined.Unwrap() {
			if errors.As(e, &multi) {
				errs = append(errs, multi.WrappedErrors()...)
			} else {
				errs = append(errs, e)
			}
		}
	case errors.As(err, &multi):
		errs = multi.WrappedErrors()
	default:
		errs = []error{err}
	}
	parts := make([]string, 0, len(errs)+1)
	unanswered := false
	for _, e := range errs {
		msg := strings.Join(strings.Fields(e.Error()), " ")
		if strings.HasSuffix(msg, ": EOF") || strings.Contains(msg, "connection reset by peer") {
			msg += " (closed unanswered)"
			unanswered = true
		}
		parts = append(parts, msg)
	}
	slices.Sort(parts) // the seeds answer in any order
	if unanswered {
		// Once, not once per seed: with three seeds it made a line of 900
		// characters saying the same thing three times.
		parts = append(parts, "a seed that closed the connection unanswered refused our first message: "+
			"is that its gossip port (--gossip, not --peer), and does it have the same --secret and --cluster-name as this node?")
	}
	return strings.Join(parts, "; "), unanswered
}

// awaitLinks waits until every live peer is linked both ways, or deadline;
// it says whether they were.
func (c *Cluster) awaitLinks(deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		pending := c.unsyncedPeers()
		if len(pending) == 0 {
			return true
		}
		select {
		case <-c.linkEvent:
		case <-c.ctx.Done():
			return false
		case <-t.C:
			c.log.Warn("joined, but not linked with every member within the join timeout: serving anyway "+
				"(their subscribers get gaps until the links come up)", "peers", strings.Join(pending, ","))
			return false
		}
	}
}

// isSelf reports whether a seed address is this node's gossip address.
func (c *Cluster) isSelf(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != strconv.Itoa(c.gossipPort) {
		return false
	}
	if host == c.advertiseHost {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if bind, _, _ := net.SplitHostPort(c.cfg.GossipAddr); bind != "" && bind != "0.0.0.0" && bind != "::" {
		return ip.Equal(net.ParseIP(bind))
	}
	return isLocalIP(ip)
}

func isLocalIP(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// probeTimeout bounds the TCP connect that tells whether a failed member
// answers before memberlist is asked to join it: memberlist's own dial
// waits TCPTimeout (10 s), far longer than a reconnect interval.
func (c *Cluster) probeTimeout() time.Duration {
	return min(time.Second, c.cfg.ReconnectInterval)
}

// probe connects to a member's peer-link port and hangs up: the acceptor
// takes a connection closed before its first byte for a probe, not a
// failed handshake. (The gossip port would do too, but memberlist logs
// every such connection as an error.) refused means the host answered that
// nothing listens there: the process is gone, the network is fine.
func (c *Cluster) probe(addr string) (ok, refused bool) {
	d := net.Dialer{Timeout: c.probeTimeout()}
	conn, err := d.DialContext(c.ctx, "tcp", addr)
	if err != nil {
		return false, errors.Is(err, syscall.ECONNREFUSED)
	}
	conn.Close()
	return true, false
}

// maxRejoins bounds rejoin attempts in flight.
const maxRejoins = 16

// seedRefresh is how long resolved seed addresses are reused.
const seedRefresh = 30 * time.Second

// reconnectLoop keeps trying, every ReconnectInterval, the members this
// node saw fail and the seeds that are not members: after a partition
// heals, memberlist alone would never contact a member it declared dead.
func (c *Cluster) reconnectLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.ReconnectInterval)
	defer t.Stop()
	slots := make(chan struct{}, maxRejoins)
	seeds := seedCache{c: c}
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.reconnectKick:
		}
		if !c.stand.joined.Load() || c.draining.Load() {
			continue // the join loop is at it, or we are leaving
		}
		for _, tg := range append(c.failedTargets(), seeds.targets(c.ctx)...) {
			select {
			case slots <- struct{}{}:
			default:
				c.releaseTarget(tg) // the next round tries it
				continue
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer func() { <-slots }()
				defer c.releaseTarget(tg)
				c.rejoin(tg)
			}()
		}
	}
}

// rejoinTarget is a failed member (member and peerAddr set) or a seed to
// try; addr is the gossip address to join.
type rejoinTarget struct {
	member, addr, peerAddr string
}

// failedTargets returns the failed members not being tried already and
// marks them as being tried.
func (c *Cluster) failedTargets() []rejoinTarget {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []rejoinTarget
	for name, m := range c.members {
		if m.state == stateDead && !m.probing && m.gossipAddr != "" {
			m.probing = true
			out = append(out, rejoinTarget{member: name, addr: m.gossipAddr, peerAddr: m.peerAddr})
		}
	}
	return out
}

func (c *Cluster) releaseTarget(t rejoinTarget) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.member == "" {
		delete(c.seedsTrying, t.addr)
	} else if m := c.members[t.member]; m != nil {
		m.probing = false
	}
}

// rejoin joins a target with a memberlist push/pull, after which both
// sides know the other is alive. A failed member is probed first, so that
// a partitioned one costs a short connect timeout, not memberlist's.
func (c *Cluster) rejoin(t rejoinTarget) {
	if t.member != "" {
		ok, refused := c.probe(t.peerAddr)
		c.setRefused(t.member, refused)
		if !ok {
			return
		}
	}
	ml := c.ml.Load()
	n, err := ml.Join([]string{t.addr})
	switch {
	case n == 0:
		c.log.Debug("rejoin failed", "addr", t.addr, "peer", t.member, "err", err)
	case t.member != "":
		c.log.Info("reached a failed member again; merging membership", "peer", t.member, "addr", t.addr)
	default:
		if name := c.memberAt(t.addr); name != "" {
			// A seed that is a failed member is tried both ways: its own
			// line above says it, with its name.
			c.log.Debug("reached a seed again; merging membership", "addr", t.addr, "peer", name)
			return
		}
		c.log.Info("reached a seed that was not a member; merging membership", "addr", t.addr)
	}
}

// memberAt is the name of the member whose gossip address is addr, or "".
func (c *Cluster) memberAt(addr string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, m := range c.members {
		if m.gossipAddr == addr {
			return name
		}
	}
	return ""
}

// seedCache resolves the seeds at most every seedRefresh and tells which of
// them are not live members (the reconnect loop's other targets).
type seedCache struct {
	c        *Cluster
	addrs    []string
	resolved time.Time
}

func (s *seedCache) targets(ctx context.Context) []rejoinTarget {
	c := s.c
	if len(c.cfg.Join) == 0 {
		return nil
	}
	if time.Since(s.resolved) > seedRefresh {
		addrs, err := expandSeeds(ctx, net.DefaultResolver.LookupHost, c.cfg.Join)
		if err != nil {
			c.log.Debug("some join seeds do not resolve", "err", err)
		}
		s.addrs, s.resolved = addrs, time.Now()
	}
	members := map[string]bool{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if m.state != stateDead { // alive, or left: a seed that left is not retried
			members[m.gossipAddr] = true
		}
	}
	var out []rejoinTarget
	for _, a := range s.addrs {
		if !members[a] && !c.seedsTrying[a] && !c.isSelf(a) {
			c.seedsTrying[a] = true
			out = append(out, rejoinTarget{addr: a})
		}
	}
	return out
}
