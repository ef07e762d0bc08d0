package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/meshcast/meshcast/hub"
)

// Presence: a namespace with presence and join/leave events; who is on a
// channel from Go, and users coming online and going offline with no
// channel at all. In a cluster the same holds across every node.
func Example_presence() {
	online := make(chan string, 4)
	h, err := hub.New(hub.Config{
		Security: hub.SecurityConfig{Namespaces: map[string]hub.Namespace{
			"room": {Presence: true, JoinLeave: true},
		}},
		Authenticator: hub.AuthenticatorFunc(func(r *http.Request) (hub.Identity, error) {
			return hub.Identity{User: r.Header.Get("X-User")}, nil // your session store
		}),
		OnUserOnline:  func(user string) { online <- user + " online" },
		OnUserOffline: func(user string) { online <- user + " offline" },
	})
	if err != nil {
		panic(err)
	}
	defer h.Shutdown(context.Background())
	srv := httptest.NewServer(h)
	defer srv.Close()

	alice := dialWith(srv.URL, http.Header{"X-User": {"alice"}})
	fmt.Println(<-online)
	alice.send(`{"op":"sub","ch":"room:lobby","id":1,"info":{"name":"Alice"}}`)
	fmt.Println(alice.read()) // her own join comes before the ack
	fmt.Println(alice.read())

	members, _ := h.Presence(context.Background(), "room:lobby")
	fmt.Printf("%s, %d connection(s), info %s\n", members[0].User, members[0].Clients, members[0].Info)
	alice.Close()
	fmt.Println(<-online)
	// Output:
	// alice online
	// {"op":"join","ch":"room:lobby","user":"alice","info":{"name":"Alice"}}
	// {"op":"ack","id":1}
	// alice, 1 connection(s), info {"name":"Alice"}
	// alice offline
}
