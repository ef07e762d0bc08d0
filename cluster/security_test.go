package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"
)

// dialPeer opens a raw TCP connection to a node's peer port.
func dialPeer(t *testing.T, n *node) (net.Conn, *frameReader) {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.PeerPort()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, newFrameReader(bufio.NewReader(conn), 1<<20)
}

// expectClosed reads until the server closes the connection.
// expectClosed reads until the server closes the link. A reset counts: the
// server may close with our bytes still unread.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("want the server to close the link, got %v", err)
	}
}

func TestWrongSecretCannotJoin(t *testing.T) {
	nodes := startCluster(t, 2)
	cfg := testConfig("intruder")
	cfg.Secret = []byte("wrong secret")
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Attach(&recorder{}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, c) })
	n, err := c.ml.Load().Join([]string{(&node{Cluster: nodes[0].Cluster}).gossipAddr()})
	if n != 0 || err == nil {
		t.Fatalf("join with the wrong secret: contacted %d, err %v", n, err)
	}
	if got := len(nodes[0].Stats().Members); got != 2 {
		t.Fatalf("cluster has %d members after the intruder's join", got)
	}

	// Its peer link is refused too: it cannot authenticate the node, and a
	// raw proof with the wrong key is rejected and counted.
	conn, fr := dialPeer(t, nodes[0])
	err = c.hs.client(conn, fr, "n0")
	if err == nil {
		t.Fatal("handshake with the wrong secret succeeded")
	}
	conn.Close() // as the dialer does: the acceptor sees EOF, a failure
	conn2, fr2 := dialPeer(t, nodes[0])
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	if err := writeMsg(conn2, frameHello, helloMsg{ProtocolVersion, "meshcast", "n1", nonce}); err != nil {
		t.Fatal(err)
	}
	var chal challengeMsg
	if err := readMsg(fr2, frameChallenge, &chal); err != nil {
		t.Fatal(err)
	}
	bad := c.hs.transcriptMAC("dialer", nonce, chal.Nonce, "n1", "n0")
	if err := writeMsg(conn2, frameProof, proofMsg{bad}); err != nil {
		t.Fatal(err)
	}
	var w welcomeMsg
	if err := readMsg(fr2, frameWelcome, &w); err != nil || w.OK {
		t.Fatalf("wrong proof: welcome %+v, err %v", w, err)
	}
	expectClosed(t, conn2)
	waitFor(t, 5*time.Second, "handshake failures counted", func() bool {
		return nodes[0].Stats().HandshakeFailures >= 2
	})
	if l, _ := linkTo(nodes[0].Cluster, "n1"); l.State != "up" || !l.InboundUp {
		t.Fatalf("real peer link disturbed: %+v", l)
	}
}

func TestWrongClusterNameRefused(t *testing.T) {
	nodes := startCluster(t, 1)
	conn, fr := dialPeer(t, nodes[0])
	h := handshake{key: deriveKey([]byte("test secret"), "peer-link"), cluster: "other", name: "x"}
	if err := h.client(conn, fr, "n0"); err == nil {
		t.Fatal("handshake across cluster names succeeded")
	}
	waitFor(t, 5*time.Second, "failure counted", func() bool { return nodes[0].Stats().HandshakeFailures == 1 })
}

