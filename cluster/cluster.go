package cluster

import (
	"context"
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
)

var errSnapshotTooLarge = errors.New("interest snapshot does not fit the link queue")

// Cluster is this node's membership in a meshcast cluster. It satisfies the
// hub's Relay interface (Publish, Interest, AwaitInterest).
type Cluster struct {
	cfg  Config
	log  *slog.Logger
	name string
	hs   handshake

	transport     *memberlist.NetTransport
	peerLn        net.Listener
	gossipPort    int
	peerPort      int
	advertiseHost string // host in our peer-link address, fixed in Start

	ctx    context.Context // cancelled by Shutdown; parent of every peer's context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the cluster starts

	recv Receiver // set by Start, read-only afterwards
	ml   atomic.Pointer[memberlist.Memberlist]

	local localInterest
	table interestTable

	peersMu  sync.RWMutex
	peers    map[string]*peer
	members  map[string]MemberStats // every member seen, from memberlist events, for Stats
	departed []string               // members that left or died, oldest first
	closed   bool                   // no new peers once Shutdown began

	interestTimeouts  atomic.Uint64
	handshakeFailures atomic.Uint64
	malformedFrames   atomic.Uint64
	rejectedLinks     atomic.Uint64
	tooLarge          atomic.Uint64

	handshakeSlots chan struct{} // inbound links not yet proved; see maxPendingHandshakes

	startOnce    sync.Once
	shutdownOnce sync.Once
	shutdownErr  error
	skipLeave    atomic.Bool // test hook: die without telling anyone
	leaving      atomic.Bool // set before Leave, gossiped in metadata
}

// Receiver is what the local hub gives the cluster. Deliver is called from a
// peer link's reader goroutine for each publish that arrives from a peer, in
// link order; it must not block for long; data is only valid during the call
// (the receiver copies what it keeps). ch may be kept.
type Receiver interface {
	Deliver(ch string, data []byte)
}

// New validates cfg and binds the gossip and peer-link listeners, so their
// ports are known; it does not join. Call Start, then Shutdown.
func New(cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg: cfg, log: cfg.Logger,
		peers: make(map[string]*peer), members: make(map[string]MemberStats),
		local: localInterest{chans: make(map[string]uint64)},
		table: interestTable{byCh: make(map[string][]*peer)},

		handshakeSlots: make(chan struct{}, maxPendingHandshakes),
	}
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
	c.hs = handshake{key: deriveKey(cfg.Secret, "peer-link"), cluster: cfg.ClusterName, name: c.name}
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
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: memberlistLogger(c.log)}
	// Port 0 binds TCP then UDP on the same number, which can race with
	// other processes: retry like memberlist itself does.
	tries := 1
	if port == 0 {
		tries = 10
	}
	for range tries {
		if c.transport, err = memberlist.NewNetTransport(nc); err == nil {
			c.gossipPort = c.transport.GetAutoBindPort()
			return nil
		}
	}
	return fmt.Errorf("cluster: bind gossip on %s: %w", c.cfg.GossipAddr, err)
}

// Start starts memberlist, the peer-link listener and the background join.
func (c *Cluster) Start(r Receiver) error {
	if r == nil {
		return fmt.Errorf("%w: nil Receiver", ErrInvalidConfig)
	}
	err := ErrClosed
	c.startOnce.Do(func() { err = c.start(r) })
	return err
}

func (c *Cluster) start(r Receiver) error {
	if c.ctx.Err() != nil {
		return ErrClosed
	}
	c.recv = r
	if len(c.cfg.Secret) == 0 {
		c.log.Warn("cluster secret is empty: gossip is unencrypted and any host that reaches the ports can join")
	}
	mc, err := c.memberlistConfig()
	if err != nil {
		return err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster: start memberlist: %w", err)
	}
	c.ml.Store(ml)
	c.wg.Add(1)
	go c.acceptLoop()
	if len(c.cfg.Join) > 0 {
		c.wg.Add(1)
		go c.joinLoop()
	}
	c.log.Info("cluster started", "node", c.name, "gossip_port", c.gossipPort, "peer_port", c.peerPort)
	return nil
}

// LocalNode returns this node's name.
func (c *Cluster) LocalNode() string { return c.name }

// GossipPort returns the bound memberlist port.
func (c *Cluster) GossipPort() int { return c.gossipPort }

