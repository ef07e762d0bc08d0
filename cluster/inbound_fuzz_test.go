package cluster

import (
	"bufio"
	"bytes"
	"log/slog"
	"testing"

	"github.com/meshcast/meshcast/internal/relay"
)

// FuzzInboundFrames feeds a peer's bytes to an inbound link's frame
// handler (inConn.handle, every frame type): nothing may panic, a frame
// is applied or refused whole, and the peer's interest in the table is
// exactly the channels its frames left it wanting.
func FuzzInboundFrames(f *testing.F) {
	snaps, _ := snapshotFrames([]string{"a", "b"}, map[string]bool{"b": true}, snapshotMsg{Seq: 9, Epoch: 1}, minFrameSize)
	gap, _ := encodeMsg(frameGap, gapMsg{Chs: []string{"room"}})
	gapAll, _ := encodeMsg(frameGap, gapMsg{All: true})
	mark, _ := encodeMsg(frameMark, ackMsg{Seq: 10})
	fetch, _ := encodeMsg(frameFetch, fetchMsg{ID: 1, Ch: "room", After: [][2]uint64{{7, 1}}, Budget: 100})
	stamped := append(stampedHead("room", []byte("hi"), "c1", &relay.Stamp{Stream: 7, Seq: 2, Time: 99}), "hi"...)
	all := bytes.Join([][]byte{
		snaps[0], interestFrame(frameAdd, "room", 10), publishFrame("room", []byte(`{"x":1}`), ""),
		stamped, gap, gapAll, mark, fetch, interestFrame(frameRemove, "a", 11), {0, 0, 0, 1, byte(frameBye)},
	}, nil)
	f.Add(all)
	for i := 0; i < len(all); i += 9 {
		f.Add(all[:i])
	}
	f.Add([]byte{0, 0, 0, 1, 99})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec := &recorder{}
		c := &Cluster{recv: rec, cfg: Config{MaxFrameSize: minFrameSize}, log: slog.New(slog.DiscardHandler),
			linkEvent: make(chan struct{}, 1), members: map[string]*member{}, peers: map[string]*peer{}}
		c.table.byCh = map[string][]*peer{}
		c.stand.ch = make(chan struct{})
		c.local.chans = map[string]*localChan{"room": {seq: 1, refs: 1, presence: true, settled: true}}
		p := &peer{c: c, name: "peer", owner: 1, ackWait: make(chan struct{}), wants: map[string]struct{}{},
			presWants: map[string]uint64{}, presSynced: map[string]uint64{}}
		ic := &inConn{p: p, ackWake: make(chan struct{}, 1), intern: map[string]string{}}
		fr := newFrameReader(bufio.NewReaderSize(bytes.NewReader(b), 64), minFrameSize)
		for {
			typ, body, err := fr.next()
			if err != nil {
				break
			}
			if err := ic.handle(typ, body); err != nil {
				break
			}
		}
		for ch := range p.wants {
			if got := c.table.lookup(ch); len(got) != 1 || got[0] != p {
				t.Fatalf("the peer wants %q, the table has %v", ch, got)
			}
		}
		for ch, ps := range c.table.byCh {
			if _, ok := p.wants[ch]; len(ps) > 0 && !ok {
				t.Fatalf("the table routes %q to a peer that does not want it", ch)
			}
		}
		if n := p.interested.Load(); n != int64(len(p.wants)) {
			t.Fatalf("interested count %d, wants %d", n, len(p.wants))
		}
	})
}
