package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/hub"
)

// presenceHub is a real hub with a presence namespace; users name
// themselves with ?user=.
func presenceHub(t *testing.T) string {
	t.Helper()
	cfg := hub.DefaultConfig()
	cfg.Security.Namespaces = map[string]hub.Namespace{"room": {Presence: true, JoinLeave: true}}
	cfg.Authenticator = hub.AuthenticatorFunc(func(r *http.Request) (hub.Identity, error) {
		return hub.Identity{User: r.URL.Query().Get("user")}, nil
	})
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

// TestPresence: info with the sub, join and leave on the subscription in
// order with its messages, Presence and PresenceStats, and the server's
// refusal as an *Error.
func TestPresence(t *testing.T) {
	url := presenceHub(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := Dial(ctx, url+"?user=watcher")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sub, err := w.Subscribe(ctx, "room:go")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := Dial(ctx, url+"?user=alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Subscribe(ctx, "room:go", WithInfo([]byte(`{"name":"Alice"}`))); err != nil {
		t.Fatal(err)
	}
	members, err := w.Presence(ctx, "room:go")
	if err != nil || len(members) != 2 || members[0].User != "alice" || string(members[0].Info) != `{"name":"Alice"}` || members[1].Clients != 1 {
		t.Fatalf("%+v %v", members, err)
	}
	if st, err := w.PresenceStats(ctx, "room:go"); err != nil || st != (PresenceStats{Users: 2, Clients: 2}) {
		t.Fatalf("%+v %v", st, err)
	}
	alice.Close()
	var got []string
	for len(got) < 3 {
		select {
		case m := <-sub.C:
			switch {
			case m.Join:
				got = append(got, "join "+m.User+" "+string(m.Info))
			case m.Leave:
				got = append(got, "leave "+m.User)
			}
		case <-ctx.Done():
			t.Fatalf("events so far %v", got)
		}
	}
	if want := []string{"join watcher ", `join alice {"name":"Alice"}`, "leave alice"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %v, want %v", got, want)
	}
	var e *Error
	if _, err := w.Presence(ctx, "plain"); !errors.As(err, &e) || e.Code != 400 {
		t.Fatalf("presence off: %v", err)
	}
}
