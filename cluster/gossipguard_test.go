package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// gossipStream opens a TCP stream to a's gossip port and writes head.
func gossipStream(t *testing.T, a *node, head []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", a.gossipAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// labelled is memberlist's stream label header for the cluster, then b.
func labelled(b ...byte) []byte {
	return append([]byte{244, byte(len("meshcast"))}, append([]byte("meshcast"), b...)...)
}

// readAllUntilClosed reads what the node sends until it closes the stream.
func readAllUntilClosed(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	got, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("want the node to close the stream, got %v after %d bytes", err, len(got))
	}
	return got
}

// TestGossipStreamScreened: before memberlist buffers a stream, the
// node checks the label, that it is encrypted, that its declared length
// is sane and that it decrypts; a stream failing any of that is closed
// without a byte in answer (memberlist answered a plaintext stream with
// an error encrypted under the cluster key: something to guess against)
// and without reading a 20 MB body.
func TestGossipStreamScreened(t *testing.T) {
	cfg := testConfig("a")
	cfg.Memberlist = func(mc *memberlist.Config) {
		testGossip(mc)
		mc.TCPTimeout = time.Minute // the node must not need it to close junk
	}
	a := startNode(t, cfg)
	huge := binary.BigEndian.AppendUint32([]byte{10}, 20<<20) // encryptMsg, 20 MB
	conn := gossipStream(t, a, labelled(huge...))
	// Send body bytes until the node closes: it must not read 20 MB.
	sent := 0
	chunk := make([]byte, 64<<10)
	for ; sent < 20<<20; sent += len(chunk) {
		if _, err := conn.Write(chunk); err != nil {
			break
		}
	}
	if sent >= 8<<20 {
		t.Fatalf("the node read %d bytes of a stream declaring 20 MB", sent)
	}
	for _, head := range [][]byte{
		labelled(6, 0x80, 0x80), // a plaintext push/pull to an encrypted cluster
		labelled(append(binary.BigEndian.AppendUint32([]byte{10}, 64), bytes.Repeat([]byte{1}, 64)...)...), // does not decrypt
		append([]byte{244, 5}, "other"...), // another cluster's label
	} {
		conn := gossipStream(t, a, head)
		if got := readAllUntilClosed(t, conn); len(got) != 0 {
			t.Fatalf("stream % x answered with %d bytes", head[:12], len(got))
		}
	}
}

// TestGossipStreamBudgetWithoutSecret: a cluster without a secret cannot
// check a stream's key, but memberlist reads at most maxGossipMessage of
// it, whatever length its header declares.
func TestGossipStreamBudgetWithoutSecret(t *testing.T) {
	cfg := testConfig("a")
	cfg.Secret = nil
	cfg.Memberlist = func(mc *memberlist.Config) {
		testGossip(mc)
		mc.TCPTimeout = time.Minute
	}
	a := startNode(t, cfg)
	header, err := msgpack.Marshal(map[string]any{"Nodes": 0, "UserStateLen": 20 << 20, "Join": false})
	if err != nil {
		t.Fatal(err)
	}
	conn := gossipStream(t, a, labelled(append([]byte{6}, header...)...))
	sent := 0
	chunk := make([]byte, 64<<10)
	for ; sent < 20<<20; sent += len(chunk) {
		if _, err := conn.Write(chunk); err != nil {
			break
		}
	}
	if sent >= 20<<20 {
		t.Fatalf("the node read all %d bytes of a 20 MB user state", sent)
	}
	waitFor(t, 5*time.Second, "the stream counted as junk", func() bool { return a.Stats().JunkGossipStreams == 1 })
}

// TestGossipTransportAddresses: the transport advertises what memberlist's
// own did: the address given, else the one bound to; and it refuses an
// address that is not one.
func TestGossipTransportAddresses(t *testing.T) {
	a := startNode(t, testConfig("a"))
	ip, port, err := a.transport.FinalAdvertiseAddr("", 0)
	if err != nil || ip.String() != "127.0.0.1" || port != a.GossipPort() {
		t.Fatalf("bound: %v:%d, %v", ip, port, err)
	}
	if ip, port, err = a.transport.FinalAdvertiseAddr("10.1.2.3", 7000); err != nil || ip.String() != "10.1.2.3" || port != 7000 {
		t.Fatalf("given: %v:%d, %v", ip, port, err)
	}
	if _, _, err = a.transport.FinalAdvertiseAddr("not-an-ip", 1); err == nil {
		t.Fatal("a host name accepted as an advertise IP")
	}
}
