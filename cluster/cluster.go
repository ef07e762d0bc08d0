package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/meshcast/meshcast/internal/relay"
)

var errSnapshotTooLarge = errors.New("interest snapshot does not fit the link queue")

// Cluster is this node's membership in a meshcast cluster. Create it with
// New and give it to hub.New (hub.Config.Cluster), which starts it and
// shuts it down with the hub.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	logp  *atomic.Pointer[slog.Logger] // what memberlist's log lines go to
	name  string
	epoch uint64 // this process, random: peers tell a restart from a reconnect
	hs    handshake

	transport     *gossipTransport // memberlist's, screened (gossipnet.go)
	peerLn        net.Listener
	gossipPort    int
	peerPort      int
	advertiseHost string // host in our peer-link address, fixed in start

	ctx    context.Context // cancelled by Shutdown; parent of every peer's context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the cluster starts

	recv relay.Receiver // set by Attach, read-only afterwards
	ml   atomic.Pointer[memberlist.Memberlist]

	local    localInterest
	table    interestTable
	stand    standing
	gaps     gapQueue
	durables durables      // stamped publishes waiting to be stored by peers
	fetches  fetches       // history requests waiting for answers
	pres     localPresence // presence.go; its entries are guarded by local.mu

	// mu guards the membership as this node sees it: the live peers and
	// every member record (members.go), incident state included.
	mu      sync.Mutex
	peers   map[string]*peer
	members map[string]*member
	closed  bool // no new peers once Shutdown began
	// seedsTrying: seed addresses with a rejoin attempt in flight.
	seedsTrying map[string]bool

	published atomic.Bool // a publish was made: links say whether we are fresh
	draining  atomic.Bool // Shutdown began: dialers stop, links end with a bye

	lastJoinErr       string        // the join loop's last failure, for its final error (joinLoop only)
	joinFailLogged    bool          // the join loop logged a failure at info (joinLoop only)
	joinResolveLogged bool          // the join loop logged seeds that do not resolve (joinLoop only)
	joinRefused       atomic.Bool   // the join loop's last failure included a seed that refused us
	reconnectKick     chan struct{} // capacity 1: a member failed, try it now
	linkEvent         chan struct{} // capacity 1: a link synced or an ack came

	interestTimeouts  atomic.Uint64
	handshakeFailures atomic.Uint64
	malformedFrames   atomic.Uint64
	rejectedLinks     atomic.Uint64
	tooLarge          atomic.Uint64
	// Publishes not forwarded, summed over every peer this node ever had:
	// a peer's own counters go with it, these do not (monotonic metrics).
	peerDrops, peerDropsDown atomic.Uint64

	gate *connGate // inbound links not yet proved (inbound.go)
	junk *junkLog  // refused input, summed up once a minute (junk.go)

	attachOnce   sync.Once
	shutdownOnce sync.Once
	shutdownErr  error
	leaving      atomic.Bool // set before Leave, gossiped in metadata
}

// New validates cfg and binds the gossip and peer-link listeners, so their
// ports are known and a port in use is reported at once; it does not join.
// Pass the result to hub.New, which starts it. A Cluster never given to a
// hub must be shut down by its creator.
func New(cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg: cfg, log: cfg.Logger, logp: &atomic.Pointer[slog.Logger]{},
		peers: make(map[string]*peer), members: make(map[string]*member), seedsTrying: make(map[string]bool),
		local: localInterest{chans: make(map[string]*localChan)},
		table: interestTable{byCh: make(map[string][]*peer)},

		reconnectKick: make(chan struct{}, 1),
		linkEvent:     make(chan struct{}, 1),
	}
	c.gate = newConnGate(maxPendingHandshakes, maxPendingPerIP, c.isMemberIP)
	c.junk = newJunkLog()
	c.logp.Store(c.log)
	var b [8]byte
	_, _ = rand.Read(b[:])
	c.epoch = binary.BigEndian.Uint64(b[:]) | 1 // never 0: 0 means "no epoch yet"
	c.stand.init()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.peerLn, err = net.Listen("tcp", cfg.PeerAddr); err != nil {
		return nil, fmt.Errorf("cluster: listen for peer links on %s: %w", cfg.PeerAddr, err)
	}
	c.peerPort = c.peerLn.Addr().(*net.TCPAddr).Port
	if err := c.bindGossip(); err != nil {
		c.peerLn.Close()
		return nil, err
	}
	c.name = cfg.NodeName
	if c.name == "" {
		host, _ := os.Hostname()
		c.name = host + ":" + strconv.Itoa(c.peerPort)
	}
	c.hs = handshake{key: deriveKey(cfg.Secret, "peer-link"), cluster: cfg.ClusterName, name: c.name, epoch: c.epoch}
	return c, nil
}

