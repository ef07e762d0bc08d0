package cluster

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/meshcast/meshcast/internal/logsample"
)

// nodeMeta is gossiped with each node (msgpack, well under 512 bytes).
type nodeMeta struct {
	PeerAddr string `msgpack:"a"` // peer-link "host:port"; empty host means the gossip address
	Proto    uint8  `msgpack:"v"` // peer-link protocol version
	// Leaving is set just before a graceful Leave. memberlist's NotifyLeave
	// does not say whether a node left or died; this does.
	Leaving bool `msgpack:"l,omitempty"`
	// Epoch identifies the process: a restart under the same name and
	// address changes the metadata, so memberlist reports it (NotifyUpdate)
	// and peers drop their stale links at once.
	Epoch uint64 `msgpack:"e"`
}

// delegate adapts memberlist's callbacks to the Cluster. Callbacks run on
// memberlist's goroutines, some with its locks held: they never block, never
// call back into memberlist, and never keep the caller's slices.
type delegate struct{ c *Cluster }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	b, err := msgpack.Marshal(nodeMeta{PeerAddr: d.c.advertisedPeerAddr(), Proto: ProtocolVersion,
		Leaving: d.c.leaving.Load(), Epoch: d.c.epoch})
	if err != nil || len(b) > limit {
		d.c.log.Error("node metadata does not fit", "limit", limit, "err", err)
		return nil
	}
	return b
}

// Peer links carry all application traffic; gossip carries only membership.
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.alive(n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.alive(n) }

func (d *delegate) NotifyLeave(n *memberlist.Node) {
	if n.Name == d.c.name {
		return
	}
	d.c.peerGone(n.Name)
}

func (d *delegate) alive(n *memberlist.Node) {
	if n.Name == d.c.name {
		return
	}
	info, err := nodeInfoOf(n)
	if err != nil {
		d.c.log.Warn("ignoring member with unusable metadata", "peer", n.Name, "err", err)
		return
	}
	d.c.peerAlive(info)
}

// nodeInfoOf reads a member's addresses and metadata.
func nodeInfoOf(n *memberlist.Node) (nodeInfo, error) {
	var m nodeMeta
	if err := checkMsgpack(n.Meta); err != nil {
		return nodeInfo{}, fmt.Errorf("decode metadata: %w", err)
	}
	if err := msgpack.Unmarshal(n.Meta, &m); err != nil {
		return nodeInfo{}, fmt.Errorf("decode metadata: %w", err)
	}
	if m.Proto != ProtocolVersion {
		return nodeInfo{}, fmt.Errorf("peer-link protocol %d, we speak %d", m.Proto, ProtocolVersion)
	}
	host, port, err := net.SplitHostPort(m.PeerAddr)
	if err != nil {
		return nodeInfo{}, fmt.Errorf("peer address %q: %w", m.PeerAddr, err)
	}
	if host == "" {
		host = n.Addr.String()
	}
	return nodeInfo{
		name:       n.Name,
		gossipAddr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		peerAddr:   net.JoinHostPort(host, port),
		leaving:    m.Leaving,
		epoch:      m.Epoch,
	}, nil
}

// advertisedPeerAddr is the peer-link address put in our metadata: the
// advertised host when configured, else the host memberlist advertises.
func (c *Cluster) advertisedPeerAddr() string {
	return net.JoinHostPort(c.advertiseHost, strconv.Itoa(c.peerPort))
}

