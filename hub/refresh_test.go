package hub

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// refreshReq is a refresh request with id 1.
func refreshReq(token string) string {
	return fmt.Sprintf(`{"op":"refresh","token":%q,"id":1}`, token)
}

// TestRefreshMovesExpiry: hello says when the token expires; a refresh
// with a later token moves the connection's expiry, so the sweep at the
// old exp leaves it open and the one at the new exp closes it with 4001.
// The sweep is run by hand at those seconds: no waiting on the clock.
func TestRefreshMovesExpiry(t *testing.T) {
	h, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	first := claims("alice", time.Hour)
	c := dial(t, withToken(url, hs256(t, first)))
	if got := c.Hello["expires"]; got != float64(first["exp"].(int64)) {
		t.Fatalf("hello expires %v, want the token's exp %d", got, first["exp"])
	}
	// ttl: the seconds left by the node's clock (the test may cross a second).
	if ttl, _ := c.Hello["ttl"].(float64); ttl < 3598 || ttl > 3600 {
		t.Fatalf("hello ttl %v, want about 3600", c.Hello["ttl"])
	}
	later := claims("alice", 2*time.Hour)
	m := c.RoundTrip(refreshReq(hs256(t, later)))
	if m["op"] != "ack" || m["id"] != 1.0 || m["expires"] != float64(later["exp"].(int64)) {
		t.Fatalf("refresh: %v, want ack with expires %d", m, later["exp"])
	}
	if st := h.Stats(); st.Refreshes != 1 || st.RefreshesRefused != 0 {
		t.Fatalf("Stats: %d refreshes, %d refused; want 1 and 0", st.Refreshes, st.RefreshesRefused)
	}
	h.expire(first["exp"].(int64))
	c.MustAck(`{"op":"ping","id":2}`) // still open
	h.expire(later["exp"].(int64))
	if code, reason := c.ExpectClose(); code != CloseTokenExpired {
		t.Fatalf("close %d %q at the new exp, want 4001", code, reason)
	}
}

// TestRefreshReplacesChannels: in a claim namespace the refreshed token's
// channels apply to the subscribes that follow.
func TestRefreshReplacesChannels(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{
		Namespaces: map[string]Namespace{"team": {Subscribe: SubscribeClaim}},
	})
	c := dial(t, withToken(url, hs256(t, claims("alice", time.Hour, "channels", []string{"team:a"}))))
	mustErr(t, c, `{"op":"sub","ch":"team:b","id":5}`, CodeForbidden)
	c.MustAck(refreshReq(hs256(t, claims("alice", time.Hour, "channels", []string{"team:b"}))))
	c.MustAck(`{"op":"sub","ch":"team:b","id":6}`)
}

// TestRefreshRefusals: each refusal says why, and leaves the connection
// as it was.
func TestRefreshRefusals(t *testing.T) {
	h, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	first := claims("alice", time.Hour)
	c := dial(t, withToken(url, hs256(t, first)))
	cases := []struct {
		req    string
		code   int
		reason string
	}{
		{refreshReq(hs256(t, claims("bob", time.Hour))), CodeForbidden, "cannot change the user"},
		{refreshReq(hs256(t, claims("alice", -time.Minute))), 401, "expired"},
		{refreshReq("not-a-token"), 401, ""},
		{`{"op":"refresh","id":1}`, CodeBadRequest, `needs "token"`},
		{`{"op":"refresh","token":7,"id":1}`, CodeBadRequest, `"token" must be a string`},
	}
	for _, tc := range cases {
		if reason := mustErr(t, c, tc.req, tc.code); !strings.Contains(reason, tc.reason) {
			t.Errorf("%s: reason %q, want it to contain %q", tc.req, reason, tc.reason)
		}
	}
	// Counted apart from refused upgrades: the ones with a token to check.
	if st := h.Stats(); st.RefreshesRefused != 3 || st.Refreshes != 0 || st.RefusedAuth != 0 {
		t.Fatalf("Stats: %d refreshes refused, %d applied, %d upgrades refused; want 3, 0, 0", st.RefreshesRefused, st.Refreshes, st.RefusedAuth)
	}
	h.expire(first["exp"].(int64)) // the first token's expiry still holds
	if code, _ := c.ExpectClose(); code != CloseTokenExpired {
		t.Fatalf("close %d, want 4001 at the first token's exp", code)
	}

	_, open := secureHub(t, nil, SecurityConfig{})
	anon := dial(t, open)
	if reason := mustErr(t, anon, refreshReq("x"), CodeBadRequest); !strings.Contains(reason, "does not authenticate") {
		t.Fatalf("refresh on a node without an Authenticator: %q", reason)
	}
}

