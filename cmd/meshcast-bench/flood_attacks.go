package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The attacks of "flood", each what the hardening issue (issue 10) found
// an attacker on the network could do to a node. Every one comes from
// loopback addresses other than the legitimate clients' (127.0.0.1), so
// per-address limits see many hosts, and goes on until ctx ends.

// floodTarget is the node under attack.
type floodTarget struct {
	http, gossip, peer string // host:port
	label              string // the cluster name: memberlist's label
}

// attackStats counts what an attack did.
type attackStats struct {
	opened  atomic.Int64 // connections opened, or packets sent
	refused atomic.Int64 // connections the node closed within 100 ms
	bytes   atomic.Int64
}

// attackConfig shapes an attack.
type attackConfig struct {
	Conc  int     // connections held at once (workers)
	Rate  float64 // connection attempts (or UDP packets) per second, in all
	Addrs int     // source addresses, 127.0.0.10 on
}

// attack is one kind of flood, with the shape it has by default: the
// issue's own figures where it gave them (64 silent peer connections,
// 16 gossip streams, 200 unfinished headers, thousands of idle
// connections), a rate a single attacking host reaches otherwise.
type attack struct {
	name, about string
	run         func(ctx context.Context, t floodTarget, a *attacker)
	defaults    attackConfig
}

var attacks = []attack{
	{"peer-slots", "silent connections to the peer port, reopened as they close", peerSlots, attackConfig{200, 2000, 50}},
	{"peer-junk", "random bytes to the peer port", peerJunk, attackConfig{64, 1000, 16}},
	{"gossip-udp", "junk UDP packets with the cluster's label to the gossip port", gossipUDP, attackConfig{4, 20000, 4}},
	{"gossip-stream", "gossip streams with the label and a 20 MB encrypted length, then junk", gossipStream, attackConfig{16, 200, 8}},
	{"http-idle", "keep-alive connections idle after one request", httpIdle, attackConfig{5000, 2000, 10}},
	{"http-header", "requests whose header never ends (1 MiB and more)", httpHeader, attackConfig{200, 200, 10}},
	{"http-body", "API requests whose declared body never comes", httpBody, attackConfig{200, 200, 10}},
}

