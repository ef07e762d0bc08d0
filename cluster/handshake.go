package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The peer-link handshake is a challenge-response: both sides send a fresh
// 32-byte nonce and prove they hold the cluster secret with an HMAC-SHA256
// over both nonces, the cluster name, the protocol version and both node
// names. With no secret the key is empty, which still checks cluster name
// and version; the secret never crosses the wire.
//
//	dialer   -> hello{version, cluster, name, nonceD}
//	acceptor -> challenge{version, cluster, name, nonceA}
//	dialer   -> proof{mac("dialer")}
//	acceptor -> welcome{ok, reason, mac("acceptor")}
//
// The dialer proves itself first (protocol version 3). Anyone who reaches
// the peer port and knows the cluster name may start a handshake; what
// such a stranger gets back must not help it guess the secret, so it gets
// only the acceptor's nonce, never a MAC: the acceptor's MAC goes only to
// a dialer whose proof checked out. The dialer, in turn, checks the
// acceptor's MAC before it trusts the link. A dialer dials only addresses
// from memberlist metadata, which gossip encrypted with the secret carried,
// so to receive a proof an attacker must sit on the path between two nodes
// (and such an attacker sees gossip ciphertext anyway: a secret too weak to
// survive an offline guess is refused at start by cmd/meshcast). A PAKE
// would remove even that, at the cost of a dependency and of protocol code
// of our own; with strong secrets required it buys nothing.

const nonceLen = 32

var (
	// errHandshake wraps every handshake failure.
	errHandshake = errors.New("peer handshake failed")
	// errRejected: the acceptor authenticated us but refused the link
	// (for example it does not know us as a member yet).
	errRejected = errors.New("peer link rejected")
)

type helloMsg struct {
	Version uint8  `msgpack:"v"`
	Cluster string `msgpack:"c"`
	Name    string `msgpack:"n"`
	Nonce   []byte `msgpack:"r"`
}

type challengeMsg struct {
	Version uint8  `msgpack:"v"`
	Cluster string `msgpack:"c"`
	Name    string `msgpack:"n"`
	Nonce   []byte `msgpack:"r"`
}

type proofMsg struct {
	MAC []byte `msgpack:"m"`
}

type welcomeMsg struct {
	OK     bool   `msgpack:"ok"`
	Reason string `msgpack:"why"`
	MAC    []byte `msgpack:"m,omitempty"` // the acceptor's proof, only in an OK welcome
	// Epoch is the acceptor's process (as snapshotMsg.Epoch), so that the
	// dialer knows which process its link reaches: a link made to a
	// restarted peer before gossip told of the restart is not mistaken
	// for one to the old process. 0 from a node that does not send it.
	Epoch uint64 `msgpack:"e,omitempty"`
}

// handshake holds what both sides of the handshake need.
type handshake struct {
	key     []byte // HMAC key derived from the secret; empty when open
	cluster string
	name    string // this node
	epoch   uint64 // this process (Cluster.epoch), told in the welcome
}

// transcriptMAC binds role, nonces, cluster, version and names. Each field is
// length-prefixed so no two transcripts share an encoding.
func (h *handshake) transcriptMAC(role string, nonceD, nonceA []byte, dialer, acceptor string) []byte {
	m := hmac.New(sha256.New, h.key)
	for _, f := range [][]byte{[]byte(role), nonceD, nonceA, []byte(h.cluster), {ProtocolVersion}, []byte(dialer), []byte(acceptor)} {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(f)))
		m.Write(l[:])
		m.Write(f)
	}
	return m.Sum(nil)
}

func writeMsg(w io.Writer, t frameType, v any) error {
	f, err := encodeMsg(t, v)
	if err != nil {
		return err
	}
	_, err = w.Write(f)
	return err
}

// readMsg reads one frame of type want into v.
func readMsg(fr *frameReader, want frameType, v any) error {
	t, body, err := fr.next()
	if err != nil {
		return err
	}
	if t != want {
		return fmt.Errorf("%w: got frame type %d, want %d", errMalformed, t, want)
	}
	return decodeMsg(body, v)
}

// client runs the dialer side. expect is the node name we meant to reach.
func (h *handshake) client(rw io.Writer, fr *frameReader, expect string) error {
	_, err := h.dial(rw, fr, expect)
	return err
}

