package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// conn is one WebSocket connection. Its frames are read by one goroutine
// (readLoop); writes take wsem, a one-slot semaphore, with a deadline.
type conn struct {
	nc    net.Conn
	rd    *wsutil.Reader
	ctl   wsutil.ControlHandler
	cfg   *Config
	idle  time.Duration // read deadline per frame once connected; 0 during the dial
	hello *serverFrame
	wsem  chan struct{}

	closeOnce sync.Once
}

// UpgradeError is a node's refusal of the WebSocket upgrade, before any
// frame (docs/protocol.md, Connecting): 401 or 403 for the token or the
// origin, 503 for a node that is not ready or is full.
type UpgradeError struct {
	Status int
	// RetryAfter is the node's Retry-After header (a 503 of a node not
	// in good standing); 0 without one.
	RetryAfter time.Duration
	// Body is the start of the answer's body, usually
	// {"code":<status>,"reason":"<why>"}.
	Body string
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("client: upgrade refused: HTTP %d %s", e.Status, e.Body)
}

// dial connects to url and reads the hello.
func dial(ctx context.Context, cfg *Config, url, token string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	hdr := http.Header{}
	for k, v := range cfg.Header {
		hdr[k] = v
	}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	var refused *UpgradeError
	d := ws.Dialer{
		Header:    ws.HandshakeHeaderHTTP(hdr),
		TLSConfig: cfg.TLSConfig,
		OnStatusError: func(status int, _ []byte, resp io.Reader) {
			refused = readRefusal(status, resp)
		},
	}
	nc, br, _, err := d.Dial(ctx, url)
	if err != nil {
		if refused != nil {
			return nil, refused
		}
		return nil, err
	}
	var src io.Reader = nc
	if br != nil {
		src = io.MultiReader(br, nc)
	}
	c := newConn(nc, src, cfg)
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetReadDeadline(dl)
	}
	// The deadline is DialTimeout's: Close (or Connect's ctx, which ends
	// in Close) must end the wait for the hello too.
	unblock := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	b, err := c.next()
	if !unblock() && err == nil {
		err = ctx.Err() // the deadline may have been moved past the hello
	}
	if err == nil {
		c.hello, err = decodeFrame(b)
		if err == nil && c.hello.Op != "hello" {
			err = fmt.Errorf("client: first frame is %q, not hello", c.hello.Op)
		}
	}
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: waiting for the hello: %w", ctx.Err())
		}
		return nil, err
	}
	return c, nil
}

// newConn wraps nc; its frames are read from src (nc, after what the
// handshake read ahead).
func newConn(nc net.Conn, src io.Reader, cfg *Config) *conn {
	c := &conn{nc: nc, cfg: cfg, wsem: make(chan struct{}, 1)}
	c.rd = &wsutil.Reader{
		Source:         src,
		State:          ws.StateClientSide,
		CheckUTF8:      true,
		MaxMessageSize: cfg.MaxMessageSize,
		OnIntermediate: func(h ws.Header, r io.Reader) error { return c.control(h, r) },
	}
	return c
}

// readRefusal reads the status and Retry-After of a refused upgrade.
func readRefusal(status int, resp io.Reader) *UpgradeError {
	e := &UpgradeError{Status: status}
	res, err := http.ReadResponse(bufio.NewReader(io.LimitReader(resp, 4096)), nil)
	if err != nil {
		return e
	}
	// Seconds past what a Duration holds (or an int: Atoi then gives the
	// largest with ErrRange) mean the longest wait: the product wrapped
	// around to a short or negative wait, an immediate retry.
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); (err == nil || errors.Is(err, strconv.ErrRange)) && s > 0 {
		e.RetryAfter = time.Duration(min(int64(s), int64(math.MaxInt64/time.Second))) * time.Second
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	e.Body = string(bytes.TrimSpace(body))
	return e
}

