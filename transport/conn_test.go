package transport

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gobwas/ws"

	"github.com/meshcast/meshcast/transport/wstest"
)

func TestConnSize(t *testing.T) {
	t.Parallel()
	// The idle cost per connection is this plus net.Conn (~1 KiB) and the
	// registry entry; keep it small.
	size := unsafe.Sizeof(Conn{})
	t.Logf("unsafe.Sizeof(Conn{}) = %d bytes", size)
	if size > 256 {
		t.Errorf("Conn is %d bytes, budget 256", size)
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, true)
		c := e.dial()
		for _, s := range []string{"hello", "", strings.Repeat("x", 1000), "héllo ✓"} {
			c.sendText(s)
			if got := c.readText(); got != s {
				t.Fatalf("echo %q, want %q", got, s)
			}
		}
		if got := e.srv.Stats().Upgrades; got != 1 {
			t.Errorf("Upgrades = %d, want 1", got)
		}
	})
}

func TestFragmentedMessage(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, true)
		c := e.dial()
		c.write(ws.NewFrame(ws.OpText, false, []byte("hel")))
		c.write(ws.NewPingFrame([]byte("mid"))) // control frames may interleave
		c.write(ws.NewFrame(ws.OpContinuation, false, []byte("lo, ")))
		// A rune split across fragments is valid: only the whole must be UTF-8.
		c.write(ws.NewFrame(ws.OpContinuation, false, []byte("w\xc3")))
		c.write(ws.NewFrame(ws.OpContinuation, true, []byte("\xb6rld")))
		if f := c.read(); f.Header.OpCode != ws.OpPong || string(f.Payload) != "mid" {
			t.Fatalf("got %v %q, want pong \"mid\"", f.Header.OpCode, f.Payload)
		}
		if got, want := c.readText(), "hello, wörld"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if got := e.rec(0).messages(); len(got) != 1 {
			t.Fatalf("handler got %d messages, want 1: %q", len(got), got)
		}
	})
}

func TestPingPong(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, true)
		c := e.dial()
		c.write(ws.NewPingFrame([]byte("abc")))
		f := c.read()
		if f.Header.OpCode != ws.OpPong || string(f.Payload) != "abc" {
			t.Fatalf("got %v %q, want pong \"abc\"", f.Header.OpCode, f.Payload)
		}
		if f.Header.Masked {
			t.Fatal("server frame is masked")
		}
	})
}

func TestCloseHandshake(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, true)
		c := e.dial()
		c.write(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
		c.expectClose(CloseNormal)
		got := e.rec(0).waitClosed(t)
		if *got != (CloseError{Code: CloseNormal, Reason: "bye", Remote: true}) {
			t.Fatalf("OnClose(%+v)", *got)
		}
		wstest.WaitFor(t, 5*time.Second, "registry empty", func() bool { return e.srv.Stats().Conns == 0 })
	})
}

// closeCase is a client input and the close code the server must answer.
type closeCase struct {
	name   string
	frames []ws.Frame // sent as is: mask them unless the case is about masking
	want   StatusCode
}

func masked(fs ...ws.Frame) []ws.Frame {
	for i := range fs {
		fs[i] = ws.MaskFrame(fs[i])
	}
	return fs
}

func runCloseCases(t *testing.T, cases []closeCase) {
	forModes(t, func(t *testing.T, cfg Config) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, cfg, true)
				c := e.dial()
				for _, f := range tc.frames {
					c.writeRaw(f)
				}
				c.expectClose(tc.want)
				got := e.rec(0).waitClosed(t)
				if got.Code != tc.want || got.Remote {
					t.Fatalf("OnClose(%+v), want local close %d", *got, tc.want)
				}
				if tc.want == CloseProtocolError && e.srv.Stats().ProtocolErrorCloses != 1 {
					t.Fatalf("ProtocolErrorCloses = %d, want 1", e.srv.Stats().ProtocolErrorCloses)
				}
			})
		}
	})
}

func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	runCloseCases(t, []closeCase{
		{
			name:   "single frame",
			frames: masked(ws.NewTextFrame([]byte("ok \xff"))),
			want:   CloseInvalidPayload,
		},
		{
			name: "fragments",
			frames: masked(
				ws.NewFrame(ws.OpText, false, []byte("ok")),
				ws.NewFrame(ws.OpContinuation, true, []byte("\xc3")),
			),
			want: CloseInvalidPayload,
		},
	})
}

