package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
)

// SecurityConfig holds connection auth, channel permissions and limits.
// The zero value is an open hub: anonymous clients, every channel open to
// everyone, no rate or connection limits.
type SecurityConfig struct {
	// Tokens, if set, makes every client present a JWT: the "token" query
	// parameter of the upgrade request (browsers cannot set headers on a
	// WebSocket), or an "Authorization: Bearer" header. A missing or bad
	// token gets HTTP 401 before the upgrade; a token that expires while
	// connected closes the connection with 4001 "token expired".
	Tokens *TokenVerifier
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
	CloseDisconnected = 4003 // Hub.Disconnect or POST /api/disconnect ended the user's connections
)

type ctxKey struct{}

type tokenResult struct {
	claims *Claims
	err    error
}

// TokenResult returns what the built-in token check found on an upgrade
// request, for an Authorize hook: the verified claims, or why the token was
// refused (a *TokenError). It returns nil, nil when the hub has no
// SecurityConfig.Tokens or r is not a request the hub passed to Authorize.
func TokenResult(r *http.Request) (*Claims, error) {
	res, _ := r.Context().Value(ctxKey{}).(*tokenResult)
	if res == nil {
		return nil, nil
	}
	return res.claims, res.err
}

// requestToken reads the token from the query, then from the header.
func requestToken(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// admit runs every check an upgrade request must pass, in order: origin,
// connection limits, then the token (or the Authorize hook, which replaces
// the token decision). On refusal it has written the JSON error response.
// On success the caller owns a connection slot: release it with
// h.sec.conns.release if the upgrade then fails.
func (h *Hub) admit(w http.ResponseWriter, r *http.Request) (ClientInfo, bool) {
	info := ClientInfo{RemoteAddr: r.RemoteAddr, Origin: r.Header.Get("Origin")}
	if !h.originAllowed(r) {
		h.metrics.refused.Add(1)
		h.log.Info("refused connection from a disallowed origin",
			slog.String("origin", info.Origin), slog.String("remote", r.RemoteAddr))
		writeError(w, http.StatusForbidden, "origin not allowed")
		return info, false
	}
	if reason := h.sec.conns.acquire(r.RemoteAddr); reason != "" {
		h.metrics.refused.Add(1)
		h.log.Info("refused connection over a limit", slog.String("limit", reason), slog.String("remote", r.RemoteAddr))
		writeError(w, http.StatusServiceUnavailable, reason)
		return info, false
	}
	var res *tokenResult
	if v := h.cfg.Security.Tokens; v != nil {
		claims, err := v.Verify(requestToken(r))
		res = &tokenResult{claims, err}
	}
	status, reason := h.authenticate(r, res, &info)
	if status != 0 {
		h.sec.conns.release(r.RemoteAddr)
		h.metrics.refused.Add(1)
		h.log.Debug("refused connection", slog.Int("status", status), slog.String("reason", reason),
			slog.String("remote", r.RemoteAddr))
		writeError(w, status, reason)
		return info, false
	}
	return info, true
}

// authenticate fills info.User and info.Claims, or returns the refusal's
// status and reason.
func (h *Hub) authenticate(r *http.Request, res *tokenResult, info *ClientInfo) (int, string) {
	if hook := h.cfg.Authorize; hook != nil {
		if res != nil {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, res))
		}
		user, err := hook(r)
		if err != nil {
			status := http.StatusForbidden
			var he *HTTPError
			if errors.As(err, &he) && he.Status != 0 {
				status = he.Status
			}
			return status, err.Error()
		}
		info.User = user
		if res != nil && res.err == nil {
			info.Claims = res.claims
		}
		return 0, ""
	}
	if res == nil {
		return 0, "" // no auth configured: anonymous
	}
	if res.err != nil {
		return http.StatusUnauthorized, res.err.Error()
	}
	info.User, info.Claims = res.claims.Subject, res.claims
	return 0, ""
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
