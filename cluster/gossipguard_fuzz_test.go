package cluster

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// The gossip screens (gossipguard.go) read bytes from anyone on the
// network. These targets feed them arbitrary bytes, with and without a
// secret, and check that nothing panics, that what passes is what
// memberlist itself would accept (this cluster's label and, with a
// secret, a message that decrypts under the key) and that a message
// built the way memberlist builds it always passes.

// fuzzGossipTransport is a transport with only what the screens use.
func fuzzGossipTransport(t testing.TB, secret bool) *gossipTransport {
	var key []byte
	if secret {
		key = deriveKey([]byte("fuzz secret"), "memberlist")
	}
	aead, err := gossipAEAD(key)
	if err != nil {
		t.Fatal(err)
	}
	return &gossipTransport{label: "meshcast", aead: aead}
}

// sealGossip encrypts plain as memberlist does (encryption version 1:
// version byte, 12-byte nonce, AES-GCM with aad).
func sealGossip(aead cipher.AEAD, plain, aad []byte) []byte {
	out := append([]byte{1}, make([]byte, 12)...) // a zero nonce is fine in a test
	return aead.Seal(out, out[1:13], plain, aad)
}

// gossipPacket is a packet as memberlist sends it to this cluster.
func gossipPacket(aead cipher.AEAD, plain []byte) []byte {
	b := labelled()
	if aead == nil {
		return append(b, plain...)
	}
	return append(b, sealGossip(aead, plain, []byte("meshcast"))...)
}

// gossipStreamHead is the start of a stream as memberlist sends it: the
// label, then with a secret the encrypted first message (type, length,
// ciphertext over type, length and label), else the plain message.
func gossipStreamHead(aead cipher.AEAD, plain []byte) []byte {
	if aead == nil {
		return labelled(append([]byte{mlPushPull}, plain...)...)
	}
	hdr := binary.BigEndian.AppendUint32([]byte{mlEncrypt}, uint32(1+12+len(plain)+16))
	aad := append(bytes.Clone(hdr), "meshcast"...)
	return labelled(append(hdr, sealGossip(aead, plain, aad)...)...)
}

func FuzzScreenPacket(f *testing.F) {
	f.Add([]byte{}, []byte("ping"))
	f.Add(labelled(), []byte{})
	f.Add(labelled(1, 2, 3), []byte{mlPing, 0x80})
	f.Add(append([]byte{mlLabel, 5}, "other"...), []byte("x"))
	f.Add(labelled(append([]byte{1}, make([]byte, 40)...)...), bytes.Repeat([]byte{7}, 100))
	f.Add(labelled(append([]byte{2}, make([]byte, 40)...)...), []byte("y"))
	for _, secret := range []bool{false, true} {
		aead := fuzzGossipTransport(f, secret).aead
		f.Add(gossipPacket(aead, []byte{mlPing, 0x81, 0xa1, 'S', 1}), []byte("z"))
	}
	f.Fuzz(func(t *testing.T, b, plain []byte) {
		for _, secret := range []bool{false, true} {
			tr := fuzzGossipTransport(t, secret)
			in := bytes.Clone(b)
			ok := tr.packetOK(in)
			if !bytes.Equal(in, b) {
				t.Fatal("packetOK changed the packet")
			}
			if ok {
				n := 2 + len(tr.label)
				if !bytes.HasPrefix(b, labelled()) {
					t.Fatalf("packet % x without this cluster's label passed", b)
				}
				if secret {
					msg := b[n:]
					if len(msg) < 1+12+16 || msg[0] > 1 {
						t.Fatalf("encrypted packet % x of a bad shape passed", b)
					}
					if _, err := tr.aead.Open(nil, msg[1:13], msg[13:], []byte(tr.label)); err != nil {
						t.Fatalf("packet % x that does not decrypt passed", b)
					}
				}
			}
			// A packet built as memberlist builds it always passes.
			if good := gossipPacket(tr.aead, plain); !tr.packetOK(good) {
				t.Fatalf("memberlist's packet % x refused (secret %v)", good, secret)
			}
		}
	})
}

// bytesConn is a net.Conn reading from a byte slice; deadlines are no-ops
// (the reader never blocks).
type bytesConn struct {
	net.Conn
	r io.Reader
}

