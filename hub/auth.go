package hub

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Identity is who a connection is, as an Authenticator decided it.
type Identity struct {
	// User is the connection's user ("" for anonymous): shown in hello,
	// matched by personal channels and by Disconnect.
	User string
	// Channels and Publish are channel patterns (MatchPattern) the
	// connection may subscribe and publish to in namespaces whose rule is
	// "claim".
	Channels []string
	Publish  []string
	// ExpiresAt, if set, closes the connection with 4001 "token expired"
	// when it passes (checked every second), unless a refresh replaced the
	// identity first; hello tells the client.
	ExpiresAt time.Time
	// Claims is whatever the Authenticator attaches for the hooks to read:
	// *hub.Claims from a TokenVerifier, your own type from yours.
	Claims any
	// Info, a JSON value of at most MaxPresenceInfo bytes, is what the
	// connection shows on presence channels, instead of the info its sub
	// gives (a TokenVerifier takes it from the token's "info" claim).
	Info json.RawMessage
}

// Authenticator decides, before the upgrade, whether a request may connect
// and as whom. A refusal is HTTP 403 with the error's text, or the Code
// and Reason of a *hub.Error (a TokenVerifier refuses with 401). The text
// goes to the client, so a failure of the service itself (its session
// store is down) is better returned as &hub.Error{Code: 503, Reason:
// "try again", Err: err}: the client sees only the Reason, and refusals
// are logged at debug. It runs on the request's goroutine, concurrently
// for different requests. A client's refresh (a fresh token over the live
// connection) calls it too, with a request that carries only the token
// (Authorization: Bearer), the connection's RemoteAddr and Origin; the
// identity it returns replaces the connection's if the User is the same.
type Authenticator interface {
	Authenticate(r *http.Request) (Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator. A function may
// call a TokenVerifier's Authenticate itself to refine its decision.
type AuthenticatorFunc func(r *http.Request) (Identity, error)

func (f AuthenticatorFunc) Authenticate(r *http.Request) (Identity, error) { return f(r) }

// SecurityConfig holds channel permissions and connection limits. The zero
// value is an open hub: every channel open to everyone, no rate or
// connection limits.
type SecurityConfig struct {
	// Namespaces maps a namespace ("chat" for "chat:lobby") to its rules.
	// The entry under "" (the default namespace, channels without ':')
	// also applies to namespaces not in the map. Nil: anyone may subscribe
	// and publish everywhere, except to personal and reserved channels.
	Namespaces map[string]Namespace
	// PublishRate is each connection's sustained publishes per second
	// (token bucket); over it a pub gets err 429. Zero: no limit, so
	// benchmarks and fan-in workloads are not throttled.
	PublishRate float64
	// PublishBurst is the bucket's size; default max(1, PublishRate).
	PublishBurst int
	// MaxConnections bounds this node's connections, MaxConnectionsPerIP
	// those from one remote address (the TCP peer's, not a forwarded
	// header); over either, HTTP 503 before the upgrade. Zero: no limit.
	MaxConnections      int
	MaxConnectionsPerIP int
}

// Close codes the hub uses besides the transport's.
const (
	CloseTokenExpired = 4001 // the connection's token expired: get a new one and reconnect
	CloseDisconnected = 4003 // the server ended the connection (Disconnect, Client.Disconnect, POST /api/disconnect)
)

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > len("bearer ") && strings.EqualFold(h[:len("bearer ")], "bearer ") {
		return strings.TrimSpace(h[len("bearer "):])
	}
	return ""
}

// admit runs every check an upgrade request must pass, in order: origin,
// connection limits, then the Authenticator. On refusal it has written the
// JSON error response. On success the caller owns a connection slot:
// release it with h.sec.conns.release if the upgrade then fails.
func (h *Hub) admit(w http.ResponseWriter, r *http.Request) (*Identity, bool) {
	l := h.live() // one version of the settings for the whole decision
	if !h.originAllowed(r, l.AllowedOrigins) {
		h.metrics.refusedOrigin.Add(1)
		h.refuse(w, r, http.StatusForbidden, "origin not allowed", slog.LevelInfo)
		return nil, false
	}
	if reason := h.sec.conns.acquire(r.RemoteAddr, &l.Security); reason != "" {
		h.metrics.refusedLimit.Add(1)
		h.refuse(w, r, http.StatusServiceUnavailable, reason, slog.LevelInfo)
		return nil, false
	}
	a := l.Authenticator
	if a == nil {
		return nil, true // anonymous
	}
	id, err := a.Authenticate(r)
	if err != nil {
		h.sec.conns.release(r.RemoteAddr)
		h.metrics.refusedAuth.Add(1)
		h.refuse(w, r, codeOf(err, http.StatusForbidden), err.Error(), slog.LevelDebug)
		return nil, false
	}
	if id.User == "" && id.Channels == nil && id.Publish == nil && id.ExpiresAt.IsZero() && id.Claims == nil && id.Info == nil {
		return nil, true
	}
	return &id, true
}

// writeError answers an HTTP request with {"code":N,"reason":"..."}.
func writeError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}{status, reason})
}
