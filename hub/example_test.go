package hub_test

import (
	"context"
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

// A Go service embeds a hub: mount it on its own mux, decide who may
// connect and subscribe, and publish from anywhere in its code.
func Example() {
	cfg := hub.DefaultConfig()
	cfg.NodeName = "example"
	cfg.Authorize = func(r *http.Request) (string, error) {
		return r.URL.Query().Get("user"), nil // a real service checks a session or token here
	}
	cfg.AuthorizeSubscribe = func(c hub.ClientInfo, ch string) error {
		if strings.HasPrefix(ch, "admin:") && c.User != "root" {
			return fmt.Errorf("%s may not read %s", c.User, ch)
		}
		return nil
	}
	h, err := hub.New(cfg)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	// A browser would do this part in JavaScript.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?user=ann")
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	// Frames that came with the handshake response are in br.
	rw := struct {
		io.Reader
		io.Writer
	}{conn, conn}
	if br != nil {
		rw.Reader = io.MultiReader(br, conn)
	}
	read := func() string { b, _ := wsutil.ReadServerText(rw); return string(b) }
	read() // hello
	wsutil.WriteClientText(conn, []byte(`{"op":"sub","ch":"admin:logs","id":1}`))
	fmt.Println(read())
	wsutil.WriteClientText(conn, []byte(`{"op":"sub","ch":"news","id":2}`))
	fmt.Println(read())

	// The service publishes from Go.
	h.Publish(context.Background(), "news", []byte(`{"headline":"meshcast embedded"}`))
	fmt.Println(read())
	// Output:
	// {"op":"err","id":1,"code":403,"reason":"ann may not read admin:logs"}
	// {"op":"ack","id":2}
	// {"op":"msg","ch":"news","data":{"headline":"meshcast embedded"}}
}
