package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
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
func reloadNode(t *testing.T, path string) (*node, *wstest.SyncBuffer) {
	t.Helper()
	return reloadNodeWith(t, path, nodeOptions{}, "--secret", testSecret)
}

// reloadNodeWith is reloadNode with options and flags of the caller's.
func reloadNodeWith(t *testing.T, path string, opts nodeOptions, args ...string) (*node, *wstest.SyncBuffer) {
	t.Helper()
	cfg, err := parseConfig(append([]string{"--config", path, "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0",
		"--peer", "127.0.0.1:0"}, args...), noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var buf wstest.SyncBuffer
	n, err := startNode(cfg, cfg.logger(&buf), opts)
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
	return signedFor(t, key, user, time.Hour)
}

// signedFor is a token of user signed with key, valid for d.
func signedFor(t *testing.T, key, user string, d time.Duration) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": user, "exp": time.Now().Add(d).Unix()}).
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
	// The rebuilt verifier keeps --token-max-lifetime (24 h by default),
	// which reloads too.
	longLived := signedFor(t, "second-key", "ann", 48*time.Hour)
	if status := wstest.UpgradeStatus(t, n.wsURL()+"?token="+longLived, nil); status != http.StatusUnauthorized {
		t.Fatalf("token of 48 h with the default lifetime limit after a reload: %d", status)
	}
	rewrite(t, n, path, "token-hmac-secret: second-key\ntoken-max-lifetime: 72h\n")
	wstest.Dial(t, n.wsURL()+"?token="+longLived).MustAck(`{"op":"sub","ch":"x","id":1}`)

	rewrite(t, n, path, "allowed-origins: [https://app.example]\n")
	if status := wstest.UpgradeStatus(t, n.wsURL(), http.Header{"Origin": {"http://localhost:3000"}}); status != http.StatusForbidden {
		t.Fatalf("localhost once allowed-origins is set: %d", status)
	}
	// The node's own pages always may.
	wstest.DialRaw(t, n.wsURL(), http.Header{"Origin": {"http://" + n.listener.Addr().String()}}).Conn.Close()
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

// TestReloadInsecureNeedsAStrongSecret: a node started with --insecure
// and a weak cluster secret cannot reload without --insecure, since it
// could not start so; the rest of the reload does not happen either.
func TestReloadInsecureNeedsAStrongSecret(t *testing.T) {
	path := writeFile(t, "meshcast.yaml", "insecure: true\n")
	n, _ := reloadNodeWith(t, path, nodeOptions{}, "--secret", "test-secret")
	if err := os.WriteFile(path, []byte("insecure: false\nmax-subscriptions: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := n.reload()
	if !errors.Is(err, errReloadRefused) || !strings.Contains(err.Error(), "--insecure cannot be turned off") {
		t.Fatalf("reload without --insecure on a weak secret: %v", err)
	}
	c := wstest.Dial(t, n.wsURL())
	c.MustAck(`{"op":"sub","ch":"a","id":1}`)
	c.MustAck(`{"op":"sub","ch":"b","id":2}`) // max-subscriptions was not applied
	rewrite(t, n, path, "insecure: true\nmax-subscriptions: 1\n")
	mustErrCode(t, c, `{"op":"sub","ch":"c","id":3}`, 429)
}

// TestReloadHTTPConnectionLimits: --max-connections(-per-ip) reload for
// the connections not yet upgraded too (httpserver.go), counting those
// already open when the limit is set.
func TestReloadHTTPConnectionLimits(t *testing.T) {
	if _, err := os.Stat("/proc/sys/net"); err != nil {
		t.Skip("needs Linux loopback addresses")
	}
	path := writeFile(t, "meshcast.yaml", "log-level: warn\n")
	long := httpTimeouts{readHeader: time.Minute, read: time.Minute, idle: time.Minute}
	n, _ := reloadNodeWith(t, path, nodeOptions{http: long}, "--secret", testSecret)
	held := []net.Conn{dialFrom(t, n, "127.0.0.5"), dialFrom(t, n, "127.0.0.5")}
	// The server accepts in order, so once a later connection is answered
	// both are accepted, and counted though no limit is set yet.
	healthy(t, dialFrom(t, n, "127.0.0.6"), "before the reload")

	rewrite(t, n, path, "max-connections-per-ip: 2\n")
	expectServerClose(t, dialFrom(t, n, "127.0.0.5"), "third idle connection from one address after the reload")
	if got := n.conns.refused.Load(); got != 1 {
		t.Fatalf("http_refused %d, want 1", got)
	}
	healthy(t, dialFrom(t, n, "127.0.0.6"), "another address")

	rewrite(t, n, path, "max-connections-per-ip: 0\n")
	healthy(t, dialFrom(t, n, "127.0.0.5"), "third connection once the limit is off")
	for _, c := range held {
		c.Close()
	}
}

// healthy sends GET /healthz on conn and wants 200.
func healthy(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp := readResponse(t, conn, what); resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: healthz %d", what, resp.StatusCode)
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

// TestReloadOfNothingSaysSo: a SIGHUP with no setting changed logged
// changed="", which reads as a bug; it says what it did instead.
func TestReloadOfNothingSaysSo(t *testing.T) {
	path := writeFile(t, "meshcast.yaml", "log-level: info\n")
	n, logs := reloadNode(t, path)
	if err := n.reload(); err != nil {
		t.Fatal(err)
	}
	if want := `changed="no setting (key and certificate files were read again)"`; !strings.Contains(logs.String(), want) {
		t.Fatalf("log %q, want %s", logs.String(), want)
	}
}
