package cluster

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Screening of what comes in on the gossip port (gossipnet.go owns the
// sockets). memberlist reads a stream's first message into memory before
// it looks at the key: a stream carrying the cluster's label (no secret)
// and a declared length of 20 MB made it buffer 20 MB, and a plaintext
// stream to an encrypted cluster got an error answer encrypted under the
// cluster key (known plaintext: a way to test guesses of a weak secret
// offline). Here each stream first gets a slot (connGate: few per
// stranger's address, a pool of their own for members), then its first
// message is read and checked: the label, encrypted when the cluster has
// a secret, a declared length within maxGossipMessage, and, with a
// secret, that it decrypts. Only then does memberlist see it, replayed
// from the start. Junk is closed without a byte in answer and counted
// (junk.go). UDP packets are checked the same way, in the read loop, and
// junk dropped and counted before memberlist sees it (it formatted a log
// line for each).

const (
	// maxGossipMessage bounds a stream's first message (memberlist allows
	// 20 MB). A push/pull carries about 150 bytes per member: 1 MiB is
	// several thousand members.
	maxGossipMessage = 1 << 20
	// Streams from strangers' addresses at once, in all and per address.
	// Members' streams (push/pull, fallback pings) draw on their own pool
	// of maxMemberGossipStreams; a stranger is only a node joining.
	maxStrangerGossipStreams = 16
	maxGossipStreamsPerIP    = 2
	maxMemberGossipStreams   = 64
	// gossipHeadTimeout bounds the wait for a stream's label, type and
	// length, gossipBodyTimeout for the rest of its first message (as
	// memberlist's own LAN TCP timeout).
	gossipHeadTimeout = time.Second
	gossipBodyTimeout = 10 * time.Second
)

// memberlist's message types, as its net.go numbers them.
const (
	mlPing     = 0
	mlPushPull = 6
	mlUser     = 8
	mlCompress = 9
	mlEncrypt  = 10
	mlLabel    = 244
)

// packetOK checks a packet as memberlist will: this cluster's label, then,
// with a secret, that the rest decrypts (net.go and security.go there:
// version byte, 12-byte nonce, AES-GCM with the label as data).
func (t *gossipTransport) packetOK(b []byte) bool {
	n := 2 + len(t.label)
	if len(b) < n || b[0] != mlLabel || int(b[1]) != len(t.label) || string(b[2:n]) != t.label {
		return false
	}
	if t.aead == nil {
		return true
	}
	msg := b[n:]
	return len(msg) >= 1+12+16 && msg[0] <= 1 && opens(t.aead, msg[1:13], msg[13:], b[2:n])
}

func (t *gossipTransport) admit(conn net.Conn) {
	release, ok := t.gate.admit(conn.RemoteAddr())
	if !ok {
		t.junk.add(addrIP(conn.RemoteAddr()))
		conn.Close()
		return
	}
	t.wg.Add(1)
	go t.screen(conn, release)
}

// screen reads and checks the stream's first message, then hands the
// stream to memberlist, which closes it (giving back its slot).
func (t *gossipTransport) screen(conn net.Conn, release func()) {
	defer t.wg.Done()
	stop := context.AfterFunc(t.ctx, func() { conn.Close() })
	head, err := t.readFirst(conn)
	stop()
	if err != nil || t.ctx.Err() != nil {
		if err != nil && !errors.Is(err, io.EOF) { // EOF first: a reachability probe
			t.junk.add(addrIP(conn.RemoteAddr()))
		}
		conn.Close()
		release()
		return
	}
	conn.SetDeadline(time.Time{}) // memberlist sets its own
	g := &screenedConn{Conn: conn, pending: head, budget: maxGossipMessage, release: release}
	select {
	case t.streams <- g:
	case <-t.ctx.Done():
		g.Close()
	}
}

var errGossipJunk = errors.New("gossip stream refused")

// readFirst reads the label header and the first message and checks them;
// it returns the bytes read.
func (t *gossipTransport) readFirst(conn net.Conn) ([]byte, error) {
	start := time.Now()
	conn.SetDeadline(start.Add(gossipHeadTimeout))
	head := make([]byte, 2+len(t.label)+1)
	if _, err := io.ReadFull(conn, head[:1]); err != nil {
		return nil, err // io.EOF: nothing at all
	}
	if _, err := io.ReadFull(conn, head[1:]); err != nil {
		return nil, err
	}
	if head[0] != mlLabel || int(head[1]) != len(t.label) || string(head[2:2+len(t.label)]) != t.label {
		return nil, fmt.Errorf("%w: not this cluster's label", errGossipJunk)
	}
	switch typ := head[len(head)-1]; {
	case t.aead == nil && (typ == mlPing || typ == mlPushPull || typ == mlUser || typ == mlCompress):
		return head, nil // no secret: the read budget bounds it (screenedConn)
	case t.aead == nil || typ != mlEncrypt:
		return nil, fmt.Errorf("%w: message type %d", errGossipJunk, typ)
	}
	return t.readEncrypted(conn, head, start)
}

// readEncrypted reads an encrypted message after head and checks it
// decrypts with the gossip key, as memberlist will (security.go there:
// version byte, 12-byte nonce, AES-GCM over the type, the length and the
// label).
func (t *gossipTransport) readEncrypted(conn net.Conn, head []byte, start time.Time) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(l[:])
	if n < 1+12+16 || n > maxGossipMessage {
		return nil, fmt.Errorf("%w: encrypted message of %d bytes", errGossipJunk, n)
	}
	conn.SetDeadline(start.Add(gossipBodyTimeout))
	msg := make([]byte, len(head)+4+int(n))
	copy(msg, head)
	copy(msg[len(head):], l[:])
	body := msg[len(head)+4:]
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	aad := append([]byte{mlEncrypt}, l[:]...)
	aad = append(aad, t.label...)
	if body[0] > 1 || !opens(t.aead, body[1:13], body[13:], aad) {
		return nil, fmt.Errorf("%w: does not decrypt", errGossipJunk)
	}
	return msg, nil
}

// opens reports whether ciphertext authenticates under aead.
func opens(aead cipher.AEAD, nonce, ciphertext, aad []byte) bool {
	_, err := aead.Open(ciphertext[:0:0], nonce, ciphertext, aad)
	return err == nil
}

// gossipAEAD is memberlist's cipher for key (AES-GCM; nil without a key).
func gossipAEAD(key []byte) (cipher.AEAD, error) {
	if key == nil {
		return nil, nil
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// screenedConn replays the bytes screening read, then reads on, at most
// budget bytes in all (memberlist reads one message from an inbound
// stream), and gives back the stream's slot when closed.
type screenedConn struct {
	net.Conn
	pending []byte
	budget  int
	release func()
	once    sync.Once
}

func (c *screenedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.budget <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes", errGossipJunk, maxGossipMessage)
	}
	n, err := c.Conn.Read(p[:min(len(p), c.budget)])
	c.budget -= n
	return n, err
}

func (c *screenedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
