package cluster

import (
	"bufio"
	"crypto/rand"
	"io"
	"net"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// readAny reads one handshake frame of type want as a generic map, so the
// test sees every field the node sent, known to the code or not.
func readAny(t *testing.T, fr *frameReader, want frameType) map[string]any {
	t.Helper()
	ft, body, err := fr.next()
	if err != nil || ft != want {
		t.Fatalf("frame %d, %v; want type %d", ft, err, want)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHandshakeHandsOutNoMAC: someone who knows only the cluster name, and
// reaches the peer port, gets nothing computed with the secret, so there
// is nothing to guess a weak secret against offline. (The acceptor used
// to prove itself first, with an HMAC over the dialer's nonce.)
func TestHandshakeHandsOutNoMAC(t *testing.T) {
	nodes := startCluster(t, 1)
	conn, fr := dialPeer(t, nodes[0])
	nonce := make([]byte, nonceLen)
	rand.Read(nonce)
	if err := writeMsg(conn, frameHello, helloMsg{ProtocolVersion, "meshcast", "stranger", nonce}); err != nil {
		t.Fatal(err)
	}
	chal := readAny(t, fr, frameChallenge)
	for k, v := range chal {
		if b, ok := v.([]byte); ok && len(b) != 0 && k != "r" {
			t.Fatalf("challenge carries %q = %x: only the acceptor's nonce may go to an unauthenticated dialer", k, b)
		}
	}
	if err := writeMsg(conn, frameProof, proofMsg{make([]byte, 32)}); err != nil {
		t.Fatal(err)
	}
	w := readAny(t, fr, frameWelcome)
	if w["ok"] == true || len(asBytes(w["m"])) != 0 {
		t.Fatalf("welcome to a bad proof: %v", w)
	}
	expectClosed(t, conn)
}

func asBytes(v any) []byte { b, _ := v.([]byte); return b }

// TestDialerChecksTheAcceptor: a dialer that reaches something without the
// secret (an impostor at a member's address) learns that from the
// acceptor's proof and drops the link.
func TestDialerChecksTheAcceptor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	impostor := handshake{key: deriveKey([]byte("another secret"), "peer-link"), cluster: "meshcast", name: "n0"}
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		// It accepts any proof, as an impostor would, and proves with its key.
		_, err = impostor.serverTrusting(conn, newFrameReader(bufio.NewReader(conn), handshakeMaxFrame))
		done <- err
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dialer := handshake{key: deriveKey([]byte("test secret"), "peer-link"), cluster: "meshcast", name: "n1"}
	if err := dialer.client(conn, newFrameReader(bufio.NewReader(conn), handshakeMaxFrame), "n0"); err == nil {
		t.Fatal("the dialer accepted an acceptor without the secret")
	}
	<-done
}

// serverTrusting is an impostor's acceptor: it takes any proof and
// proves itself with its own key.
func (h *handshake) serverTrusting(w io.Writer, fr *frameReader) (string, error) {
	hello, err := readHello(fr)
	if err != nil {
		return "", err
	}
	nonceA := make([]byte, nonceLen)
	rand.Read(nonceA)
	if err := writeMsg(w, frameChallenge, challengeMsg{ProtocolVersion, h.cluster, h.name, nonceA}); err != nil {
		return "", err
	}
	var proof proofMsg
	if err := readMsg(fr, frameProof, &proof); err != nil {
		return "", err
	}
	mac := h.transcriptMAC("acceptor", hello.Nonce, nonceA, hello.Name, h.name)
	return hello.Name, writeMsg(w, frameWelcome, welcomeMsg{OK: true, MAC: mac})
}