// dial is client, returning the acceptor's epoch (0 if it sent none).
func (h *handshake) dial(rw io.Writer, fr *frameReader, expect string) (uint64, error) {
	nonceD := make([]byte, nonceLen)
	rand.Read(nonceD)
	if err := writeMsg(rw, frameHello, helloMsg{ProtocolVersion, h.cluster, h.name, nonceD}); err != nil {
		return 0, err
	}
	ch, err := readChallenge(fr)
	if err != nil {
		return 0, err
	}
	switch {
	case ch.Version != ProtocolVersion:
		return 0, fmt.Errorf("%w: peer speaks protocol %d, we speak %d", errHandshake, ch.Version, ProtocolVersion)
	case ch.Cluster != h.cluster:
		return 0, fmt.Errorf("%w: peer is in cluster %q, we are in %q", errHandshake, ch.Cluster, h.cluster)
	case ch.Name != expect:
		return 0, fmt.Errorf("%w: dialled %q but reached %q", errHandshake, expect, ch.Name)
	case len(ch.Nonce) != nonceLen:
		return 0, fmt.Errorf("%w: bad nonce length %d", errHandshake, len(ch.Nonce))
	}
	mac := h.transcriptMAC("dialer", nonceD, ch.Nonce, h.name, ch.Name)
	if err := writeMsg(rw, frameProof, proofMsg{mac}); err != nil {
		return 0, err
	}
	var w welcomeMsg
	if err := readMsg(fr, frameWelcome, &w); err != nil {
		return 0, err
	}
	switch {
	case !w.OK && strings.HasPrefix(w.Reason, reasonAuthFailed):
		return 0, fmt.Errorf("%w: %s", errHandshake, w.Reason)
	case !w.OK:
		return 0, fmt.Errorf("%w: %s", errRejected, w.Reason)
	case !hmac.Equal(w.MAC, h.transcriptMAC("acceptor", nonceD, ch.Nonce, h.name, ch.Name)):
		return 0, fmt.Errorf("%w: peer failed authentication (different cluster secret?)", errHandshake)
	}
	return w.Epoch, nil
}

// readChallenge reads the acceptor's challenge, or its refusal of our hello.
func readChallenge(fr *frameReader) (challengeMsg, error) {
	var ch challengeMsg
	t, body, err := fr.next()
	if err != nil {
		return ch, err
	}
	if t == frameWelcome { // refused before the challenge
		var w welcomeMsg
		if err := decodeMsg(body, &w); err != nil {
			return ch, err
		}
		return ch, fmt.Errorf("%w: %s", errHandshake, w.Reason)
	}
	if t != frameChallenge {
		return ch, fmt.Errorf("%w: got frame type %d, want challenge", errMalformed, t)
	}
	return ch, decodeMsg(body, &ch)
}

// reasonAuthFailed starts the acceptor's refusal of a wrong proof: the
// dialer then counts a handshake failure, not a rejection.
const reasonAuthFailed = "authentication failed"

// readHello reads the dialer's first frame. The acceptor reads it under a
// short deadline of its own (inbound.go), since anyone can connect.
func readHello(fr *frameReader) (helloMsg, error) {
	var hello helloMsg
	err := readMsg(fr, frameHello, &hello)
	return hello, err
}

// server runs the acceptor side after the hello and returns the
// authenticated dialer's name. admit decides, after authentication,
// whether the link is wanted.
func (h *handshake) server(rw io.Writer, fr *frameReader, hello helloMsg, admit func(name string) error) (string, error) {
	refuse := func(reason string) (string, error) {
		_ = writeMsg(rw, frameWelcome, welcomeMsg{Reason: reason}) // best effort: tell the dialer why
		return "", fmt.Errorf("%w: %s", errHandshake, reason)
	}
	if reason := h.checkHello(hello); reason != "" {
		return refuse(reason)
	}
	nonceA := make([]byte, nonceLen)
	rand.Read(nonceA)
	if err := writeMsg(rw, frameChallenge, challengeMsg{ProtocolVersion, h.cluster, h.name, nonceA}); err != nil {
		return "", err
	}
	var proof proofMsg
	if err := readMsg(fr, frameProof, &proof); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // only an EOF before the hello is a probe
		}
		return "", err
	}
	if !hmac.Equal(proof.MAC, h.transcriptMAC("dialer", hello.Nonce, nonceA, hello.Name, h.name)) {
		return refuse(reasonAuthFailed + " (different cluster secret?)")
	}
	if err := admit(hello.Name); err != nil {
		_ = writeMsg(rw, frameWelcome, welcomeMsg{Reason: err.Error()})
		return "", fmt.Errorf("%w: %w", errRejected, err)
	}
	mac := h.transcriptMAC("acceptor", hello.Nonce, nonceA, hello.Name, h.name)
	if err := writeMsg(rw, frameWelcome, welcomeMsg{OK: true, MAC: mac, Epoch: h.epoch}); err != nil {
		return "", err
	}
	return hello.Name, nil
}

// checkHello says why a hello is refused, or "" if it is not.
func (h *handshake) checkHello(hello helloMsg) string {
	switch {
	case hello.Version != ProtocolVersion:
		return fmt.Sprintf("protocol version %d, want %d", hello.Version, ProtocolVersion)
	case hello.Cluster != h.cluster:
		return fmt.Sprintf("cluster name %q, want %q", hello.Cluster, h.cluster)
	case len(hello.Nonce) != nonceLen:
		return fmt.Sprintf("bad nonce length %d", len(hello.Nonce))
	case hello.Name == "" || len(hello.Name) > maxNameLen:
		return "bad node name"
	case hello.Name == h.name:
		return "dialer uses this node's own name"
	}
	return ""
}
