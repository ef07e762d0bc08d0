package transport

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// hijackWriter is a ResponseWriter the upgrader can hijack; everything
// written goes nowhere.
type hijackWriter struct {
	header http.Header
}

func (w *hijackWriter) Header() http.Header         { return w.header }
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := discardConn{}
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// discardConn is a net.Conn that takes every write and has nothing to read.
type discardConn struct{ net.Conn }

func (discardConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzCheckUpgrade: CheckUpgrade exists so that the hub can refuse in its
// own format what Upgrade would refuse, so it must agree with the
// upgrader Upgrade uses: a request it passes is upgraded (else the client
// gets the upgrader's plain-text refusal and the hub counts an upgrade
// error), and a request the upgrader takes is not refused by it (else a
// good client is turned away). The request is built from the parts and
// read by net/http, as the server would.
func FuzzCheckUpgrade(f *testing.F) {
	f.Add("GET", "1.1", "example.com", "websocket", "keep-alive, Upgrade", "", "dGhlIHNhbXBsZSBub25jZQ==", "13")
	f.Add("GET", "1.1", "example.com", "WebSocket", "Upgrade", "", "dGhlIHNhbXBsZSBub25jZQ==", "13")
	f.Add("POST", "1.1", "example.com", "websocket", "Upgrade", "", "dGhlIHNhbXBsZSBub25jZQ==", "13")
	f.Add("GET", "1.0", "example.com", "websocket", "Upgrade", "", "dGhlIHNhbXBsZSBub25jZQ==", "13")
	f.Add("GET", "1.1", "", "websocket", "Upgrade", "", "dGhlIHNhbXBsZSBub25jZQ==", "13")
	f.Add("GET", "1.1", "example.com", "websocket", "close", "", "dGhlIHNhbXBsZSBub25jZQ==", "13")
	f.Add("GET", "1.1", "example.com", "websocket", "keep-alive", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13")
	f.Add("GET", "1.1", "example.com", "websocket", "Upgrade", "", "abc", "13")
	f.Add("GET", "1.1", "example.com", "websocket", "Upgrade", "", "dGhlIHNhbXBsZSBub25jZQ==", "")
	f.Add("GET", "1.1", "example.com", "websocket", "Upgrade", "", "dGhlIHNhbXBsZSBub25jZQ==", "8")
	f.Fuzz(func(t *testing.T, method, proto, host, upgrade, conn1, conn2, key, version string) {
		var b strings.Builder
		b.WriteString(method + " /ws HTTP/" + proto + "\r\n")
		for _, h := range [][2]string{
			{"Host", host}, {"Upgrade", upgrade}, {"Connection", conn1}, {"Connection", conn2},
			{"Sec-WebSocket-Key", key}, {"Sec-WebSocket-Version", version},
		} {
			if h[1] != "" {
				b.WriteString(h[0] + ": " + h[1] + "\r\n")
			}
		}
		b.WriteString("\r\n")
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
		if err != nil {
			return // net/http answers 400 itself
		}
		checked := CheckUpgrade(r)
		var ue *UpgradeError
		if checked != nil && (!errors.As(checked, &ue) || ue.Reason == "" || ue.Status < 400) {
			t.Fatalf("refused without an UpgradeError: %v", checked)
		}
		_, _, _, upgraded := ws.HTTPUpgrader{}.Upgrade(r, &hijackWriter{header: http.Header{}})
		if (checked == nil) != (upgraded == nil) {
			t.Fatalf("CheckUpgrade says %v, the upgrader %v, for\n%q", checked, upgraded, b.String())
		}
	})
}