// memberlistConfig builds memberlist's config from DefaultLANConfig.
func (c *Cluster) memberlistConfig() (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.name
	mc.Transport = c.transport
	mc.BindAddr, _, _ = net.SplitHostPort(c.cfg.GossipAddr)
	mc.BindPort = c.gossipPort
	mc.AdvertisePort = c.gossipPort
	mc.Label = c.cfg.ClusterName
	// A node restarted under the same name with a new address (a
	// Kubernetes pod with a new IP) may take over its dead entry.
	mc.DeadNodeReclaimTime = 10 * time.Second
	if c.cfg.AdvertiseAddr != "" {
		ip, err := resolveHost(c.cfg.AdvertiseAddr)
		if err != nil {
			return nil, err
		}
		mc.AdvertiseAddr = ip
	}
	ip, _, err := c.transport.FinalAdvertiseAddr(mc.AdvertiseAddr, c.gossipPort)
	if err != nil {
		return nil, fmt.Errorf("cluster: advertise address: %w", err)
	}
	c.advertiseHost = ip.String()
	if key := deriveKey(c.cfg.Secret, "memberlist"); key != nil {
		kr, err := memberlist.NewKeyring(nil, key)
		if err != nil {
			return nil, fmt.Errorf("cluster: keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	d := &delegate{c: c}
	mc.Delegate, mc.Events = d, d
	mc.Logger = memberlistLogger(c.logp, c.junk)
	if c.cfg.Memberlist != nil {
		c.cfg.Memberlist(mc)
	}
	mc.Transport = c.transport // the hook must not swap the bound transport
	return mc, nil
}

func resolveHost(host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return host, nil
	}
	ips, err := net.DefaultResolver.LookupHost(context.Background(), host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("%w: AdvertiseAddr %q does not resolve: %v", ErrInvalidConfig, host, err)
	}
	return ips[0], nil
}

// memberlistLogger turns memberlist's "[LEVEL] memberlist: msg" lines into
// slog records, at the level an operator should see them (memberlistLevel).
// lp is read per line: the logger is chosen when the cluster is attached.
// Lines about junk input are counted in junk and logged at debug.
func memberlistLogger(lp *atomic.Pointer[slog.Logger], junk *junkLog) *log.Logger {
	return log.New(slogWriter{lp, junk, newRepeats(), time.Now}, "", 0)
}

type slogWriter struct {
	lp      *atomic.Pointer[slog.Logger]
	junk    *junkLog
	repeats *logsample.Sampler[string] // memberlist's warnings, by repeatKind
	now     func() time.Time
}

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, lv := range []struct {
		prefix string
		level  slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if rest, ok := strings.CutPrefix(line, lv.prefix); ok {
			level, line = lv.level, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	level = memberlistLevel(level, line)
	if c, junk := w.junk.memberlistJunk(line); junk {
		if c != nil {
			c.add(fromIP(line))
		}
		level = slog.LevelDebug
	}
	attrs := []slog.Attr{slog.String("subsystem", "memberlist")}
	if level >= slog.LevelWarn {
		level, attrs = w.repeats.Apply(repeatKind(line), w.now(), level, "repeated_since_last", attrs)
	}
	// Not "component": the logger has one already ("cluster"), and a key
	// twice makes JSON lines that log pipelines read either way.
	w.lp.Load().LogAttrs(context.Background(), level, line, attrs...)
	return len(p), nil
}

// repeatWindow is how often one kind of memberlist warning is logged at
// its level: a member that cannot be reached the way it advertises itself
// (an IPv6 address to an IPv4 node) made a WARN line every gossip round,
// 5 a second, for as long as it lasted.
const repeatWindow = 10 * time.Second

// newRepeats samples memberlist's warnings by kind (the line's first
// words, before any address): the first of a window at its level, the
// others at debug, counted in the next one logged. Kinds name members at
// most; past 256 they are forgotten rather than kept growing.
func newRepeats() *logsample.Sampler[string] {
	return &logsample.Sampler[string]{Window: repeatWindow, MaxKinds: 256}
}

// repeatKind is a line's first four words, ending at a ':' ("Failed to
// send gossip to [fd00::2]:7946: ..." is "Failed to send gossip").
func repeatKind(line string) string {
	words := strings.Fields(line)
	words = words[:min(len(words), 4)]
	for i, w := range words {
		if strings.HasSuffix(w, ":") {
			return strings.Join(words[:i+1], " ")
		}
	}
	return strings.Join(words, " ")
}

// memberlistLevel lowers memberlist's levels for what the cluster handles
// by design (a node refuting its death when it comes back is one). Failure detection reports an unreachable member at ERROR on
// every probe ("Failed fallback TCP ping", "Push/Pull ... failed"), which
// would page anyone alerting on errors during a partition that heals by
// itself; our own INFO lines say what happened to which node instead.
func memberlistLevel(level slog.Level, line string) slog.Level {
	switch {
	case strings.Contains(line, net.ErrClosed.Error()):
		return slog.LevelDebug // our own sockets closing at shutdown
	case strings.HasPrefix(line, "Refuting a "):
		// A node restarted under its name, thawed or back from a
		// partition, telling the others it is alive: what it is meant to
		// do, and our own lines say which of these happened.
		return slog.LevelInfo
	case level < slog.LevelError:
		return level
	}
	for _, routine := range []string{
		"Failed fallback TCP ping", "Failed to send ping", "Failed to send UDP ping",
		"Failed to send indirect UDP ping", "Failed to send UDP compound ping", "Failed to send gossip",
		"Push/Pull with", "Failed to send ack", "Failed to forward ack", "Failed to send indirect ping",
		"Failed to send nack", "Conflicting address",
	} {
		if strings.Contains(line, routine) {
			return slog.LevelWarn
		}
	}
	return level
}