func TestGarbageOnPeerPort(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	garbage := make([]byte, 4096)
	rand.Read(garbage)
	for i, input := range [][]byte{
		garbage,
		{0, 0, 0, 9, byte(frameHello), 1, 2}, // truncated
		{0xff, 0xff, 0xff, 0xff},             // oversized length
	} {
		conn, _ := dialPeer(t, a)
		conn.Write(input)
		if i == 1 {
			conn.(*net.TCPConn).CloseWrite()
		}
		expectClosed(t, conn)
	}
	waitFor(t, 5*time.Second, "garbage counted", func() bool { return a.Stats().HandshakeFailures == 3 })

	// An authenticated link sending a malformed or truncated frame is
	// closed and counted. We impersonate n1 (the test knows the secret);
	// the real n1 must not take the link back meanwhile, so it dials a
	// dead address until the end.
	pb := b.peer("n0")
	good := pb.getAddr()
	pb.update("127.0.0.1:1", false, 0)
	bad := [][]byte{
		appendFrame(nil, framePublish, []byte{0x93, 0xa1}),  // publish cut short
		appendFrame(nil, frameAck, mustMsg(ackMsg{Seq: 1})), // wrong direction
		appendFrame(nil, frameType(200), []byte("?")),       // unknown type
		appendFrame(nil, frameAdd, []byte{0xc1}),            // not msgpack
		binary.BigEndian.AppendUint32(nil, uint32(a.cfg.MaxFrameSize+1)),
	}
	base := a.Stats().MalformedFrames
	for i, f := range bad {
		conn, fr := dialPeer(t, a)
		h := b.hs // n1's identity
		if err := h.client(conn, fr, "n0"); err != nil {
			t.Fatalf("case %d: impersonating handshake: %v", i, err)
		}
		conn.Write(f)
		expectClosed(t, conn)
		waitFor(t, 5*time.Second, fmt.Sprintf("case %d malformed counted", i), func() bool { return a.Stats().MalformedFrames == base+uint64(i+1) })
	}
	// A truncated frame followed by EOF closes without a panic.
	conn, fr := dialPeer(t, a)
	if err := b.hs.client(conn, fr, "n0"); err != nil {
		t.Fatal(err)
	}
	conn.Write(publishFrame("c", []byte("payload"), "")[:9])
	conn.(*net.TCPConn).CloseWrite()
	expectClosed(t, conn)
	pb.update(good, false, 0)

	// The node keeps working: n1's real link comes back and traffic flows.
	waitFor(t, 10*time.Second, "links back", func() bool { return fullyLinked(a, 2) && fullyLinked(b, 2) })
	subscribe(t, a, "still")
	b.publish("still", []byte("alive"), "", nil, nil)
	waitFor(t, 5*time.Second, "delivery after garbage", func() bool { return len(a.rec.on("still")) == 1 })
}

func mustMsg(v any) []byte {
	f, err := encodeMsg(frameAck, v)
	if err != nil {
		panic(err)
	}
	return f[headerLen+1:]
}

func TestExpandSeeds(t *testing.T) {
	fake := func(_ context.Context, host string) ([]string, error) {
		switch host {
		case "meshcast-headless":
			return []string{"10.0.0.1", "10.0.0.2", "fd00::3"}, nil
		case "single":
			return []string{"10.0.0.9"}, nil
		}
		return nil, fmt.Errorf("no such host %q", host)
	}
	cases := []struct {
		seeds   []string
		want    []string
		wantErr bool
	}{
		{[]string{"meshcast-headless:7946"}, []string{"10.0.0.1:7946", "10.0.0.2:7946", "[fd00::3]:7946"}, false},
		{[]string{"single"}, []string{"10.0.0.9:7946"}, false},
		{[]string{"127.0.0.1:1", "127.0.0.1:1", "single:2"}, []string{"127.0.0.1:1", "10.0.0.9:2"}, false},
		{[]string{"missing:1", "single:3"}, []string{"10.0.0.9:3"}, true},
	}
	for _, tc := range cases {
		got, err := expandSeeds(context.Background(), fake, tc.seeds)
		if !slices.Equal(got, tc.want) || (err != nil) != tc.wantErr {
			t.Errorf("expandSeeds(%v) = %v, %v; want %v, err %v", tc.seeds, got, err, tc.want, tc.wantErr)
		}
	}
	// The real resolver: localhost expands to its loopback addresses.
	got, err := expandSeeds(context.Background(), net.DefaultResolver.LookupHost, []string{"localhost:7946"})
	if err != nil || !slices.Contains(got, "127.0.0.1:7946") {
		t.Fatalf("localhost: %v, %v", got, err)
	}
}
