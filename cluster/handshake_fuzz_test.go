package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzHandshakeDialer feeds the dialer side of the peer-link handshake
// (handshake.client) arbitrary answers from whoever it reached: it must
// never panic, and never accept the link, since a valid answer needs a MAC
// over the dialer's fresh random nonce (with or without a secret). FuzzHandshake
// covers the acceptor side.
func FuzzHandshakeDialer(f *testing.F) {
	ch, _ := encodeMsg(frameChallenge, challengeMsg{ProtocolVersion, "meshcast", "acceptor", make([]byte, nonceLen)})
	ok, _ := encodeMsg(frameWelcome, welcomeMsg{OK: true, MAC: make([]byte, 32)})
	refused, _ := encodeMsg(frameWelcome, welcomeMsg{Reason: reasonAuthFailed + " (different cluster secret?)"})
	rejected, _ := encodeMsg(frameWelcome, welcomeMsg{Reason: "not a member"})
	f.Add(append(bytes.Clone(ch), ok...))
	f.Add(append(bytes.Clone(ch), refused...))
	f.Add(append(bytes.Clone(ch), rejected...))
	f.Add(rejected)
	f.Add(ch[:12])
	f.Add([]byte{0, 0, 0, 1, byte(frameChallenge)})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, key := range [][]byte{nil, deriveKey([]byte("s"), "peer-link")} {
			h := handshake{key: key, cluster: "meshcast", name: "dialer"}
			var sent bytes.Buffer
			fr := newFrameReader(bufio.NewReaderSize(bytes.NewReader(b), 64), handshakeMaxFrame)
			err := h.client(&sent, fr, "acceptor")
			if err == nil {
				t.Fatalf("dialer accepted the link from % x (secret %v)", b, key != nil)
			}
			if !errors.Is(err, errHandshake) && !errors.Is(err, errRejected) && !errors.Is(err, errMalformed) &&
				!errors.Is(err, errTooLarge) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			// The dialer sends its hello and, only after a challenge from
			// the node it meant to reach, its proof: nothing else.
			fr2 := newFrameReader(bufio.NewReader(&sent), handshakeMaxFrame)
			var hello helloMsg
			if err := readMsg(fr2, frameHello, &hello); err != nil || hello.Name != "dialer" || len(hello.Nonce) != nonceLen {
				t.Fatalf("dialer's hello %+v, %v", hello, err)
			}
			if typ, _, err := fr2.next(); err == nil && typ != frameProof {
				t.Fatalf("dialer sent frame type %d after its hello", typ)
			}
		}
	})
}