// bindGossip creates memberlist's transport now so the port is known.
func (c *Cluster) bindGossip() error {
	host, portStr, err := net.SplitHostPort(c.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("%w: GossipAddr %q: %w", ErrInvalidConfig, c.cfg.GossipAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("%w: GossipAddr port %q", ErrInvalidConfig, portStr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	gate := newConnGate(maxStrangerGossipStreams, maxGossipStreamsPerIP, c.isMemberIP)
	gate.maxMembers = maxMemberGossipStreams
	key := deriveKey(c.cfg.Secret, "memberlist")
	// Port 0 binds TCP then UDP on the same number, which can race with
	// other processes: retry like memberlist itself does.
	tries := 1
	if port == 0 {
		tries = 10
	}
	for range tries {
		if c.transport, err = newGossipTransport(host, port, c.cfg.ClusterName, key, gate, c.junk, c.logp); err == nil {
			c.gossipPort = c.transport.GetAutoBindPort()
			return nil
		}
	}
	return fmt.Errorf("cluster: bind gossip on %s: %w", c.cfg.GossipAddr, err)
}

// Attach is called by hub.New, once: it starts memberlist, the peer-link
// listener, the join and the background loops, with r receiving what peers
// send. log is the hub's logger, used when Config.Logger is nil.
func (c *Cluster) Attach(r relay.Receiver, log *slog.Logger) (relay.Relay, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: nil Receiver", ErrInvalidConfig)
	}
	err := errors.New("cluster: already attached to a hub")
	c.attachOnce.Do(func() { err = c.start(r, log) })
	if err != nil {
		return nil, err
	}
	return clusterRelay{c}, nil
}

func (c *Cluster) start(r relay.Receiver, log *slog.Logger) error {
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	if c.cfg.Logger == nil && log != nil {
		c.log = log.With(slog.String("component", "cluster"))
		c.logp.Store(c.log)
	}
	c.recv = r
	if len(c.cfg.Secret) == 0 {
		c.log.Warn("cluster secret is empty: gossip is unencrypted and any host that reaches the ports can join")
	}
	mc, err := c.memberlistConfig()
	if err != nil {
		return err
	}
	c.stand.stallAfter = max(time.Second, 2*mc.ProbeInterval)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster: start memberlist: %w", err)
	}
	c.ml.Store(ml)
	c.wg.Add(4)
	go c.acceptLoop()
	go c.maintainLoop()
	go c.reconnectLoop()
	go c.junkLoop()
	if len(c.cfg.Join) > 0 {
		c.wg.Add(1)
		go c.joinLoop()
	} else {
		c.markJoined()
	}
	c.log.Info("cluster started", "node", c.name, "gossip_port", c.gossipPort, "peer_port", c.peerPort)
	return nil
}

// Name returns this node's name.
func (c *Cluster) Name() string { return c.name }

// GossipPort returns the bound memberlist port.
func (c *Cluster) GossipPort() int { return c.gossipPort }

// PeerPort returns the bound peer-link port.
func (c *Cluster) PeerPort() int { return c.peerPort }

// Shutdown flushes every peer link and ends it with a bye (so peers know
// nothing was lost), leaves the cluster (bounded by ctx) so peers drop this
// node at once, stops memberlist, closes the listener and every link, and
// waits for every goroutine. It is idempotent: a later call returns the
// first result, except after a first call whose ctx ended before every
// goroutine stopped, when it waits for them again (bounded by its own ctx)
// and returns nil once they have, so a caller can wait for a clean finish.
// The hub calls it; call it yourself only for a Cluster you did not give to
// hub.New.
//
// One goroutine is not the Cluster's to wait for: memberlist does not stop
// a probe of a peer it has in flight, which ends by itself within the
// memberlist ProbeInterval (1 s by default) after Shutdown returns. A
// leak check right after Shutdown (goleak.VerifyNone) may see it; let such
// a check retry for a few seconds before it reports.
func (c *Cluster) Shutdown(ctx context.Context) error {
	first := false
	c.shutdownOnce.Do(func() { first, c.shutdownErr = true, c.shutdown(ctx, true) })
	if first || !errors.Is(c.shutdownErr, errGoroutinesLeft) {
		return c.shutdownErr
	}
	return c.waitGoroutines(ctx) // the first call's other errors were reported by it
}

// errGoroutinesLeft marks a shutdown whose ctx ended before every goroutine
// stopped: a later Shutdown waits for them again.
var errGoroutinesLeft = errors.New("cluster: waiting for goroutines")

// waitGoroutines waits for every goroutine of c, or until ctx ends.
func (c *Cluster) waitGoroutines(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errGoroutinesLeft, ctx.Err())
	}
}

