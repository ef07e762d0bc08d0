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
	goleak.VerifyTestMain(waitOutMemberlist{m})
}

// waitOutMemberlist runs the tests, then lets memberlist's last probe of
// a peer end: it outlives a cluster's Shutdown by up to a probe timeout
// (longer on a busy machine), longer than goleak's own retries wait. A
// real leak is still there after 10 s, and reported.
type waitOutMemberlist struct{ m *testing.M }

func (w waitOutMemberlist) Run() int {
	code := w.m.Run()
	for deadline := time.Now().Add(10 * time.Second); goleak.Find() != nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	return code
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
