package hub_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/transport"
)

// Events, history and a server-side disconnect: a service publishes from
// its own handlers, reads a channel's history, and ends a user's
// connections on every node; OnDisconnect says who closed and with which
// code, and the hub's errors are sentinels for errors.Is.
func ExampleHub_Disconnect() {
	gone := make(chan string, 1)
	h, err := hub.New(hub.Config{
		Security: hub.SecurityConfig{Namespaces: map[string]hub.Namespace{
			"chat": {History: 100},
		}},
		Authenticator: hub.AuthenticatorFunc(func(r *http.Request) (hub.Identity, error) {
			return hub.Identity{User: r.Header.Get("X-User")}, nil // your session store
		}),
		OnDisconnect: func(c *hub.Client, reason *transport.CloseError) {
			gone <- fmt.Sprintf("%s: %d %s (remote %v)", c.User(), reason.Code, reason.Reason, reason.Remote)
		},
	})
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx := context.Background()
	h.Publish(ctx, "chat:lobby", []byte(`"first"`)) // from an HTTP handler of yours
	h.Publish(ctx, "chat:lobby", []byte(`"second"`))
	msgs, _ := h.History(ctx, "chat:lobby", 10)
	for _, m := range msgs {
		fmt.Println(string(m.Data))
	}
	if _, err := h.History(ctx, "news", 10); errors.Is(err, hub.ErrNoHistory) {
		fmt.Println("news has no history")
	}

	bob := dialWith(srv.URL, http.Header{"X-User": {"bob"}})
	defer bob.Close()
	h.Disconnect(ctx, "bob") // every connection of bob, on every node
	fmt.Println(<-gone)
	// Output:
	// "first"
	// "second"
	// news has no history
	// bob: 4003 disconnected (remote false)
}
