package hub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshcast/meshcast/transport/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type client = wstest.Client

var (
	dial    = wstest.Dial
	waitFor = wstest.WaitFor
)

// testHub serves a hub on a loopback httptest server and tears both down
// at the end of the test.
func testHub(t testing.TB, cfg Config) (*Hub, string) {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Close()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h, srv.wsURL
}

type testServer struct {
	*httptest.Server
	wsURL string
}

func newTestServer(h *Hub) *testServer {
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := httptest.NewServer(mux)
	return &testServer{Server: srv, wsURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
}
