package cluster

import (
	"bufio"
	"bytes"
	"errors"
	"github.com/meshcast/meshcast/internal/relay"
	"io"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestPublishFrameIsMsgpack(t *testing.T) {
	for _, tc := range []struct {
		ch     string
		data   []byte
		except string
	}{
		{"a", []byte("x"), ""},
		{strings.Repeat("c", 40), bytes.Repeat([]byte{1}, 300), "client-7"},
		{strings.Repeat("d", 300), bytes.Repeat([]byte{2}, 70000), ""},
		{"", nil, ""},
	} {
		f := publishFrame(tc.ch, tc.data, tc.except)
		fr := newFrameReader(bufio.NewReaderSize(bytes.NewReader(f), 64), 1<<20)
		typ, body, err := fr.next()
		if err != nil || typ != framePublish {
			t.Fatalf("next: %v %v", typ, err)
		}
		var generic []any
		if err := msgpack.Unmarshal(body, &generic); err != nil || len(generic) != 2+min(1, len(tc.except)) {
			t.Fatalf("library cannot read publish: %v %v", generic, err)
		}
		ch, data, except, err := decodePublish(body)
		if err != nil || string(ch) != tc.ch || !bytes.Equal(data, tc.data) || string(except) != tc.except {
			t.Fatalf("round trip of %q: %q %q %v", tc.ch, ch, except, err)
		}
		if _, _, err := fr.next(); !errors.Is(err, io.EOF) {
			t.Fatalf("after last frame: %v", err)
		}
	}
}

// TestInterestFrameIsMsgpack: the hand-encoded add/remove decodes as the
// interestMsg a peer reads.
func TestInterestFrameIsMsgpack(t *testing.T) {
	for _, ch := range []string{"a", strings.Repeat("c", 40), strings.Repeat("d", 300)} {
		f := interestFrame(frameRemove, ch, 1<<40+3)
		if got := int(f[0])<<24 | int(f[1])<<16 | int(f[2])<<8 | int(f[3]); got != len(f)-headerLen {
			t.Fatalf("length prefix %d, frame %d", got, len(f)-headerLen)
		}
		var m interestMsg
		if frameType(f[headerLen]) != frameRemove || decodeMsg(f[headerLen+1:], &m) != nil || m.Ch != ch || m.Seq != 1<<40+3 {
			t.Fatalf("round trip of %q: %+v", ch, m)
		}
	}
}

func TestDecodePublishAllocs(t *testing.T) {
	f := publishFrame("chan", make([]byte, 100), "except")
	body := f[headerLen+1:]
	if n := testing.AllocsPerRun(100, func() { decodePublish(body) }); n != 0 {
		t.Fatalf("decodePublish allocates %v times", n)
	}
}

func TestSnapshotChunks(t *testing.T) {
	var chs []string
	for i := range 2000 {
		chs = append(chs, strings.Repeat("x", 50)+string(rune('a'+i%26))+strings.Repeat("y", i%7))
	}
	frames, err := snapshotFrames(chs, nil, snapshotMsg{Seq: 42, Epoch: 7, Fresh: true}, minFrameSize)
	if err != nil || len(frames) < 2 {
		t.Fatalf("%d frames, %v", len(frames), err)
	}
	n := 0
	for i, f := range frames {
		if len(f)-headerLen > minFrameSize {
			t.Fatalf("chunk %d is %d bytes", i, len(f))
		}
		var m snapshotMsg
		if err := decodeMsg(f[headerLen+1:], &m); err != nil {
			t.Fatal(err)
		}
		if m.Done != (i == len(frames)-1) || m.Seq != 42 || m.Epoch != 7 || !m.Fresh {
			t.Fatalf("chunk %d: done %v seq %d epoch %d fresh %v", i, m.Done, m.Seq, m.Epoch, m.Fresh)
		}
		n += len(m.Chs)
	}
	if n != len(chs) {
		t.Fatalf("%d channels in chunks, want %d", n, len(chs))
	}
}

// decodeAll reads every frame from b the way a link does, decoding each
// body by type. It must never panic.
func decodeAll(b []byte, bufSize int) {
	fr := newFrameReader(bufio.NewReaderSize(bytes.NewReader(b), bufSize), minFrameSize)
	for {
		t, body, err := fr.next()
		if err != nil {
			return
		}
		switch t {
		case framePublish:
			decodePublish(body)
		case frameAdd, frameRemove:
			decodeMsg(body, &interestMsg{})
		case frameSnapshot:
			decodeMsg(body, &snapshotMsg{})
		case frameAck, frameMark:
			decodeMsg(body, &ackMsg{})
		case frameGap:
			decodeMsg(body, &gapMsg{})
		case frameHello:
			decodeMsg(body, &helloMsg{})
		case frameChallenge:
			decodeMsg(body, &challengeMsg{})
		case frameStamped:
			decodeStamped(body)
		case frameStored:
			decodeMsg(body, &ackMsg{})
		case frameFetch:
			decodeMsg(body, &fetchMsg{})
		case frameFetched:
			decodeMsg(body, &fetchedMsg{})
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	pub := publishFrame("room", []byte("hello"), "")
	add := interestFrame(frameAdd, "room", 3)
	snaps, _ := snapshotFrames([]string{"a", "b"}, nil, snapshotMsg{Seq: 9, Epoch: 1}, minFrameSize)
	ack, _ := encodeMsg(frameAck, ackMsg{Seq: 9})
	gap, _ := encodeMsg(frameGap, gapMsg{Chs: []string{"room"}})
	stamped := append(stampedHead("room", []byte("hi"), "c1", &relay.Stamp{Stream: 7, Seq: 2, Time: 99}), "hi"...)
	fetch, _ := encodeMsg(frameFetch, fetchMsg{ID: 1, Ch: "room", After: [][2]uint64{{7, 1}}, Budget: 100})
	fetched, _ := encodeMsg(frameFetched, fetchedMsg{ID: 1, Msgs: []fetchedRecord{{Stream: 7, Seq: 2, Time: 99, Data: []byte("hi")}}, Spans: [][4]int64{{7, 1, 2, 0}}})
	all := bytes.Join([][]byte{pub, add, snaps[0], ack, gap, stamped, fetch, fetched}, nil)
	f.Add(all)
	for i := 0; i < len(all); i += 7 {
		f.Add(all[:i]) // truncated
	}
	f.Add(pub[:len(pub)-1])
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeAll(b, 16)   // tiny buffer: frames go through the scratch path
		decodeAll(b, 4096) // frames read in place
	})
}

// fakeConn feeds the server side of the handshake from bytes.
type fakeConn struct {
	io.Reader
	io.Writer
}

func FuzzHandshake(f *testing.F) {
	hello, _ := encodeMsg(frameHello, helloMsg{ProtocolVersion, "meshcast", "dialer", make([]byte, nonceLen)})
	proof, _ := encodeMsg(frameProof, proofMsg{make([]byte, 32)})
	f.Add(append(append([]byte{}, hello...), proof...))
	f.Add(hello)
	f.Add(hello[:10])
	f.Add([]byte{0, 0, 0, 1, byte(frameProof)})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, key := range [][]byte{nil, deriveKey([]byte("s"), "peer-link")} {
			h := handshake{key: key, cluster: "meshcast", name: "acceptor"}
			conn := fakeConn{bytes.NewReader(b), io.Discard}
			fr := newFrameReader(bufio.NewReaderSize(conn, 64), handshakeMaxFrame)
			hello, err := readHello(fr)
			if err != nil {
				continue
			}
			name, err := h.server(conn, fr, hello, func(string) error { return nil })
			if err == nil && name == "" {
				t.Fatal("accepted a dialer without a name")
			}
			if err == nil && key != nil {
				t.Fatal("fuzz input authenticated without the secret")
			}
		}
	})
}