// next returns the next text message, answering control frames on the
// way. A close frame ends it with a wsutil.ClosedError.
func (c *conn) next() ([]byte, error) {
	for {
		if c.idle > 0 { // any frame, a ping included, proves the server alive
			_ = c.nc.SetReadDeadline(time.Now().Add(c.idle))
		}
		h, err := c.rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if h.OpCode.IsControl() {
			if err := c.control(h, c.rd); err != nil {
				return nil, err
			}
			continue
		}
		if h.OpCode != ws.OpText {
			if err := c.rd.Discard(); err != nil {
				return nil, err
			}
			continue
		}
		return io.ReadAll(c.rd)
	}
}

func (c *conn) control(h ws.Header, r io.Reader) error {
	var dst io.Writer = lockedWriter{c}
	if h.OpCode == ws.OpClose {
		dst = closeEcho{c}
	}
	ctl := wsutil.ControlHandler{Src: r, Dst: dst, State: ws.StateClientSide}
	return ctl.Handle(h)
}

// closeEcho writes the answer to the server's close frame, best effort:
// the server's code decides what the client does next (4003 stops it),
// so a failed echo (the server reset the socket) or a stuck write must
// neither replace that code with its error nor delay it.
type closeEcho struct{ c *conn }

func (w closeEcho) Write(p []byte) (int, error) {
	select {
	case w.c.wsem <- struct{}{}:
		_ = w.c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = w.c.nc.Write(p)
		<-w.c.wsem
	default: // a write is stuck: the socket closes anyway
	}
	return len(p), nil
}

// readLoop hands every message to handle until the connection ends, and
// returns the close code and reason (1006 when there was no close frame).
func (c *conn) readLoop(handle func([]byte)) (int, string) {
	c.idle = c.cfg.ReadTimeout
	for {
		b, err := c.next()
		if err != nil {
			var ce wsutil.ClosedError
			if errors.As(err, &ce) {
				return int(ce.Code), ce.Reason
			}
			if errors.Is(err, wsutil.ErrMessageTooLarge) {
				c.closeWith(ws.StatusMessageTooBig, "message too big")
			}
			return 1006, err.Error()
		}
		handle(b)
	}
}

// errNotWritten: ctx ended before the write began; nothing was sent.
var errNotWritten = errors.New("client: not written")

// write sends one text frame. ctx bounds the wait for the semaphore
// (then the error is errNotWritten and ctx's), and the write itself with
// WriteTimeout: a write cut by ctx leaves half a frame, and the caller
// closes the connection.
func (c *conn) write(ctx context.Context, p []byte) error {
	select {
	case c.wsem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errNotWritten, ctx.Err())
	}
	defer func() { <-c.wsem }()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", errNotWritten, err)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
	var mu sync.Mutex // the deadline is moved only while this write runs
	writing := true
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if writing {
			_ = c.nc.SetWriteDeadline(time.Now())
		}
	})
	err := wsutil.WriteClientText(c.nc, p)
	if !stop() {
		mu.Lock()
		writing = false
		mu.Unlock()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("client: write: %w", ctx.Err())
		}
	}
	return err
}

// closeWith sends a close frame (best effort) and closes the socket,
// which ends readLoop.
func (c *conn) closeWith(code ws.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		select {
		case c.wsem <- struct{}{}:
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			_ = ws.WriteFrame(c.nc, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason))))
			<-c.wsem
		default: // a write is stuck: do not wait for it
		}
		c.nc.Close()
	})
}

// lockedWriter writes control answers (pong, close) under the semaphore.
type lockedWriter struct{ c *conn }

func (w lockedWriter) Write(p []byte) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.c.cfg.WriteTimeout)
	defer cancel()
	select {
	case w.c.wsem <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-w.c.wsem }()
	_ = w.c.nc.SetWriteDeadline(time.Now().Add(w.c.cfg.WriteTimeout))
	return w.c.nc.Write(p)
}
