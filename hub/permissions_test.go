package hub

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestSubscribeNeedsChannelClaim: in a "claim" namespace a token without
// a channels claim is refused with err 403; the connection stays and a
// token whose claim matches is allowed.
func TestSubscribeNeedsChannelClaim(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{
		Namespaces: map[string]Namespace{"team": {Subscribe: SubscribeClaim}},
	})
	c := dial(t, withToken(url, hs256(t, claims("alice", time.Hour))))
	if r := mustErr(t, c, `{"op":"sub","ch":"team:red","id":1}`, 403); r != "channel not in the token's channels claim" {
		t.Fatalf("reason %q", r)
	}
	c.MustAck(`{"op":"sub","ch":"lobby","id":2}`) // the connection stays; default namespace is open

	d := dial(t, withToken(url, hs256(t, claims("bob", time.Hour, "channels", []string{"team:*"}))))
	d.MustAck(`{"op":"sub","ch":"team:red","id":1}`)
	mustErr(t, d, `{"op":"sub","ch":"team:red:private","id":2}`, 403) // * is one segment
}

func TestPersonalChannelOfAnotherUser(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	alice := dial(t, withToken(url, hs256(t, claims("alice", time.Hour))))
	if r := mustErr(t, alice, `{"op":"sub","ch":"user:#bob","id":1}`, 403); r != "personal channel of another user" {
		t.Fatalf("reason %q", r)
	}
	alice.MustAck(`{"op":"sub","ch":"user:#alice","id":2}`)
	alice.MustAck(`{"op":"sub","ch":"dm:#bob,alice","id":3}`)
}

func TestPersonalChannelAnonymous(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	mustErr(t, c, `{"op":"sub","ch":"user:#alice","id":1}`, 403)
}

func TestSubscribeAuthenticated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Security.Namespaces = map[string]Namespace{"": {Subscribe: SubscribeAuthenticated}}
	_, url := testHub(t, cfg)
	c := dial(t, url)
	// The default namespace's rule covers namespaces not configured too.
	mustErr(t, c, `{"op":"sub","ch":"lobby","id":1}`, 403)
	mustErr(t, c, `{"op":"sub","ch":"any:thing","id":2}`, 403)
}

func TestPublishRules(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{
		Namespaces: map[string]Namespace{
			"news": {Publish: PublishNobody},
			"chat": {Publish: PublishSubscribers},
			"ops":  {Publish: PublishClaim},
		},
	})
	c := dial(t, withToken(url, hs256(t, claims("alice", time.Hour, "publish", []string{"ops:deploy"}))))
	if r := mustErr(t, c, `{"op":"pub","ch":"news:today","data":1,"id":1}`, 403); r != "clients may not publish here" {
		t.Fatalf("reason %q", r)
	}
	mustErr(t, c, `{"op":"pub","ch":"chat:room","data":1,"id":2}`, 403)
	c.MustAck(`{"op":"sub","ch":"chat:room","id":3}`)
	c.SendText(`{"op":"pub","ch":"chat:room","data":1,"id":4}`)
	if got := readOps(c, 2); !got["ack"] || !got["msg"] {
		t.Fatalf("subscriber publish: %v", got)
	}
	c.MustAck(`{"op":"pub","ch":"ops:deploy","data":1,"id":5}`)
	mustErr(t, c, `{"op":"pub","ch":"ops:rollback","data":1,"id":6}`, 403)
	c.MustAck(`{"op":"pub","ch":"elsewhere","data":1,"id":7}`)
}

func TestReservedChannels(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	mustErr(t, c, `{"op":"sub","ch":"$sys:disconnect","id":1}`, 403)
	mustErr(t, c, `{"op":"pub","ch":"$sys:disconnect","data":{"user":"x"},"id":2}`, 403)
	if err := h.Publish(t.Context(), "$anything", []byte(`1`)); !errors.Is(err, ErrReserved) {
		t.Fatalf("Publish to a reserved channel: %v", err)
	}
}

// TestHooksOverrideNamespaces: a hook replaces the built-in decision; it
// can allow what the namespace refuses, and defer to the built-in.
func TestHooksOverrideNamespaces(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Authenticator = hmacVerifier(t)
	cfg.Security.Namespaces = map[string]Namespace{"admin": {Subscribe: SubscribeClaim, Publish: PublishNobody}}
	cfg.AuthorizeSubscribe = func(c *Client, ch string) error {
		if c.User() == "root" {
			return nil
		}
		return c.CanSubscribe(ch)
	}
	cfg.AuthorizePublish = func(c *Client, ch string, data []byte) error {
		if c.User() == "root" {
			return nil
		}
		return c.CanPublish(ch)
	}
	_, url := testHub(t, cfg)
	root := dial(t, withToken(url, hs256(t, claims("root", time.Hour))))
	root.MustAck(`{"op":"sub","ch":"admin:logs","id":1}`)
	root.SendText(`{"op":"pub","ch":"admin:logs","data":1,"id":2}`)
	if got := readOps(root, 2); !got["ack"] || !got["msg"] {
		t.Fatalf("root publish: %v", got)
	}
	ann := dial(t, withToken(url, hs256(t, claims("ann", time.Hour))))
	mustErr(t, ann, `{"op":"sub","ch":"admin:logs","id":1}`, 403)
	mustErr(t, ann, `{"op":"pub","ch":"admin:logs","data":1,"id":2}`, 403)
	mustErr(t, root, `{"op":"sub","ch":"$sys:disconnect","id":3}`, 403) // hooks never open "$"
}

func TestNamespaceOrigins(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowedOrigins = []string{"https://a.example", "https://b.example"}
	cfg.Security.Namespaces = map[string]Namespace{"billing": {Origins: []string{"https://a.example"}}}
	_, url := testHub(t, cfg)
	a := dialHeader(t, url, http.Header{"Origin": {"https://a.example"}})
	a.MustAck(`{"op":"sub","ch":"billing:x","id":1}`)
	b := dialHeader(t, url, http.Header{"Origin": {"https://b.example"}})
	if r := mustErr(t, b, `{"op":"sub","ch":"billing:x","id":1}`, 403); r != "origin not allowed in this namespace" {
		t.Fatalf("reason %q", r)
	}
	mustErr(t, b, `{"op":"pub","ch":"billing:x","data":1,"id":2}`, 403)
	b.MustAck(`{"op":"sub","ch":"other:x","id":3}`)
}

func TestRuleText(t *testing.T) {
	var s SubscribeRule
	var p PublishRule
	for _, name := range subscribeNames {
		if err := s.UnmarshalText([]byte(name)); err != nil || s.String() != name {
			t.Fatalf("%s: %v %v", name, s, err)
		}
	}
	for _, name := range publishNames {
		if err := p.UnmarshalText([]byte(name)); err != nil || p.String() != name {
			t.Fatalf("%s: %v %v", name, p, err)
		}
	}
	if s.UnmarshalText([]byte("everyone")) == nil || p.UnmarshalText([]byte("")) == nil {
		t.Fatal("unknown rule accepted")
	}
}

// readOps reads n messages and returns which ops came (their order may vary).
func readOps(c *client, n int) map[string]bool {
	got := map[string]bool{}
	for range n {
		got[c.ReadJSON()["op"].(string)] = true
	}
	return got
}
