package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/gobwas/ws"
)

// serverFrames encodes frames the way a server would (unmasked unless a
// mask is given) with gobwas, the reference encoder.
func serverFrames(t testing.TB, frames ...ws.Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, f := range frames {
		if err := ws.WriteFrame(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

type readOut struct {
	op ws.OpCode
	p  string
}

func readAll(r io.Reader, size int) ([]readOut, error) {
	fr := frameReader{br: bufio.NewReaderSize(r, size)}
	var out []readOut
	for {
		op, p, err := fr.next()
		if err != nil {
			return out, err
		}
		out = append(out, readOut{op, string(p)})
	}
}

func TestFrameReader(t *testing.T) {
	big := bytes.Repeat([]byte("a"), 70000) // 64-bit length, larger than the buffer
	mid := bytes.Repeat([]byte("b"), 300)   // 16-bit length
	masked := ws.MaskFrame(ws.NewTextFrame([]byte("masked")))
	in := serverFrames(t,
		ws.NewTextFrame([]byte(`{"op":"hello"}`)),
		ws.NewTextFrame(mid),
		ws.NewFrame(ws.OpText, false, []byte("frag1-")),
		ws.NewPingFrame([]byte("pp")), // control frames may interleave
		ws.NewFrame(ws.OpContinuation, false, []byte("frag2-")),
		ws.NewFrame(ws.OpContinuation, true, []byte("frag3")),
		ws.NewBinaryFrame(big),
		masked,
		ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")),
	)
	want := []readOut{
		{ws.OpText, `{"op":"hello"}`}, {ws.OpText, string(mid)}, {ws.OpPing, "pp"},
		{ws.OpText, "frag1-frag2-frag3"}, {ws.OpBinary, string(big)}, {ws.OpText, "masked"},
		{ws.OpClose, "\x03\xe8"},
	}
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int
	}{
		{"whole", bytes.NewReader(in), 16 << 10},
		{"one byte reads", iotest.OneByteReader(bytes.NewReader(in)), 16},
		{"half reads", iotest.HalfReader(bytes.NewReader(in)), 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(tc.r, tc.size)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("err %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d messages, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("message %d: %v %q", i, got[i].op, trunc(got[i].p))
				}
			}
		})
	}
}

func trunc(s string) string { return s[:min(len(s), 40)] }

func TestFrameReaderRejects(t *testing.T) {
	huge := []byte{0x81, 127, 0, 0, 0, 0, 0x7f, 0, 0, 0}
	for name, in := range map[string][]byte{
		"reserved bits":       {0xc1, 0},
		"huge length":         huge,
		"bare continuation":   serverFrames(t, ws.NewFrame(ws.OpContinuation, true, []byte("x"))),
		"fragmented control":  serverFrames(t, ws.NewFrame(ws.OpPing, false, nil)),
		"interleaved message": serverFrames(t, ws.NewFrame(ws.OpText, false, []byte("a")), ws.NewTextFrame([]byte("b"))),
	} {
		if _, err := readAll(bytes.NewReader(in), 4096); errors.Is(err, io.EOF) || err == nil {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestClientFrameDecodesWithGobwas(t *testing.T) {
	for _, n := range []int{0, 5, 125, 126, 300, 70000} {
		payload := bytes.Repeat([]byte("z"), n)
		b := appendClientFrame(nil, ws.OpText, payload, [4]byte{1, 2, 3, 4})
		f, err := ws.ReadFrame(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if !f.Header.Masked || !f.Header.Fin || f.Header.OpCode != ws.OpText {
			t.Fatalf("header %+v", f.Header)
		}
		f = ws.UnmaskFrameInPlace(f)
		if !bytes.Equal(f.Payload, payload) {
			t.Fatalf("len %d: payload differs", n)
		}
	}
}

func TestFrameReaderAllocatesNothing(t *testing.T) {
	frame := serverFrames(t, ws.NewTextFrame(bytes.Repeat([]byte("m"), 200)))
	r := bytes.NewReader(nil)
	fr := frameReader{br: bufio.NewReaderSize(r, 16<<10)}
	allocs := testing.AllocsPerRun(1000, func() {
		r.Reset(frame)
		fr.br.Reset(r)
		if _, _, err := fr.next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame", allocs)
	}
}

func FuzzFrameReader(f *testing.F) {
	f.Add(serverFrames(f, ws.NewTextFrame([]byte(`{"op":"msg"}`))), uint8(16))
	f.Add(serverFrames(f, ws.NewFrame(ws.OpText, false, []byte("a")), ws.NewFrame(ws.OpContinuation, true, []byte("b"))), uint8(1))
	f.Add(serverFrames(f, ws.MaskFrame(ws.NewBinaryFrame(bytes.Repeat([]byte("q"), 200)))), uint8(3))
	f.Add([]byte{0x81, 126, 0}, uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, size uint8) {
		fr := frameReader{br: bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(in)), int(size)+16)}
		for range 1000 {
			_, p, err := fr.next()
			if err != nil {
				return
			}
			if len(p) > maxMessage {
				t.Fatalf("message of %d bytes", len(p))
			}
		}
	})
}