func TestTooBig(t *testing.T) {
	t.Parallel()
	limit := testConfig(false).MaxMessageSize
	half := []byte(strings.Repeat("a", limit/2))
	runCloseCases(t, []closeCase{
		{
			name:   "single frame",
			frames: masked(ws.NewTextFrame(make([]byte, limit+1))),
			want:   CloseTooBig,
		},
		{
			name: "fragments",
			frames: masked(
				ws.NewFrame(ws.OpText, false, half),
				ws.NewFrame(ws.OpContinuation, false, half),
				ws.NewFrame(ws.OpContinuation, true, []byte("a")),
			),
			want: CloseTooBig,
		},
	})
}

func TestBinaryRejected(t *testing.T) {
	t.Parallel()
	runCloseCases(t, []closeCase{
		{
			name:   "binary",
			frames: masked(ws.NewBinaryFrame([]byte{1, 2, 3})),
			want:   CloseUnsupportedData,
		},
		{
			// Not 1002 for bad fragmentation, which ws.CheckHeader would say.
			name: "binary inside fragmented text",
			frames: masked(
				ws.NewFrame(ws.OpText, false, []byte("a")),
				ws.NewBinaryFrame([]byte{1}),
			),
			want: CloseUnsupportedData,
		},
	})
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	rsv := ws.NewTextFrame([]byte("x"))
	rsv.Header.Rsv = ws.Rsv(true, false, false)
	badOp := ws.NewTextFrame([]byte("x"))
	badOp.Header.OpCode = 0x3
	longPing := ws.NewPingFrame(make([]byte, 126))
	runCloseCases(t, []closeCase{
		{
			name:   "unmasked",
			frames: []ws.Frame{ws.NewTextFrame([]byte("x"))},
			want:   CloseProtocolError,
		},
		{
			name:   "rsv bits",
			frames: masked(rsv),
			want:   CloseProtocolError,
		},
		{
			name:   "reserved opcode",
			frames: masked(badOp),
			want:   CloseProtocolError,
		},
		{
			name:   "control frame over 125 bytes",
			frames: masked(longPing),
			want:   CloseProtocolError,
		},
		{
			name:   "fragmented control frame",
			frames: masked(ws.NewFrame(ws.OpPing, false, []byte("x"))),
			want:   CloseProtocolError,
		},
		{
			name:   "continuation without start",
			frames: masked(ws.NewFrame(ws.OpContinuation, true, []byte("x"))),
			want:   CloseProtocolError,
		},
		{
			name: "new message inside fragmented one",
			frames: masked(
				ws.NewFrame(ws.OpText, false, []byte("a")),
				ws.NewTextFrame([]byte("b")),
			),
			want: CloseProtocolError,
		},
		{
			name:   "bad close code",
			frames: masked(ws.NewCloseFrame([]byte{0x03, 0xED})), // 1005
			want:   CloseProtocolError,
		},
		{
			name:   "close code over 4999",
			frames: masked(ws.NewCloseFrame([]byte{0x13, 0x88})), // 5000
			want:   CloseProtocolError,
		},
	})
}

func TestSendAfterClose(t *testing.T) {
	t.Parallel()
	forModes(t, func(t *testing.T, cfg Config) {
		e := newEnv(t, cfg, true)
		c := e.dial()
		r := e.rec(0)
		conn := r.conn.Load()
		f, p := NewTextFrame(2)
		copy(p, "hi")
		if err := conn.Send(f); err != nil {
			t.Fatalf("Send: %v", err)
		}
		conn.Close(CloseNormal, "done")
		conn.Close(CloseInternalError, "ignored") // idempotent
		if err := conn.Send(f); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close = %v, want ErrClosed", err)
		}
		if got := c.readText(); got != "hi" {
			t.Fatalf("got %q before close, want the queued frame", got)
		}
		if reason := c.expectClose(CloseNormal); reason != "done" {
			t.Fatalf("close reason %q", reason)
		}
		if got := r.waitClosed(t); got.Code != CloseNormal || got.Remote {
			t.Fatalf("OnClose(%+v)", *got)
		}
		if err := conn.Send(f); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after OnClose = %v, want ErrClosed", err)
		}
	})
}

// Not parallel: it counts the goroutines of the whole process.
func TestIdleConnHasNoGoroutine(t *testing.T) {
	e := newEnv(t, testConfig(false), true)
	c := e.dial() // warm up the HTTP server's goroutines
	c.sendText("x")
	c.readText()
	before := runtime.NumGoroutine()
	const n = 100
	for range n {
		c := e.dial()
		c.sendText("x") // each connection has been read from once
		c.readText()
	}
	wstest.WaitFor(t, 5*time.Second, "handshake goroutines to exit", func() bool {
		return runtime.NumGoroutine() < before+n/10
	})
	if got := e.srv.Stats().Conns; got != n+1 {
		t.Fatalf("Conns = %d, want %d", got, n+1)
	}
}
