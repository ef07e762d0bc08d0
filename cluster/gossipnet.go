package cluster

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// gossipTransport is memberlist's transport: a TCP listener for streams
// and a UDP socket for packets on the gossip port, as memberlist's own
// NetTransport, with everything that comes in screened before memberlist
// sees it (gossipguard.go). It replaces NetTransport rather than wrapping
// it because NetTransport reads each UDP packet into a fresh 64 KiB
// buffer on a goroutine of its own: under a flood of junk packets that
// allocation and the hand-over between goroutines cost more than
// memberlist's work. Here one loop reads every packet into one buffer,
// drops junk there, and copies only what memberlist keeps.
type gossipTransport struct {
	tcp    *net.TCPListener
	udp    *net.UDPConn
	bindIP string
	logp   *atomic.Pointer[slog.Logger]

	label   string
	aead    cipher.AEAD // the gossip key's, as memberlist's; nil without a secret
	gate    *connGate
	junk    *junkCounter // streams
	pktJunk *junkCounter // packets

	streams chan net.Conn           // screened streams, for memberlist
	packets chan *memberlist.Packet // screened packets, for memberlist
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the accept and read loops, every screen
	once    sync.Once
}

// udpBufSize is the largest UDP packet read, as memberlist's.
const udpBufSize = 65536

// newGossipTransport binds TCP then UDP on host:port (port 0: the port
// TCP got) and starts reading.
func newGossipTransport(host string, port int, label string, key []byte, gate *connGate, junk *junkLog,
	logp *atomic.Pointer[slog.Logger]) (*gossipTransport, error) {
	aead, err := gossipAEAD(key)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: tcp.Addr().(*net.TCPAddr).Port})
	if err != nil {
		tcp.Close()
		return nil, err
	}
	setUDPRecvBuf(udp)
	ctx, cancel := context.WithCancel(context.Background())
	t := &gossipTransport{tcp: tcp, udp: udp, bindIP: host, logp: logp, label: label, aead: aead, gate: gate,
		junk: &junk.streams, pktJunk: &junk.packets,
		streams: make(chan net.Conn), packets: make(chan *memberlist.Packet), ctx: ctx, cancel: cancel}
	t.wg.Add(2)
	go t.acceptStreams()
	go t.readPackets()
	return t, nil
}

// setUDPRecvBuf asks for a 2 MiB receive buffer, or the most the system
// gives, as memberlist does: gossip comes in bursts.
func setUDPRecvBuf(c *net.UDPConn) {
	for size := 2 << 20; size > 0; size /= 2 {
		if c.SetReadBuffer(size) == nil {
			return
		}
	}
}

var _ memberlist.NodeAwareTransport = (*gossipTransport)(nil)

// GetAutoBindPort is the bound port (the one chosen for port 0).
func (t *gossipTransport) GetAutoBindPort() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr is memberlist's NetTransport's: the given address,
// else a private IP when bound to every interface, else the bound one.
func (t *gossipTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		addr := net.ParseIP(ip)
		if addr == nil {
			return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
		}
		if ip4 := addr.To4(); ip4 != nil {
			addr = ip4
		}
		return addr, port, nil
	}
	if t.bindIP != "0.0.0.0" {
		return t.tcp.Addr().(*net.TCPAddr).IP, t.GetAutoBindPort(), nil
	}
	private, err := sockaddr.GetPrivateIP()
	if err != nil {
		return nil, 0, fmt.Errorf("failed to get interface addresses: %w", err)
	}
	addr := net.ParseIP(private)
	if addr == nil {
		return nil, 0, errors.New("no private IP address found, and explicit IP not provided")
	}
	return addr, t.GetAutoBindPort(), nil
}

func (t *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	addr, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, addr)
	return time.Now(), err // after the write, as memberlist's: RTTs err long, not short
}

func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

// StreamCh is what memberlist reads streams from: screened ones only.
func (t *gossipTransport) StreamCh() <-chan net.Conn { return t.streams }

// PacketCh is what memberlist reads packets from: screened ones only.
func (t *gossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// Shutdown closes the sockets and every stream being screened, and waits
// for the loops. Idempotent (memberlist calls it, and so do we for a
// cluster never started).
func (t *gossipTransport) Shutdown() error {
	t.once.Do(func() {
		t.cancel()
		t.tcp.Close()
		t.udp.Close()
		t.wg.Wait()
	})
	return nil
}

// acceptStreams hands every accepted connection to admit until Shutdown.
// An accept error (out of file descriptors) is retried after a pause
// that doubles up to a second, as memberlist's.
func (t *gossipTransport) acceptStreams() {
	defer t.wg.Done()
	b := newBackoff(5*time.Millisecond, time.Second)
	for {
		conn, err := t.tcp.AcceptTCP()
		if err == nil {
			b.reset()
			t.admit(conn)
			continue
		}
		if t.ctx.Err() != nil {
			return
		}
		t.logp.Load().Warn("gossip: accept failed", "err", err)
		pause := time.NewTimer(b.next())
		select {
		case <-pause.C:
		case <-t.ctx.Done():
			pause.Stop()
			return
		}
	}
}

// readPackets reads every UDP packet into one buffer, drops and counts
// junk, and hands a copy of the rest to memberlist, until Shutdown.
func (t *gossipTransport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, udpBufSize)
	for {
		n, from, err := t.udp.ReadFromUDP(buf)
		ts := time.Now()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error on one datagram
		}
		if !t.packetOK(buf[:n]) {
			t.pktJunk.add(from.IP.String())
			continue
		}
		p := &memberlist.Packet{Buf: bytes.Clone(buf[:n]), From: from, Timestamp: ts}
		select {
		case t.packets <- p:
		case <-t.ctx.Done():
			return
		}
	}
}