func attackNames() string {
	var names []string
	for _, a := range attacks {
		names = append(names, a.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// attacker runs Conc workers of one attack, paced by a shared rate.
type attacker struct {
	cfg   attackConfig
	stats attackStats
	tick  <-chan time.Time // one token per attempt
	wg    sync.WaitGroup
}

// startAttack starts the named attack; stop it by cancelling ctx, then
// wait().
func startAttack(ctx context.Context, name string, t floodTarget, cfg attackConfig) (*attacker, error) {
	for _, k := range attacks {
		if k.name != name {
			continue
		}
		orDefault(&cfg.Conc, k.defaults.Conc)
		orDefault(&cfg.Rate, k.defaults.Rate)
		orDefault(&cfg.Addrs, k.defaults.Addrs)
		a := &attacker{cfg: cfg}
		tk := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		a.tick = tk.C
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			k.run(ctx, t, a)
			tk.Stop()
		}()
		return a, nil
	}
	return nil, fmt.Errorf("unknown attack %q (want one of %s)", name, attackNames())
}

func (a *attacker) wait() { a.wg.Wait() }

// workers runs fn on Conc goroutines, each with its own source address,
// until ctx ends.
func (a *attacker) workers(ctx context.Context, fn func(ctx context.Context, src net.IP)) {
	var wg sync.WaitGroup
	for i := range a.cfg.Conc {
		src := net.IPv4(127, 0, 0, byte(10+i%max(1, a.cfg.Addrs)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fn(ctx, src)
			}
		}()
	}
	wg.Wait()
}

// paced waits for the next attempt token.
func (a *attacker) paced(ctx context.Context) bool {
	select {
	case <-a.tick:
		return true
	case <-ctx.Done():
		return false
	}
}

// conn opens a TCP connection from src, paced, closed when ctx ends.
func (a *attacker) conn(ctx context.Context, src net.IP, addr string) (net.Conn, func()) {
	if !a.paced(ctx) {
		return nil, nil
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 3 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil
	}
	a.stats.opened.Add(1)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return c, func() { stop(); c.Close() }
}

// holdUntilClosed writes first, then reads until the node closes c,
// counting a close within 100 ms as a refusal.
func (a *attacker) holdUntilClosed(c net.Conn, first []byte) {
	start := time.Now()
	if len(first) > 0 {
		n, _ := c.Write(first)
		a.stats.bytes.Add(int64(n))
	}
	io.Copy(io.Discard, c)
	if time.Since(start) < 100*time.Millisecond {
		a.stats.refused.Add(1)
	}
}

func peerSlots(ctx context.Context, t floodTarget, a *attacker) {
	a.workers(ctx, func(ctx context.Context, src net.IP) {
		if c, done := a.conn(ctx, src, t.peer); c != nil {
			a.holdUntilClosed(c, nil)
			done()
		}
	})
}

func peerJunk(ctx context.Context, t floodTarget, a *attacker) {
	a.workers(ctx, func(ctx context.Context, src net.IP) {
		if c, done := a.conn(ctx, src, t.peer); c != nil {
			a.holdUntilClosed(c, randomBytes(512))
			done()
		}
	})
}

func gossipUDP(ctx context.Context, t floodTarget, a *attacker) {
	a.workers(ctx, func(ctx context.Context, src net.IP) {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: src}, udpAddr(t.gossip))
		if err != nil {
			return
		}
		defer c.Close()
		pkt := append(labelHeader(t.label), randomBytes(200)...)
		for a.paced(ctx) {
			if n, err := c.Write(pkt); err == nil {
				a.stats.opened.Add(1)
				a.stats.bytes.Add(int64(n))
			}
		}
	})
}

func gossipStream(ctx context.Context, t floodTarget, a *attacker) {
	head := binary.BigEndian.AppendUint32(append(labelHeader(t.label), 10), 20<<20) // encryptMsg, 20 MB
	junk := randomBytes(64 << 10)
	a.workers(ctx, func(ctx context.Context, src net.IP) {
		c, done := a.conn(ctx, src, t.gossip)
		if c == nil {
			return
		}
		defer done()
		start := time.Now()
		c.Write(head)
		for sent := 0; sent < 20<<20; sent += len(junk) {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Write(junk)
			a.stats.bytes.Add(int64(n))
			if err != nil {
				break
			}
		}
		if time.Since(start) < 100*time.Millisecond {
			a.stats.refused.Add(1)
		}
	})
}

func httpIdle(ctx context.Context, t floodTarget, a *attacker) {
	a.workers(ctx, func(ctx context.Context, src net.IP) {
		if c, done := a.conn(ctx, src, t.http); c != nil {
			a.holdUntilClosed(c, []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
			done()
		}
	})
}

func httpHeader(ctx context.Context, t floodTarget, a *attacker) {
	header := append([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Junk: "), strings.Repeat("j", 1<<20)...)
	a.workers(ctx, func(ctx context.Context, src net.IP) {
		if c, done := a.conn(ctx, src, t.http); c != nil {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			a.holdUntilClosed(c, header)
			done()
		}
	})
}

func httpBody(ctx context.Context, t floodTarget, a *attacker) {
	req := []byte("POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer flood\r\nContent-Length: 1000000\r\n\r\n{")
	a.workers(ctx, func(ctx context.Context, src net.IP) {
		if c, done := a.conn(ctx, src, t.http); c != nil {
			a.holdUntilClosed(c, req)
			done()
		}
	})
}

func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func labelHeader(label string) []byte { return append([]byte{244, byte(len(label))}, label...) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func udpAddr(hostport string) *net.UDPAddr {
	a, _ := net.ResolveUDPAddr("udp", hostport)
	return a
}