func (c *bytesConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

func FuzzScreenStream(f *testing.F) {
	f.Add([]byte{}, []byte("pp"))
	f.Add(labelled(), []byte{})
	f.Add(labelled(mlPushPull, 0x80, 0x80), []byte{0x83})
	f.Add(labelled(mlEncrypt), []byte{1})
	f.Add(labelled(mlEncrypt, 0, 0, 0, 29), bytes.Repeat([]byte{9}, 40))
	f.Add(labelled(binary.BigEndian.AppendUint32([]byte{mlEncrypt}, 20<<20)...), []byte("big"))
	f.Add(labelled(append(binary.BigEndian.AppendUint32([]byte{mlEncrypt}, 64), bytes.Repeat([]byte{1}, 64)...)...), []byte("x"))
	f.Add(append([]byte{mlLabel, 5}, "other"...), []byte("y"))
	for _, secret := range []bool{false, true} {
		aead := fuzzGossipTransport(f, secret).aead
		f.Add(gossipStreamHead(aead, []byte{0x83, 0xa5, 'N', 'o', 'd', 'e', 's', 1}), []byte("z"))
	}
	f.Fuzz(func(t *testing.T, b, plain []byte) {
		for _, secret := range []bool{false, true} {
			tr := fuzzGossipTransport(t, secret)
			r := bytes.NewReader(b)
			head, err := tr.readFirst(&bytesConn{r: r})
			read := len(b) - r.Len()
			if err != nil {
				if head != nil {
					t.Fatalf("refused with %d bytes returned", len(head))
				}
				if !errors.Is(err, errGossipJunk) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("refused with an unexpected error: %v", err)
				}
			} else {
				// What is handed on is exactly what was read, so the
				// replay to memberlist loses and adds nothing.
				if !bytes.Equal(head, b[:read]) {
					t.Fatalf("head % x is not the %d bytes read", head, read)
				}
				if !bytes.HasPrefix(b, labelled()) {
					t.Fatalf("stream % x without this cluster's label passed", b)
				}
				n := 2 + len(tr.label)
				typ := b[n]
				if !secret {
					if read != n+1 || (typ != mlPing && typ != mlPushPull && typ != mlUser && typ != mlCompress) {
						t.Fatalf("stream % x passed after %d bytes, type %d", b, read, typ)
					}
				} else {
					l := binary.BigEndian.Uint32(b[n+1:])
					if typ != mlEncrypt || l > maxGossipMessage || read != n+5+int(l) {
						t.Fatalf("encrypted stream passed: type %d, length %d, %d bytes read", typ, l, read)
					}
					body := b[n+5 : read]
					aad := append([]byte{mlEncrypt}, b[n+1:n+5]...)
					aad = append(aad, tr.label...)
					if body[0] > 1 {
						t.Fatalf("encryption version %d passed", body[0])
					}
					if _, err := tr.aead.Open(nil, body[1:13], body[13:], aad); err != nil {
						t.Fatal("a stream that does not decrypt passed")
					}
				}
			}
			if read > 2+len(tr.label)+1+4+maxGossipMessage {
				t.Fatalf("read %d bytes before deciding", read)
			}
			// A stream started as memberlist starts it always passes, and
			// the screen reads no further than its first message (without
			// a secret, than its type).
			good := gossipStreamHead(tr.aead, plain)
			want := good
			if !secret {
				want = good[:2+len(tr.label)+1]
			}
			r = bytes.NewReader(append(bytes.Clone(good), "next"...))
			head, err = tr.readFirst(&bytesConn{r: r})
			if err != nil || !bytes.Equal(head, want) || r.Len() != len(good)-len(want)+len("next") {
				t.Fatalf("memberlist's stream % x: %v, head % x, %d left (secret %v)", good, err, head, r.Len(), secret)
			}
		}
	})
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// FuzzScreenedConnBudget: whatever the reads, memberlist gets the screened
// head back byte for byte, then at most maxGossipMessage more bytes.
func FuzzScreenedConnBudget(f *testing.F) {
	f.Add([]byte("head"), uint32(100), uint8(7))
	f.Add([]byte{}, uint32(maxGossipMessage+10), uint8(0))
	f.Fuzz(func(t *testing.T, head []byte, rest uint32, chunk uint8) {
		rest %= 2 * maxGossipMessage
		released := 0
		c := &screenedConn{Conn: &bytesConn{r: io.LimitReader(zeros{}, int64(rest))}, pending: bytes.Clone(head),
			budget: maxGossipMessage, release: func() { released++ }}
		var got []byte
		buf := make([]byte, int(chunk)*1000+1)
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(got, head) {
			t.Fatal("the screened head was not replayed first")
		}
		if after := len(got) - len(head); after > maxGossipMessage || after != min(int(rest), maxGossipMessage) {
			t.Fatalf("%d bytes after the head of %d sent, budget %d", after, rest, maxGossipMessage)
		}
		c.Close()
		c.Close()
		if released != 1 {
			t.Fatalf("slot released %d times", released)
		}
	})
}
