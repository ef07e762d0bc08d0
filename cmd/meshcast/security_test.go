package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshcast/meshcast/hub"
	"github.com/meshcast/meshcast/transport/wstest"
)

const testTokenSecret = "cmd-test-hmac-secret-32-bytes-ok"

// secureConfig is testNodeConfig plus extra flags.
func secureConfig(t testing.TB, extra ...string) config {
	t.Helper()
	args := append([]string{
		"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--peer", "127.0.0.1:0",
		"--secret", testSecret, "--log-level", "warn",
	}, extra...)
	cfg, err := parseConfig(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startSecureCluster is startCluster with extra flags on every node.
func startSecureCluster(t *testing.T, n int, extra ...string) []*node {
	t.Helper()
	return startClusterWith(t, n, func() config { return secureConfig(t, extra...) })
}

func token(t testing.TB, user string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()})
	s, err := tok.SignedString([]byte(testTokenSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func apiPost(t testing.TB, n *node, op, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.baseURL()+"/api/"+op, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPIPublishReachesOtherNode: a good key publishes, and the message
// reaches a subscriber on the other node; a wrong key gets 401.
func TestAPIPublishReachesOtherNode(t *testing.T) {
	nodes := startSecureCluster(t, 2, "--api-key", "k3y", "--insecure")
	sub := wstest.Dial(t, nodes[1].wsURL())
	sub.MustAck(`{"op":"sub","ch":"orders","id":1}`)
	sub.MustAck(`{"op":"sub","ch":"invoices","id":2}`)
	if status, body := apiPost(t, nodes[0], "publish", "wrong", `{"ch":"orders","data":"no"}`); status != http.StatusUnauthorized {
		t.Fatalf("wrong key: %d %s", status, body)
	}
	if status, body := apiPost(t, nodes[0], "publish", "k3y", `{"ch":"orders","data":{"id":7}}`); status != http.StatusOK {
		t.Fatalf("publish: %d %s", status, body)
	}
	if got := string(sub.ReadText()); got != `{"op":"msg","ch":"orders","data":{"id":7}}` {
		t.Fatalf("delivery on the other node: %s", got)
	}
	if status, body := apiPost(t, nodes[0], "broadcast", "k3y", `{"chs":["orders","invoices"],"data":1}`); status != http.StatusOK {
		t.Fatalf("broadcast: %d %s", status, body)
	}
	seen := map[string]bool{}
	for range 2 {
		seen[sub.ReadJSON()["ch"].(string)] = true
	}
	if !seen["orders"] || !seen["invoices"] {
		t.Fatalf("broadcast reached %v", seen)
	}
}

func TestAPIOffWithoutKeyFlag(t *testing.T) {
	n := startTestNode(t, secureConfig(t, "--insecure"), nodeOptions{})
	if status, body := apiPost(t, n, "publish", "", `{"ch":"x","data":1}`); status != http.StatusNotFound || !strings.Contains(body, `"code":404`) {
		t.Fatalf("API without a key: %d %s", status, body)
	}
	if status, _ := get(t, n.baseURL()+"/api/stats"); status != http.StatusOK {
		t.Fatalf("/api/stats went away: %d", status)
	}
}

// TestDisconnectAcrossNodes: a user connected to both nodes is closed on
// both with 4003 by one API call; another user stays.
func TestDisconnectAcrossNodes(t *testing.T) {
	nodes := startSecureCluster(t, 2, "--api-key", "k", "--token-hmac-secret", testTokenSecret)
	var alice []*wstest.Client
	for _, nd := range nodes {
		c := wstest.Dial(t, nd.wsURL()+"?token="+url.QueryEscape(token(t, "alice")))
		if c.Hello["user"] != "alice" {
			t.Fatalf("hello %v", c.Hello)
		}
		alice = append(alice, c)
	}
	bob := wstest.Dial(t, nodes[1].wsURL()+"?token="+url.QueryEscape(token(t, "bob")))
	// Every hub wants the system channel from New on; node 0 must have
	// heard node 1's interest snapshot before it can route the disconnect.
	wstest.WaitFor(t, 10*time.Second, "node 1's interest in the system channel", func() bool {
		links := nodes[0].cluster.Stats().Links
		return len(links) == 1 && links[0].InterestedChannels >= 1
	})
	if status, body := apiPost(t, nodes[0], "disconnect", "k", `{"user":"alice"}`); status != http.StatusOK {
		t.Fatalf("disconnect: %d %s", status, body)
	}
	for i, c := range alice {
		if code, reason := c.ExpectClose(); code != hub.CloseDisconnected || reason != "disconnected" {
			t.Fatalf("alice on node %d: close %d %q", i, code, reason)
		}
	}
	bob.MustAck(`{"op":"sub","ch":"x","id":1}`)
}

func TestTokenFlagsRSA(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	path := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startTestNode(t, secureConfig(t, "--token-rsa-public-key", path), nodeOptions{})
	if status := wstest.UpgradeStatus(t, n.wsURL(), nil); status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", status)
	}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "carol", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(k)
	if c := wstest.Dial(t, n.wsURL()+"?token="+tok); c.Hello["user"] != "carol" {
		t.Fatalf("hello %v", c.Hello)
	}
	if status := wstest.UpgradeStatus(t, n.wsURL()+"?token="+token(t, "mallory"), nil); status != http.StatusUnauthorized {
		t.Fatalf("HS256 token against an RS256 node: %d", status)
	}
}

func TestNamespaceFlagAndConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "meshcast.json")
	os.WriteFile(file, []byte(`{"namespaces":{
		"chat": {"subscribe":"authenticated","publish":"nobody"},
		"news": {"subscribe":"anyone","publish":"nobody","origins":["https://a.example"]}
	}}`), 0o600)
	cfg := secureConfig(t, "--config", file,
		"--namespace", "chat:subscribe=anyone,publish=subscribers",
		"--namespace", ":subscribe=authenticated;team:subscribe=claim,publish=claim,origins=https://a.example|https://b.example")
	rules, err := cfg.security.namespaceRules()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]hub.Namespace{
		"chat": {Subscribe: hub.SubscribeAnyone, Publish: hub.PublishSubscribers}, // the flag wins
		"news": {Publish: hub.PublishNobody, Origins: []string{"https://a.example"}},
		"":     {Subscribe: hub.SubscribeAuthenticated},
		"team": {Subscribe: hub.SubscribeClaim, Publish: hub.PublishClaim, Origins: []string{"https://a.example", "https://b.example"}},
	}
	got, _ := json.Marshal(rules)
	exp, _ := json.Marshal(want)
	if !bytes.Equal(got, exp) {
		t.Fatalf("rules\n got %s\nwant %s", got, exp)
	}
}

func TestSecurityFlagErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"namespaces":{"chat":{"subscrbe":"claim"}}}`), 0o600)
	for _, args := range [][]string{
		{"--namespace", "chat"},
		{"--namespace", "chat:subscribe=everyone"},
		{"--namespace", "chat:write=anyone"},
		{"--api-key", "a", "--api-key-file", "b"},
		{"--client-publish-rate", "-1"},
		{"--client-publish-burst", "5"},
		{"--max-connections-per-ip", "-2"},
		{"--config", bad}, // read with the flags now: a bad file stops the parse
	} {
		if _, err := parseConfig(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	for _, args := range [][]string{
		{"--token-jwks-file", bad},
		{"--token-rsa-public-key", bad},
		{"--api-key-file", filepath.Join(t.TempDir(), "missing")},
	} {
		cfg := secureConfig(t, args...)
		if _, err := startNode(cfg, testLogger(t), nodeOptions{}); err == nil {
			t.Errorf("%v: node started", args)
		}
	}
}

// TestWeakTokenSecretWarning: a guessable token HMAC secret is warned of
// at start, a strong one is not, and --insecure silences it.
func TestWeakTokenSecretWarning(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{[]string{"--token-hmac-secret", "browser-token-secret"}, true},
		{[]string{"--token-hmac-secret", "kq3Yx7mB2vN9pL4sT8wZ1cF6hJ0dR5gU"}, false},
		{[]string{"--token-hmac-secret", "browser-token-secret", "--insecure"}, false},
	} {
		if got := startLogs(t, tc.args...); strings.Contains(got, "token HMAC secret is weak") != tc.warn {
			t.Errorf("%v: warning=%v, want %v", tc.args, !tc.warn, tc.warn)
		}
	}
}

// startLogs starts and stops a node with args and returns what it logged.
func startLogs(t *testing.T, args ...string) string {
	t.Helper()
	var buf wstest.SyncBuffer
	n, err := startNode(secureConfig(t, args...), slog.New(slog.NewTextHandler(&buf, nil)), nodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stopNode(t, n)
	return buf.String()
}

// TestAnonymousWarning: a node without token auth says so, unless
// --insecure.
func TestAnonymousWarning(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{{nil, true}, {[]string{"--insecure"}, false}, {[]string{"--token-hmac-secret", "s"}, false}} {
		if got := startLogs(t, tc.args...); strings.Contains(got, "anonymously") != tc.warn {
			t.Errorf("%v: warning=%v, want %v", tc.args, !tc.warn, tc.warn)
		}
	}
}

func TestMaxConnectionsFlag(t *testing.T) {
	n := startTestNode(t, secureConfig(t, "--max-connections-per-ip", "1", "--insecure"), nodeOptions{})
	wstest.Dial(t, n.wsURL())
	if status := wstest.UpgradeStatus(t, n.wsURL(), nil); status != http.StatusServiceUnavailable {
		t.Fatalf("second connection: %d", status)
	}
}

func TestPublishRateFlag(t *testing.T) {
	n := startTestNode(t, secureConfig(t, "--client-publish-rate", "1", "--client-publish-burst", "2", "--insecure"), nodeOptions{})
	c := wstest.Dial(t, n.wsURL())
	c.MustAck(`{"op":"pub","ch":"x","data":1,"id":1}`)
	c.MustAck(`{"op":"pub","ch":"x","data":1,"id":2}`)
	if m := c.RoundTrip(`{"op":"pub","ch":"x","data":1,"id":3}`); m["code"] != 429.0 {
		t.Fatalf("third publish: %v", m)
	}
}

// TestTokenMaxLifetimeFlag: by default a token valid for more than 24 h
// from now is refused; --token-max-lifetime 0 accepts it.
func TestTokenMaxLifetimeFlag(t *testing.T) {
	forever := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "ann", "exp": time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix()})
		s, _ := tok.SignedString([]byte(testTokenSecret))
		return s
	}()
	for _, tc := range []struct {
		flags  []string
		status int
	}{
		{nil, http.StatusUnauthorized},
		{[]string{"--token-max-lifetime", "0"}, http.StatusSwitchingProtocols},
	} {
		n := startTestNode(t, secureConfig(t, append([]string{"--token-hmac-secret", testTokenSecret}, tc.flags...)...), nodeOptions{})
		if got := wstest.UpgradeStatus(t, n.wsURL()+"?token="+forever, nil); got != tc.status {
			t.Errorf("%v: token expiring in 9999: %d, want %d", tc.flags, got, tc.status)
		}
		if got := wstest.UpgradeStatus(t, n.wsURL()+"?token="+token(t, "bob"), nil); got != http.StatusSwitchingProtocols {
			t.Errorf("%v: one-hour token: %d", tc.flags, got)
		}
	}
}
