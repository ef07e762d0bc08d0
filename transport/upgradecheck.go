package transport

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"

	"github.com/gobwas/httphead"
)

// UpgradeError is why a request is not a WebSocket upgrade the server
// accepts (RFC 6455 section 4.2.1), with the HTTP status to refuse it with.
type UpgradeError struct {
	Status int    // 400, 405, 426 (a version other than 13) or 505
	Reason string // for the client; no request bytes in it
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("transport: not a websocket upgrade: %d %s", e.Status, e.Reason)
}

// WebSocketVersion is the only version spoken; a 426 refusal should carry
// it in a Sec-WebSocket-Version header.
const WebSocketVersion = "13"

// CheckUpgrade reports, with an *UpgradeError, why r is not a WebSocket
// upgrade request, or nil if it is one. It makes the handshake's own
// checks, so that a caller can refuse in its own format (the hub answers
// JSON) before Upgrade hijacks the connection and answers in plain text.
func CheckUpgrade(r *http.Request) error {
	refuse := func(status int, reason string) error { return &UpgradeError{status, reason} }
	switch {
	case r.Method != http.MethodGet:
		return refuse(http.StatusMethodNotAllowed, "a websocket upgrade is a GET")
	case !r.ProtoAtLeast(1, 1):
		return refuse(http.StatusHTTPVersionNotSupported, "a websocket upgrade needs HTTP/1.1")
	case r.Host == "":
		return refuse(http.StatusBadRequest, "missing Host header")
	case !strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		return refuse(http.StatusBadRequest, `not a websocket upgrade: want "Upgrade: websocket"`)
	case !hasToken(r.Header.Get("Connection"), "upgrade"):
		return refuse(http.StatusBadRequest, `not a websocket upgrade: want "Connection: Upgrade"`)
	case len(r.Header.Get("Sec-WebSocket-Key")) != 24: // base64 of 16 bytes
		return refuse(http.StatusBadRequest, "missing or malformed Sec-WebSocket-Key header")
	}
	switch v := r.Header.Get("Sec-WebSocket-Version"); v {
	case WebSocketVersion:
		return nil
	case "":
		return refuse(http.StatusBadRequest, "missing Sec-WebSocket-Version header")
	default:
		return refuse(http.StatusUpgradeRequired, "unsupported websocket version: want 13")
	}
}

// hasToken reports whether the header value holds token (any case). It
// reads the header as Upgrade's upgrader (gobwas/ws) does, so the two
// agree on every request: the first Connection header only, scanned as
// an RFC 7230 token list by the same scanner (a malformed list is read up
// to its first fault). Splitting at commas and trimming, as before,
// passed requests the upgrader then refused in plain text ("Connection:
// keep-alive" and "Connection: Upgrade" as two headers, `"x, Upgrade`)
// and refused some it would take ("Upgrade;x").
func hasToken(value, token string) bool {
	has := false
	httphead.ScanTokens([]byte(value), func(t []byte) bool {
		has = bytes.EqualFold(t, []byte(token))
		return !has
	})
	return has
}
