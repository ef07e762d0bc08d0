package client

// The one file of these tests that builds a real hub: its API is being
// reshaped on main (issue 9), so a change there is a change here only.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshcast/meshcast/hub"
)

// hubServer is a single meshcast node in this process.
type hubServer struct {
	hub *hub.Hub
	srv *httptest.Server
	URL string
}

func startHub(t testing.TB, name string) *hubServer {
	t.Helper()
	return startHubPinging(t, name, 0)
}

// startHubPinging starts a hub that pings its clients every interval (0:
// the default).
func startHubPinging(t testing.TB, name string, interval time.Duration) *hubServer {
	t.Helper()
	cfg := hub.DefaultConfig()
	cfg.NodeName = name
	if interval > 0 {
		cfg.Transport.PingInterval = interval
	}
	return serveHub(t, cfg)
}

// serveHub serves a hub of cfg at /ws on loopback until the test ends.
func serveHub(t testing.TB, cfg hub.Config) *hubServer {
	t.Helper()
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	s := &hubServer{hub: h, srv: httptest.NewServer(mux)}
	s.URL = "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws"
	t.Cleanup(s.shutdown)
	return s
}

// shutdown closes every client with 1001 "going away", as a node that
// gets SIGTERM does, and stops listening.
func (s *hubServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.hub.Shutdown(ctx)
	s.srv.Close()
}

func (s *hubServer) publish(t testing.TB, ch, data string) {
	t.Helper()
	if err := s.hub.Publish(context.Background(), ch, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

// exampleNode starts a hub for the examples; stop shuts it down.
func exampleNode() (url string, stop func()) {
	h, err := hub.New(hub.DefaultConfig())
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", func() {
		_ = h.Shutdown(context.Background())
		srv.Close()
	}
}
