package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshcast/meshcast/transport/wstest"
)

// reloadNode starts a node reading the config file path, with a logger
// whose level the file sets.
func reloadNode(t *testing.T, path string) (*node, *syncBuffer) {
	t.Helper()
	cfg, err := parseConfig([]string{"--config", path, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--peer", "127.0.0.1:0", "--secret", "test-secret"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	n, err := startNode(cfg, cfg.logger(&buf), nodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	return n, &buf
}

// rewrite replaces the config file and reloads the node, which must
// accept it.
func rewrite(t *testing.T, n *node, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.reload(); err != nil {
		t.Fatalf("reload of\n%s: %v", text, err)
	}
}

func signed(t *testing.T, key, user string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix()}).
		SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReloadEachSetting changes each reloadable setting of the config
// file in turn while a client stays connected: each takes effect at once
// and the client is never dropped.
func TestReloadEachSetting(t *testing.T) {
	path := writeFile(t, "meshcast.yaml", "log-level: warn\n")
	n, _ := reloadNode(t, path)
	c := wstest.Dial(t, n.wsURL())
	c.MustAck(`{"op":"sub","ch":"chat:a","id":1}`)
	stillConnected := func() { t.Helper(); c.MustAck(`{"op":"pub","ch":"ping","data":1,"id":99}`) }

	rewrite(t, n, path, "namespaces:\n  chat: {publish: nobody}\n")
	mustErrCode(t, c, `{"op":"pub","ch":"chat:a","data":1,"id":2}`, 403)
	stillConnected()

	rewrite(t, n, path, "max-subscriptions: 1\nmax-data: 200\nclient-publish-rate: 1\nclient-publish-burst: 1\nmax-connections: 1\n")
	mustErrCode(t, c, `{"op":"sub","ch":"other","id":3}`, 429)
	mustErrCode(t, c, `{"op":"pub","ch":"p","data":"`+strings.Repeat("x", 300)+`","id":4}`, 413)
	c.MustAck(`{"op":"pub","ch":"p","data":1,"id":5}`)
	mustErrCode(t, c, `{"op":"pub","ch":"p","data":2,"id":6}`, 429)
	if status := wstest.UpgradeStatus(t, n.wsURL(), nil); status != http.StatusServiceUnavailable {
		t.Fatalf("max-connections 1 with one client: upgrade %d", status)
	}

	rewrite(t, n, path, "token-hmac-secret: first-key\n")
	stillConnected() // anonymous, connected before tokens were required
	if status := wstest.UpgradeStatus(t, n.wsURL(), nil); status != http.StatusUnauthorized {
		t.Fatalf("anonymous upgrade with a token key: %d", status)
	}
	wstest.Dial(t, n.wsURL()+"?token="+signed(t, "first-key", "ann")).MustAck(`{"op":"sub","ch":"x","id":1}`)
	rewrite(t, n, path, "token-hmac-secret: second-key\n") // rotated
	if status := wstest.UpgradeStatus(t, n.wsURL()+"?token="+signed(t, "first-key", "ann"), nil); status != http.StatusUnauthorized {
		t.Fatalf("token of the old key after rotation: %d", status)
	}
	wstest.Dial(t, n.wsURL()+"?token="+signed(t, "second-key", "ann")).MustAck(`{"op":"sub","ch":"x","id":1}`)

	rewrite(t, n, path, "allowed-origins: [https://app.example]\n")
	if status := wstest.UpgradeStatus(t, n.wsURL(), http.Header{"Origin": {"http://" + n.listener.Addr().String()}}); status != http.StatusForbidden {
		t.Fatalf("own origin once allowed-origins is set: %d", status)
	}
	wstest.DialRaw(t, n.wsURL(), http.Header{"Origin": {"https://app.example"}}).Conn.Close()

	if status, _ := apiPost(t, n, "publish", "k", `{"ch":"ping","data":1}`); status != http.StatusNotFound {
		t.Fatalf("API without a key: %d", status)
	}
	rewrite(t, n, path, "api-key: k\nlog-level: debug\n")
	if status, body := apiPost(t, n, "publish", "k", `{"ch":"ping","data":1}`); status != http.StatusOK {
		t.Fatalf("API after the key was added: %d %s", status, body)
	}
	if lvl := n.cfg.level.Level(); lvl != slog.LevelDebug {
		t.Fatalf("log level %v after reload", lvl)
	}
	stillConnected()
}

func mustErrCode(t *testing.T, c *wstest.Client, req string, code int) {
	t.Helper()
	if m := c.RoundTrip(req); m["op"] != "err" || m["code"] != float64(code) {
		t.Fatalf("%s: want err %d, got %v", req, code, m)
	}
}

// TestReloadRefused: a setting that needs a restart, a bad value or an
// unreadable key file refuses the whole reload and names the reason; the
// settings in force stay.
func TestReloadRefused(t *testing.T) {
	path := writeFile(t, "meshcast.yaml", "namespaces:\n  chat: {publish: nobody}\n")
	n, logs := reloadNode(t, path)
	c := wstest.Dial(t, n.wsURL())
	for _, tc := range []struct{ file, want string }{
		{"namespaces: {}\nwrite-queue: 2097152\ncluster-name: other\n", "--cluster-name, --write-queue cannot change without a restart"},
		{"namespaces: {}\nmax-data: many\n", `:2: max-data: invalid value "many"`},
		{"namespaces: {}\ntoken-jwks-file: /nonexistent/jwks.json\n", "--token-jwks-file"},
	} {
		if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		err := n.reload()
		if !errors.Is(err, errReloadRefused) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("reload of\n%s: %v, want it refused with %q", tc.file, err, tc.want)
		}
		mustErrCode(t, c, `{"op":"pub","ch":"chat:a","data":1,"id":1}`, 403) // the old rules
	}
	if strings.Contains(logs.String(), "configuration reloaded") {
		t.Fatal("a refused reload was logged as done")
	}
}

// TestSIGHUPReloadsConfig: the watcher applies a SIGHUP sent to this
// process.
func TestSIGHUPReloadsConfig(t *testing.T) {
	path := writeFile(t, "meshcast.yaml", "log-level: warn\n")
	n, _ := reloadNode(t, path)
	level := n.cfg.level // the watcher replaces n.cfg, never the level it holds
	stop := n.reloadOnSIGHUP()
	defer stop()
	if err := os.WriteFile(path, []byte("log-level: error\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := sighupSelf(); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, 10*time.Second, "the level from the reloaded file", func() bool {
		return level.Level() == slog.LevelError
	})
}

func sighupSelf() error {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	return p.Signal(syscall.SIGHUP)
}
