package client

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/meshcast/meshcast/hub"
)

var refreshSecret = []byte("client-refresh-test-secret-32byt")

// tokenHub is a real hub that checks HS256 tokens signed with
// refreshSecret, and closes a connection with 4001 at its token's exp.
func tokenHub(t testing.TB) *hubServer {
	t.Helper()
	v, err := hub.NewTokenVerifier(hub.TokenKeys{HMACSecret: refreshSecret})
	if err != nil {
		t.Fatal(err)
	}
	cfg := hub.DefaultConfig()
	cfg.NodeName = "tokens"
	cfg.Authenticator = v
	return serveHub(t, cfg)
}

// signToken is a token of user that expires in ttl (whole seconds).
func signToken(t testing.TB, user string, ttl time.Duration) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(ttl).Unix(),
	}).SignedString(refreshSecret)
	if err != nil {
		t.Error(err) // GetToken runs on the client's goroutines
	}
	return tok
}

// Against a real hub: tokens that live 3 s are refreshed over the live
// connection, so it outlives several of them with no 4001, no reconnect,
// and no gap on a channel without history, while messages keep arriving.
func TestRefreshKeepsConnectionFromHub(t *testing.T) {
	const ttl = 3 * time.Second
	h := tokenHub(t)
	var tokens atomic.Int32
	var ev events
	cfg := testConfig(h.URL)
	cfg.OnEvent = ev.on
	cfg.GetToken = func(context.Context) (string, error) {
		tokens.Add(1)
		return signToken(t, "alice", ttl), nil
	}
	c := connect(t, cfg)
	s := subscribe(t, c, "live")
	// Past three lifetimes of the first token: it expired at most ttl
	// after the connection.
	end := time.Now().Add(3*ttl + time.Second)
	for i := 0; time.Now().Before(end); i++ {
		h.publish(t, "live", strconv.Itoa(i))
		if m := next(t, s); m.Gap || string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d: got %+v (events %+v)", i, m, ev.of(EventDisconnected))
		}
		if d := ev.of(EventDisconnected); len(d) > 0 {
			t.Fatalf("disconnected at message %d: %+v", i, d[0])
		}
		select {
		case <-time.After(20 * time.Millisecond): // pace the publishes, not a wait for a condition
		case <-c.Done():
			t.Fatalf("client stopped: %v", c.Err())
		}
	}
	if n := len(ev.of(EventConnected)); n != 1 || len(ev.of(EventDisconnected)) != 0 || len(ev.of(EventError)) != 0 {
		t.Fatalf("connected %d times; events %+v", n, ev.all)
	}
	// One token to connect, then a refresh at once (less than the 5 s
	// margin left) and about every ttl/2.
	if n := tokens.Load(); n < 4 {
		t.Fatalf("GetToken called %d times: the token was not refreshed", n)
	}
}