// shutdown stops the node; without graceful it tells no one, as a crash
// would (the tests' kill).
func (c *Cluster) shutdown(ctx context.Context, graceful bool) error {
	c.attachOnce.Do(func() {}) // a later Attach fails
	c.stand.closing.Store(true)
	c.stand.changed()
	var errs []error
	if ml := c.ml.Load(); ml != nil {
		if graceful {
			c.drainLinks(ctx)
			c.leave(ctx, ml)
		}
		if err := ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("cluster: stop memberlist: %w", err))
		}
	} else if err := c.transport.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: stop gossip transport: %w", err))
	}
	c.cancel()
	c.peerLn.Close()
	c.mu.Lock()
	c.closed = true
	peers := c.peers
	c.peers = map[string]*peer{}
	c.mu.Unlock()
	for _, p := range peers {
		p.stop()
	}
	if err := c.waitGoroutines(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// courtesyTimeout bounds the parts of a shutdown that only help peers
// (flushing links, announcing the leave): when the whole cluster stops at
// once nobody is left to hear them, and peers would detect the failure
// anyway. They get a short wait and a warning, never an error.
func courtesyTimeout(ctx context.Context) time.Duration {
	timeout := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok && time.Until(dl)/3 < timeout {
		timeout = time.Until(dl) / 3
	}
	return timeout
}

// drainLinks stops redialling, lets every outbound link write what is
// queued followed by a bye, and waits for them, bounded.
func (c *Cluster) drainLinks(ctx context.Context) {
	c.draining.Store(true)
	var outs []*outConn
	for _, p := range c.peerList() {
		if oc := p.out.Load(); oc != nil {
			oc.q.finish()
			outs = append(outs, oc)
		}
	}
	t := time.NewTimer(courtesyTimeout(ctx))
	defer t.Stop()
	for _, oc := range outs {
		select {
		case <-oc.done:
		case <-t.C:
			c.log.Warn("peer links not flushed in time; peers will report a gap to their subscribers")
			return
		}
	}
}

// leave tells peers we are leaving, not dying, then leaves.
func (c *Cluster) leave(ctx context.Context, ml *memberlist.Memberlist) {
	timeout := courtesyTimeout(ctx)
	c.leaving.Store(true)
	if err := ml.UpdateNode(timeout / 2); err != nil {
		c.log.Debug("announce leaving", "err", err)
	}
	if err := ml.Leave(timeout / 2); err != nil {
		c.log.Warn("leave not confirmed by any peer; they will detect the failure instead", "err", err)
	}
}

// peer returns the live peer called name, or nil.
func (c *Cluster) peer(name string) *peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers[name]
}

// peerList returns the live peers.
func (c *Cluster) peerList() []*peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := make([]*peer, 0, len(c.peers))
	for _, p := range c.peers {
		ps = append(ps, p)
	}
	return ps
}

// signal does a non-blocking send on a capacity-1 wake-up channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
