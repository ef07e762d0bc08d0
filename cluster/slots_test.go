package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slotFlood keeps silent connections open to a peer port, from several
// loopback addresses, redialling each one as soon as the node closes it:
// what an attacker who can reach the port does to starve real peers. A
// connection refused at once is redialled after a pause, so the flood
// does not burn the CPU other tests run on; one that held a slot is
// redialled at once, to take it back before anyone else can.
type slotFlood struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dials  atomic.Int64
}

func floodPeerPort(t *testing.T, addr string, ips []string, perIP int) *slotFlood {
	t.Helper()
	if _, err := os.Stat("/proc/sys/net"); err != nil {
		t.Skip("needs Linux loopback addresses")
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &slotFlood{cancel: cancel}
	for _, ip := range ips {
		for range perIP {
			f.wg.Add(1)
			go f.worker(ctx, addr, ip)
		}
	}
	t.Cleanup(f.stop)
	return f
}

func (f *slotFlood) worker(ctx context.Context, addr, ip string) {
	defer f.wg.Done()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			continue
		}
		f.dials.Add(1)
		start := time.Now()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		io.Copy(io.Discard, conn) // until the node closes it
		stop()
		conn.Close()
		if time.Since(start) < 100*time.Millisecond {
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

func (f *slotFlood) stop() {
	f.cancel()
	f.wg.Wait()
}

// loopbackIPs returns n addresses 127.0.0.first, 127.0.0.first+1, ...
func loopbackIPs(first, n int) []string {
	var ips []string
	for i := range n {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", first+i))
	}
	return ips
}

// TestPeerSlotFloodLeavesMembersLinking: silent connections from many
// addresses, reopened as fast as they close, do not keep a node from
// linking with a new member: its subscribe is confirmed by every peer (no
// interest timeout) and a publish from another node reaches it.
func TestPeerSlotFloodLeavesMembersLinking(t *testing.T) {
	nodes := startCluster(t, 2)
	a := nodes[0]
	flood := floodPeerPort(t, fmt.Sprintf("127.0.0.1:%d", a.PeerPort()), loopbackIPs(10, 25), 4)
	waitFor(t, 10*time.Second, "the flood under way", func() bool { return flood.dials.Load() > 200 })

	cfg := testConfig("n2")
	cfg.Join = []string{a.gossipAddr()}
	c := startNode(t, cfg)
	waitFor(t, 15*time.Second, "the new node linked with both", func() bool {
		return fullyLinked(c, 3) && fullyLinked(a, 3)
	})
	subscribe(t, c, "during-flood")
	if n := c.Stats().InterestTimeouts; n != 0 {
		t.Fatalf("%d subscribes timed out waiting for peers", n)
	}
	a.publish("during-flood", []byte(`"through"`), "", nil, nil)
	waitFor(t, 5*time.Second, "the publish delivered", func() bool { return len(c.rec.on("during-flood")) == 1 })
}

func tcpAddr(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000} }

// TestConnGate: strangers get maxPerIP slots per address and maxTotal in
// all; members' addresses draw on their own pool, not limited per address.
func TestConnGate(t *testing.T) {
	g := newConnGate(6, 2, func(ip string) bool { return ip == "10.0.0.1" })
	var releases []func()
	take := func(ip string, want bool) {
		t.Helper()
		release, ok := g.admit(tcpAddr(ip))
		if ok != want {
			t.Fatalf("admit %s = %v, want %v", ip, ok, want)
		}
		if ok {
			releases = append(releases, release)
		}
	}
	take("192.0.2.1", true)
	take("192.0.2.1", true)
	take("192.0.2.1", false) // per address
	for _, ip := range []string{"192.0.2.2", "192.0.2.2", "192.0.2.3", "192.0.2.3"} {
		take(ip, true)
	}
	take("192.0.2.4", false) // in total
	for range 6 {
		take("10.0.0.1", true) // a member's address: past both
	}
	take("10.0.0.1", false) // the members' pool is bounded too
	if s, m, addrs := g.counts(); s != 6 || m != 6 || addrs != 3 {
		t.Fatalf("counts %d strangers, %d members, %d addresses", s, m, addrs)
	}
	for _, r := range releases {
		r()
		r() // idempotent
	}
	if s, m, addrs := g.counts(); s != 0 || m != 0 || addrs != 0 {
		t.Fatalf("after release: %d strangers, %d members, %d addresses", s, m, addrs)
	}
}

// TestSilentPeerConnectionCut: a connection that sends nothing is closed
// after firstFrameTimeout, not HandshakeTimeout, and counted; one closed
// before its first byte is a reachability probe, not counted.
func TestSilentPeerConnectionCut(t *testing.T) {
	cfg := testConfig("a")
	cfg.HandshakeTimeout = time.Minute
	a := startNode(t, cfg)
	probe, _ := dialPeer(t, a)
	probe.Close()
	silent, _ := dialPeer(t, a)
	expectClosed(t, silent) // within dialPeer's 10 s deadline, far below a minute
	waitFor(t, 5*time.Second, "the silent connection counted", func() bool { return a.Stats().HandshakeFailures == 1 })
	if s, _, _ := a.gate.counts(); s != 0 {
		t.Fatalf("%d slots still taken", s)
	}
}