// PeerPort returns the bound peer-link port.
func (c *Cluster) PeerPort() int { return c.peerPort }

// Shutdown leaves the cluster (bounded by ctx) so peers drop this node at
// once, stops memberlist, closes the listener and every link, and waits for
// every goroutine. It is idempotent; later calls return the first result.
func (c *Cluster) Shutdown(ctx context.Context) error {
	c.shutdownOnce.Do(func() { c.shutdownErr = c.shutdown(ctx) })
	return c.shutdownErr
}

func (c *Cluster) shutdown(ctx context.Context) error {
	c.startOnce.Do(func() {}) // a later Start fails with ErrClosed
	var errs []error
	if ml := c.ml.Load(); ml != nil {
		if !c.skipLeave.Load() {
			// Leaving is a courtesy to peers, not a condition of stopping:
			// when the whole cluster stops at once nobody is left to hear
			// it, and they would detect the failure anyway. So it gets a
			// short, bounded wait and a warning, not an error.
			timeout := 2 * time.Second
			if dl, ok := ctx.Deadline(); ok && time.Until(dl)/2 < timeout {
				timeout = time.Until(dl) / 2
			}
			// Tell peers we are leaving, not dying, then leave.
			c.leaving.Store(true)
			if err := ml.UpdateNode(timeout / 2); err != nil {
				c.log.Debug("announce leaving", "err", err)
			}
			if err := ml.Leave(timeout / 2); err != nil {
				c.log.Warn("leave not confirmed by any peer; they will detect the failure instead", "err", err)
			}
		}
		if err := ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("cluster: stop memberlist: %w", err))
		}
	} else if err := c.transport.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: stop gossip transport: %w", err))
	}
	c.cancel()
	c.peerLn.Close()
	c.peersMu.Lock()
	c.closed = true
	peers := c.peers
	c.peers = map[string]*peer{}
	c.peersMu.Unlock()
	for _, p := range peers {
		p.stop()
	}
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("cluster: waiting for goroutines: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// kill stops the node without leaving, as a crash would (tests).
func (c *Cluster) kill() {
	c.skipLeave.Store(true)
	c.Shutdown(context.Background())
}

// peer returns the live peer called name, or nil.
func (c *Cluster) peer(name string) *peer {
	c.peersMu.RLock()
	defer c.peersMu.RUnlock()
	return c.peers[name]
}

// peerList returns the live peers.
func (c *Cluster) peerList() []*peer {
	c.peersMu.RLock()
	defer c.peersMu.RUnlock()
	ps := make([]*peer, 0, len(c.peers))
	for _, p := range c.peers {
		ps = append(ps, p)
	}
	return ps
}

// peerAlive adds a peer or updates its address. Called from memberlist's
// event callbacks: it must not block.
func (c *Cluster) peerAlive(name, addr string, leaving bool) {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	if c.closed {
		return
	}
	c.members[name] = MemberStats{Name: name, Addr: addr, State: "alive"}
	if p, ok := c.peers[name]; ok {
		p.leaving.Store(leaving)
		p.setAddr(addr)
		return
	}
	p := newPeer(c, name, addr)
	p.leaving.Store(leaving)
	c.peers[name] = p
	c.wg.Add(1)
	go p.runDialer()
	c.log.Info("peer joined", "peer", name, "addr", addr)
}

// peerGone drops a peer that left or died: both links close and its
// interest is forgotten. Called from memberlist's event callbacks.
func (c *Cluster) peerGone(name string) {
	c.peersMu.Lock()
	p, ok := c.peers[name]
	delete(c.peers, name)
	state := "dead"
	if ok && p.leaving.Load() {
		state = "left"
	}
	if m, known := c.members[name]; known && !c.closed {
		m.State = state
		c.members[name] = m
		c.departed = append(c.departed, name)
		if len(c.departed) > maxDeparted { // bounded memory: forget the oldest
			if old := c.departed[0]; c.members[old].State != "alive" {
				delete(c.members, old)
			}
			c.departed = c.departed[1:]
		}
	}
	c.peersMu.Unlock()
	if ok {
		p.stop()
		c.log.Info("peer gone", "peer", name, "state", state)
	}
}

// maxDeparted bounds the dead/left members remembered for Stats.
const maxDeparted = 256
