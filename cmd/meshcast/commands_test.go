package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	for _, arg := range []string{"version", "--version", "-version"} {
		out.Reset()
		if code, ok := subcommand([]string{arg}, &out, &out); !ok || code != 0 || !strings.HasPrefix(out.String(), "meshcast ") {
			t.Fatalf("%s: %v %d %q", arg, ok, code, out.String())
		}
	}
	if _, ok := subcommand([]string{"--listen", ":0"}, &out, &out); ok {
		t.Fatal("flags taken for a subcommand")
	}
}

// TestHealthCommand: the container HEALTHCHECK passes against a serving
// node and fails against nothing.
func TestHealthCommand(t *testing.T) {
	n := startTestNode(t, testNodeConfig(t), nodeOptions{})
	var out, errOut bytes.Buffer
	if code := healthCommand([]string{n.baseURL() + "/healthz"}, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("health of a serving node: %d %s", code, errOut.String())
	}
	if code := healthCommand([]string{n.baseURL() + "/nope"}, noEnv, &out, &errOut); code != 1 {
		t.Fatalf("health of a 404: %d", code)
	}
	if code := healthCommand([]string{"http://127.0.0.1:1/healthz"}, noEnv, &out, &errOut); code != 1 {
		t.Fatalf("health of nothing: %d", code)
	}
	// The bare address checks /healthz, not the demo page at "/".
	if code := healthCommand([]string{n.baseURL()}, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("health of the bare address: %d %s", code, errOut.String())
	}
	// No URL: the port of MESHCAST_LISTEN.
	_, port, _ := net.SplitHostPort(n.listener.Addr().String())
	env := func(k string) string { return map[string]string{"MESHCAST_LISTEN": ":" + port}[k] }
	if code := healthCommand(nil, env, &out, &errOut); code != 0 {
		t.Fatalf("health from MESHCAST_LISTEN: %d %s", code, errOut.String())
	}
	errOut.Reset()
	if code := healthCommand([]string{"--help"}, noEnv, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
		t.Fatalf("health --help: %d %q", code, errOut.String())
	}
}

// TestHealthCommandSaysWhyNotReady: "meshcast health URL/readyz" of a
// node that is not ready prints what /readyz says keeps it from serving,
// not just "503 Service Unavailable".
func TestHealthCommandSaysWhyNotReady(t *testing.T) {
	cfg := testNodeConfig(t)
	cfg.join, cfg.joinTimeout = "127.0.0.1:1", time.Minute
	n, err := startNode(cfg, testLogger(t), nodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	var out, errOut bytes.Buffer
	if code := healthCommand([]string{n.baseURL() + "/readyz"}, noEnv, &out, &errOut); code != 1 {
		t.Fatalf("readiness of a joining node: %d", code)
	}
	if want := "answered 503 Service Unavailable: joining: contacting seeds 127.0.0.1:1\n"; !strings.HasSuffix(errOut.String(), want) {
		t.Fatalf("%q, want it to end with %q", errOut.String(), want)
	}
}

// TestHealthCommandTLS: the probe of a TLS listener passes with a
// certificate it cannot verify, as Kubernetes' HTTPS probes do.
func TestHealthCommandTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	if code := healthCommand([]string{srv.URL}, noEnv, &out, &errOut); code != 0 {
		t.Fatalf("health over TLS with a self-signed certificate: %d %s", code, errOut.String())
	}
	// No URL: the address of MESHCAST_LISTEN, over HTTPS with a certificate.
	env := func(k string) string {
		return map[string]string{"MESHCAST_LISTEN": srv.Listener.Addr().String(), "MESHCAST_TLS_CERT": "cert.pem"}[k]
	}
	if code := healthCommand(nil, env, &out, &errOut); code != 0 {
		t.Fatalf("health of MESHCAST_LISTEN with MESHCAST_TLS_CERT: %d %s", code, errOut.String())
	}
}
