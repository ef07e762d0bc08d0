package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawGet sends one request line as written, with no client-side cleaning
// of the path, and returns the response.
func rawGet(t *testing.T, n *node, method, target string) (int, string, string) {
	t.Helper()
	conn, err := net.Dial("tcp", n.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, method+" "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// TestStaticPathsNeverFail: paths that cannot name a file get 404, never
// FileServer's 500; errors are JSON like every other.
func TestStaticPathsNeverFail(t *testing.T) {
	n := startTestNode(t, testNodeConfig(t), nodeOptions{})
	for _, target := range []string{
		"/%c0%ae%c0%ae/etc/passwd", "/%ff", "/a%00b", "/%c0%ae/", "/..%2f..%2fetc/passwd", "/nope.html",
	} {
		status, ctype, body := rawGet(t, n, "GET", target)
		var m map[string]any
		if status != 404 || ctype != "application/json" || json.Unmarshal([]byte(body), &m) != nil || m["code"] != 404.0 {
			t.Errorf("GET %s: %d %s %q, want 404 JSON", target, status, ctype, body)
		}
	}
	if status, _, _ := rawGet(t, n, "GET", "/"); status != 200 {
		t.Errorf("GET /: %d", status)
	}
	if status, _, _ := rawGet(t, n, "HEAD", "/index.html"); status != 301 && status != 200 {
		t.Errorf("HEAD /index.html: %d", status)
	}
	for _, target := range []string{"/", "/ws"} {
		if status, ctype, _ := rawGet(t, n, "POST", target); status != 405 || ctype != "application/json" {
			t.Errorf("POST %s: %d %s, want 405 JSON", target, status, ctype)
		}
	}
	if status, ctype, _ := rawGet(t, n, "GET", "/ws"); status != 400 || ctype != "application/json" {
		t.Errorf("GET /ws without an upgrade: %d %s, want 400 JSON", status, ctype)
	}
	// A mistyped path is a 404 whatever the method (it was a 405 "use
	// GET" for a POST to /api/publis).
	for _, target := range []string{"/api/publis", "/api/frob", "/nope.html"} {
		if status, _, body := rawGet(t, n, "POST", target); status != 404 {
			t.Errorf("POST %s: %d %s, want 404", target, status, body)
		}
	}
	// With no API key the API says it is off.
	if status, _, body := rawGet(t, n, "POST", "/api/publish"); status != 404 || !strings.Contains(body, "server API is off") {
		t.Errorf("POST /api/publish with the API off: %d %s", status, body)
	}
}
