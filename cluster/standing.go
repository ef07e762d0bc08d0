package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// standing is whether this node is a member in good standing (Standing):
// joined, not isolated, not re-verifying after a stall, not shutting down.
// Each part is an atomic so the check on every subscribe and publish is a
// few loads and one clock read.
type standing struct {
	joined    atomic.Bool
	closing   atomic.Bool
	resyncing atomic.Bool
	isolated  atomic.Pointer[string] // why, or nil

	// Guarded by Cluster.mu (recountLocked): since when isolated, why,
	// and whether that was logged at warn yet.
	isolatedAt      time.Time
	isolatedWhy     string
	isolationWarned bool

	start      time.Time     // monotonic base of lastBeat
	lastBeat   atomic.Int64  // monotonic nanos since start of the maintenance loop's last tick
	stallAfter time.Duration // a gap between ticks this long means the process was frozen

	mu          sync.Mutex
	ch          chan struct{} // closed and replaced when standing may have changed
	resyncSeq   uint64        // the mark every peer must ack
	resyncUntil time.Time     // give up waiting for the acks then

	gapIncidents atomic.Uint64 // gaps emitted (one per incident)
	gapChannels  atomic.Uint64 // channels those gaps covered
	stalls       atomic.Uint64
}

// resyncTimeout bounds the re-verification after a stall: a peer that does
// not answer by then is left to failure detection and gaps.
const resyncTimeout = 10 * time.Second

// beatEvery is the maintenance loop's tick: the stall detector's
// resolution and the delay of early gaps.
const beatEvery = 100 * time.Millisecond

func (s *standing) init() {
	s.start = time.Now()
	s.ch = make(chan struct{})
	s.stallAfter = 2 * time.Second
}

// changed wakes everyone waiting in Ready.
func (s *standing) changed() {
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

func (s *standing) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// setIsolated records why this node is isolated ("": it is not) and
// reports whether that changed whether it is.
func (s *standing) setIsolated(why string) bool {
	var p *string
	if why != "" {
		p = &why
	}
	if old := s.isolated.Swap(p); (old == nil) != (p == nil) {
		s.changed() // under Cluster.mu: lock order Cluster.mu, then standing.mu
		return true
	}
	return false
}

// stalled reports whether the maintenance loop has not run for stallAfter:
// this process was frozen (SIGSTOP, a VM pause) and may have been declared
// dead meanwhile. It is checked on the publish path too, because after a
// thaw buffered client frames may be handled before the loop runs again.
func (s *standing) stalled() (time.Duration, bool) {
	d := time.Since(s.start) - time.Duration(s.lastBeat.Load())
	return d, d > s.stallAfter
}

// standing is nil while this node is a member in good standing.
func (c *Cluster) standing() error {
	s := &c.stand
	switch {
	case s.closing.Load():
		return ErrClosed
	case !s.joined.Load():
		return fmt.Errorf("%w: %s", ErrJoining, c.joinProgress())
	}
	if d, ok := s.stalled(); ok {
		c.startResync(d)
	}
	if s.resyncing.Load() {
		return ErrResyncing
	}
	if why := s.isolated.Load(); why != nil {
		return fmt.Errorf("%w: %s", ErrIsolated, *why)
	}
	return nil
}

// ready blocks until standing is nil or ctx ends.
func (c *Cluster) ready(ctx context.Context) error {
	for {
		ch := c.stand.wait()
		err := c.standing()
		if err == nil {
			return nil
		}
		if err == ErrClosed {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
	}
}

// markJoined ends the joining phase: the node serves from now on.
func (c *Cluster) markJoined() {
	if c.stand.joined.CompareAndSwap(false, true) {
		c.stand.changed()
	}
}

// joinProgress says what the joining phase waits for.
func (c *Cluster) joinProgress() string {
	ml := c.ml.Load()
	if ml == nil || ml.NumMembers() <= 1 {
		if c.joinRefused.Load() {
			return "refused by a seed of " + strings.Join(c.cfg.Join, ", ") +
				": is that its gossip port, and does it have the same --secret and --cluster-name?"
		}
		return "contacting seeds " + strings.Join(c.cfg.Join, ", ")
	}
	if pending := c.unsyncedPeers(); len(pending) > 0 {
		return "linking with " + strings.Join(pending, ", ")
	}
	return "joined"
}

// unsyncedPeers lists the live peers not yet linked both ways: our
// snapshot acked on our link to them, theirs applied on their link to us.
// A peer whose process is known to be gone (its peer and gossip ports
// both refused us: the host is up, nothing listens) and that has no link
// to us is not waited for, as in AwaitInterest: it has no subscribers to
// lose, and memberlist may take seconds to declare it dead (a node
// starting right after another crashed would refuse clients until then).
// If it comes back, it is a new process that links first.
func (c *Cluster) unsyncedPeers() []string {
	var out []string
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, p := range c.peers {
		m := c.members[name]
		if p.crashed.Load() && (m == nil || !m.in.inUp) {
			continue
		}
		if m == nil || !m.in.inUp || !p.outboundSynced() {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// startResync begins re-verifying membership after a stall of d: every
// live peer must ack a fresh mark on our link to it, which proves it
// still has us as a member and our link is up. Until then subscribes and
// publishes are refused (ErrResyncing).
func (c *Cluster) startResync(d time.Duration) {
	s := &c.stand
	if !s.resyncing.CompareAndSwap(false, true) {
		return
	}
	s.stalls.Add(1)
	seq := c.sendMarks()
	s.mu.Lock()
	s.resyncSeq, s.resyncUntil = seq, time.Now().Add(resyncTimeout)
	s.mu.Unlock()
	s.changed()
	c.log.Warn("this process did not run for a while (SIGSTOP, a VM pause, an overloaded host); "+
		"peers may have declared it dead: refusing subscribes and publishes until every peer confirms it",
		"stalled_for", d.Round(time.Millisecond).String())
}

// checkResync ends a re-verification once every live peer acked the mark,
// or when it times out.
func (c *Cluster) checkResync(now time.Time) {
	s := &c.stand
	if !s.resyncing.Load() {
		return
	}
	s.mu.Lock()
	seq, until := s.resyncSeq, s.resyncUntil
	s.mu.Unlock()
	var waiting []string
	for _, p := range c.peerList() {
		if acked, _, gone := p.ackState(); !gone && acked < seq {
			waiting = append(waiting, p.name)
		}
	}
	switch {
	case len(waiting) == 0:
		c.log.Info("membership re-verified after the stall; serving again")
	case now.After(until):
		slices.Sort(waiting)
		c.log.Warn("some peers did not confirm after the stall; serving again (their subscribers get gaps if they missed anything)",
			"peers", strings.Join(waiting, ", "))
	default:
		return
	}
	s.resyncing.Store(false)
	s.changed()
}

// maintainLoop is the cluster's clock: it feeds the stall detector, emits
// queued and overdue gaps, ends re-verifications and prunes old members.
func (c *Cluster) maintainLoop() {
	defer c.wg.Done()
	t := time.NewTicker(beatEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			c.beat(now)
		}
	}
}

func (c *Cluster) beat(now time.Time) {
	s := &c.stand
	if d, ok := s.stalled(); ok {
		c.startResync(d)
	}
	s.lastBeat.Store(int64(time.Since(s.start)))
	for _, g := range c.gaps.take() {
		c.emitGap(g.peer, g.why, g.chs)
	}
	c.checkOverdue(now)
	c.checkResync(now)
	c.durables.expire(now, c.livePeers())
	c.mu.Lock()
	c.pruneLocked(now)
	c.recountLocked(now)
	c.mu.Unlock()
}
