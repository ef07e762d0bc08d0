package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/meshcast/meshcast/hub"
)

// A single node: a hub is an http.Handler; mount it, publish from Go.
func Example() {
	h, err := hub.New(hub.Config{})
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	browser := dial(srv.URL + "/ws") // a browser would do this in JavaScript
	defer browser.Close()
	browser.send(`{"op":"sub","ch":"news","id":1}`)
	fmt.Println(browser.read())

	h.Publish(context.Background(), "news", []byte(`{"headline":"meshcast embedded"}`))
	fmt.Println(browser.read())
	// Output:
	// {"op":"ack","id":1}
	// {"op":"msg","ch":"news","data":{"headline":"meshcast embedded"}}
}

// Custom authentication: the service decides who connects (here from a
// session header) and what they may read; events put each user in a
// personal channel, and a hook's *hub.Error chooses the client's code.
func Example_authentication() {
	sessions := map[string]string{"s3cr3t": "ann"} // your session store
	cfg := hub.Config{
		Authenticator: hub.AuthenticatorFunc(func(r *http.Request) (hub.Identity, error) {
			user, ok := sessions[r.Header.Get("X-Session")]
			if !ok {
				return hub.Identity{}, &hub.Error{Code: http.StatusUnauthorized, Reason: "log in first"}
			}
			return hub.Identity{User: user, ExpiresAt: time.Now().Add(time.Hour)}, nil
		}),
		AuthorizeSubscribe: func(c *hub.Client, ch string) error {
			if strings.HasPrefix(ch, "admin:") && c.User() != "root" {
				return &hub.Error{Code: http.StatusForbidden, Reason: c.User() + " may not read " + ch}
			}
			return c.CanSubscribe(ch) // everything else: the built-in rules
		},
		OnConnect: func(c *hub.Client) {
			c.Subscribe(context.Background(), "user:#"+c.User()) // like socket.join
		},
	}
	h, err := hub.New(cfg)
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())
	srv := httptest.NewServer(h)
	defer srv.Close()

	if _, err := tryDial(srv.URL, nil); err != nil {
		fmt.Println("without a session:", err)
	}
	ann := dialWith(srv.URL, http.Header{"X-Session": {"s3cr3t"}})
	defer ann.Close()
	ann.send(`{"op":"sub","ch":"admin:logs","id":1}`)
	fmt.Println(ann.read())

	h.Publish(context.Background(), "user:#ann", []byte(`"your order shipped"`))
	fmt.Println(ann.read())
	// Output:
	// without a session: unexpected HTTP response status: 401
	// {"op":"err","id":1,"code":403,"reason":"ann may not read admin:logs"}
	// {"op":"msg","ch":"user:#ann","data":"your order shipped"}
}

// wsClient is the smallest WebSocket client the examples need.
type wsClient struct {
	conn io.ReadWriteCloser
	r    io.Reader
}

func dial(url string) *wsClient { return dialWith(url, nil) }

func dialWith(url string, hdr http.Header) *wsClient {
	c, err := tryDial(url, hdr)
	if err != nil {
		panic(err)
	}
	c.read() // hello
	return c
}

func tryDial(url string, hdr http.Header) (*wsClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(hdr)}
	conn, br, _, err := d.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"))
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("unexpected HTTP response status: %d", int(se))
		}
		return nil, err
	}
	c := &wsClient{conn: conn, r: conn}
	if br != nil { // frames that came with the handshake response
		c.r = io.MultiReader(br, conn)
	}
	return c, nil
}

func (c *wsClient) send(s string) { wsutil.WriteClientText(c.conn.(io.Writer), []byte(s)) }

func (c *wsClient) read() string {
	b, _ := wsutil.ReadServerText(struct {
		io.Reader
		io.Writer
	}{c.r, c.conn})
	return string(b)
}

func (c *wsClient) Close() error { return c.conn.Close() }
