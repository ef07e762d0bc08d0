package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshcast/meshcast/transport/wstest"
)

// dialFrom opens a TCP connection to n's HTTP port from a loopback
// address of our choice (Linux answers on all of 127/8), so that one test
// can be several clients.
func dialFrom(t *testing.T, n *node, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", n.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// expectServerClose reads until the server closes conn (EOF or reset),
// failing the test if it has not within the deadline. Whatever the server
// wrote first (a 408, say) is skipped.
func expectServerClose(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, conn)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: want the server to close the connection, got %v", what, err)
	}
}

func readResponse(t *testing.T, conn net.Conn, what string) *http.Response {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: no response: %v", what, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestHTTPTimeoutsAndHeaderCap: idle keep-alive connections, unfinished
// headers and bodies that never come are all cut, a huge header is
// refused, and an upgraded WebSocket is untouched by any of it.
func TestHTTPTimeoutsAndHeaderCap(t *testing.T) {
	cfg := testNodeConfig(t)
	cfg.security.apiKey = "k"
	short := 300 * time.Millisecond
	n := startTestNode(t, cfg, nodeOptions{http: httpTimeouts{readHeader: short, read: short, idle: short}})

	idle := dialFrom(t, n, "127.0.0.1")
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp := readResponse(t, idle, "keep-alive request"); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	expectServerClose(t, idle, "idle keep-alive connection")

	slow := dialFrom(t, n, "127.0.0.1")
	io.WriteString(slow, "GET / HTTP/1.1\r\nHost: x\r\n")
	expectServerClose(t, slow, "unfinished header")

	body := dialFrom(t, n, "127.0.0.1")
	io.WriteString(body, "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 100\r\n\r\n{")
	if resp := readResponse(t, body, "body that never comes"); resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("body that never comes: %d, want 408", resp.StatusCode)
	}

	big := dialFrom(t, n, "127.0.0.1")
	io.WriteString(big, "GET / HTTP/1.1\r\nHost: x\r\nX-Junk: "+strings.Repeat("j", 64<<10)+"\r\n\r\n")
	if resp := readResponse(t, big, "64 KiB header"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header: %d, want 431", resp.StatusCode)
	}

	// A WebSocket lives on well past every HTTP timeout.
	c := wstest.Dial(t, n.wsURL())
	c.MustAck(`{"op":"sub","ch":"a","id":1}`)
	for start, i := time.Now(), 2; time.Since(start) < 5*short; i++ {
		c.MustAck(fmt.Sprintf(`{"op":"unsub","ch":"b","id":%d}`, i))
	}
	c.SendText(`{"op":"pub","ch":"a","data":"still here"}`)
	if m := c.ReadJSON(); m["data"] != "still here" {
		t.Fatalf("after the HTTP timeouts: %v", m)
	}
}

// TestHTTPConnectionsNotUpgradedAreCounted: connections that never send a
// request count against --max-connections-per-ip and --max-connections,
// so they cannot pile up; the address's other clients and other addresses
// are not affected, and a closed connection gives its slot back.
func TestHTTPConnectionsNotUpgradedAreCounted(t *testing.T) {
	if _, err := os.Stat("/proc/sys/net"); err != nil {
		t.Skip("needs Linux loopback addresses")
	}
	cfg := testNodeConfig(t)
	cfg.security.maxConnectionsPerIP = 5
	cfg.security.maxConnections = 8
	n := startTestNode(t, cfg, nodeOptions{http: httpTimeouts{readHeader: time.Minute, read: time.Minute, idle: time.Minute}})

	var held []net.Conn
	for range 5 {
		held = append(held, dialFrom(t, n, "127.0.0.2"))
	}
	expectServerClose(t, dialFrom(t, n, "127.0.0.2"), "sixth idle connection from one address")
	// Another address is still welcome, WebSocket included.
	c := wstest.Dial(t, n.wsURL())
	c.MustAck(`{"op":"sub","ch":"a","id":1}`)
	c.Conn.Close()

	for range 3 {
		held = append(held, dialFrom(t, n, "127.0.0.3"))
	}
	expectServerClose(t, dialFrom(t, n, "127.0.0.4"), "a connection over the node's total")

	for _, conn := range held {
		conn.Close()
	}
	wstest.WaitFor(t, 10*time.Second, "slots given back", func() bool {
		cl, err := wstest.TryDial(n.wsURL(), nil)
		if err != nil {
			return false
		}
		cl.Conn.Close()
		return true
	})
}