// TestOneRefreshAtATime: a refresh sent while another is being checked is
// refused with 429, so a slow check of an older token can never undo a
// newer one (two in flight once left the connection expiring at the first
// token's exp, though the later ack had promised its own).
func TestOneRefreshAtATime(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	exps := map[string]time.Time{"first": now.Add(time.Hour), "slow": now.Add(2 * time.Hour), "newer": now.Add(3 * time.Hour)}
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the hub's Shutdown waits for it
	checking := make(chan struct{}, 1)
	cfg := DefaultConfig()
	cfg.Authenticator = AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if tok == "" {
			tok = r.URL.Query().Get("token")
		}
		exp, ok := exps[tok]
		if !ok {
			return Identity{}, &Error{Code: 401, Reason: "unknown token"}
		}
		if tok == "slow" {
			checking <- struct{}{}
			<-release // the Authenticator is slow with this one
		}
		return Identity{User: "alice", ExpiresAt: exp, Channels: []string{tok}}, nil
	})
	var connected atomic.Pointer[Client]
	cfg.OnConnect = func(c *Client) { connected.Store(c) }
	h, url := testHub(t, cfg)
	c := dial(t, withToken(url, "first"))
	c.SendText(`{"op":"refresh","token":"slow","id":1}`)
	<-checking
	if reason := mustErr(t, c, `{"op":"refresh","token":"newer","id":2}`, CodeRateLimited); !strings.Contains(reason, "already running") {
		t.Fatalf("a second refresh in flight: %q", reason)
	}
	releaseOnce.Do(func() { close(release) })
	if m := c.ReadJSON(); m["op"] != "ack" || m["id"] != 1.0 || m["expires"] != float64(exps["slow"].Unix()) {
		t.Fatalf("the slow refresh: %v, want its ack with its expires", m)
	}
	if id := connected.Load().Identity(); !id.ExpiresAt.Equal(exps["slow"]) || id.Channels[0] != "slow" {
		t.Fatalf("identity after the refresh: %+v, want the slow token's", id)
	}
	m := c.RoundTrip(`{"op":"refresh","token":"newer","id":3}`) // one at a time again
	if m["op"] != "ack" || m["expires"] != float64(exps["newer"].Unix()) {
		t.Fatalf("the next refresh: %v", m)
	}
	h.expire(exps["slow"].Unix())
	c.MustAck(`{"op":"ping","id":4}`) // still open
	h.expire(exps["newer"].Unix())
	if code, reason := c.ExpectClose(); code != CloseTokenExpired {
		t.Fatalf("close %d %q at the newer token's exp, want 4001", code, reason)
	}
}

// TestRefreshThatNarrowsChannelsIsRefused: a token that no longer allows a
// channel the connection is in is refused, and nothing changes: the
// connection keeps its expiry (and at it, its resubscribe is checked), so
// a refreshing client cannot outlive its issuer narrowing its channels.
func TestRefreshThatNarrowsChannelsIsRefused(t *testing.T) {
	h, url := secureHub(t, hmacVerifier(t), SecurityConfig{
		Namespaces: map[string]Namespace{"team": {Subscribe: SubscribeClaim}},
	})
	first := claims("alice", time.Hour, "channels", []string{"team:a", "team:b"})
	c := dial(t, withToken(url, hs256(t, first)))
	c.MustAck(`{"op":"sub","ch":"team:a","id":1}`)
	narrower := refreshReq(hs256(t, claims("alice", 2*time.Hour, "channels", []string{"team:b"})))
	if reason := mustErr(t, c, narrower, CodeForbidden); !strings.Contains(reason, `does not allow "team:a"`) {
		t.Fatalf("narrowing refresh: %q", reason)
	}
	c.MustAck(`{"op":"sub","ch":"team:b","id":2}`) // the old token's channels still hold
	c.MustAck(refreshReq(hs256(t, claims("alice", 2*time.Hour, "channels", []string{"team:*"}))))
	h.expire(first["exp"].(int64))
	c.MustAck(`{"op":"ping","id":3}`)
}

// TestSubscribeRacingARefreshIsCheckedAgain: a subscribe authorized against
// the old token that joins after the refresh checked the connection's
// channels is checked again against the new token, so a channel the new
// token does not allow cannot slip through the refresh's check.
func TestSubscribeRacingARefreshIsCheckedAgain(t *testing.T) {
	authorized, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var held atomic.Bool
	cfg := DefaultConfig()
	cfg.Authenticator = AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if tok == "" {
			return Identity{User: "alice", ExpiresAt: time.Now().Add(time.Hour), Channels: []string{"team:x"}}, nil
		}
		<-authorized // the new token is checked once the subscribe was authorized
		return Identity{User: "alice", ExpiresAt: time.Now().Add(2 * time.Hour)}, nil
	})
	cfg.Security.Namespaces = map[string]Namespace{"team": {Subscribe: SubscribeClaim}}
	cfg.AuthorizeSubscribe = func(c *Client, ch string) error {
		err := c.CanSubscribe(ch) // decided on the identity of the moment
		if !held.Swap(true) {
			close(authorized)
			<-release // and joined only after the refresh is applied
		}
		return err
	}
	_, url := testHub(t, cfg)
	c := dial(t, url+"?token=old")
	c.SendText(refreshReq("new"))
	c.SendText(`{"op":"sub","ch":"team:x","id":2}`)
	if m := c.ReadJSON(); m["op"] != "ack" || m["id"] != 1.0 {
		t.Fatalf("refresh: %v, want its ack (the subscribe had not joined when it checked)", m)
	}
	releaseOnce.Do(func() { close(release) })
	if m := c.ReadJSON(); m["op"] != "err" || m["id"] != 2.0 || m["code"] != float64(CodeForbidden) {
		t.Fatalf("the subscribe that raced the refresh: %v, want err 403 (the new token does not allow team:x)", m)
	}
	c.MustAck(`{"op":"ping","id":3}`)
}
