package hub

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("test-hmac-secret-of-32-bytes-len")

// claims returns valid claims for user expiring in ttl, plus extra.
func claims(user string, ttl time.Duration, extra ...any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": user, "exp": time.Now().Add(ttl).Unix()}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hs256(t testing.TB, c jwt.Claims) string {
	return sign(t, jwt.SigningMethodHS256, testSecret, c, "")
}

func hmacVerifier(t testing.TB) *TokenVerifier {
	t.Helper()
	v, err := NewTokenVerifier(TokenKeys{HMACSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// secureHub serves a hub with sec on loopback.
// secureHub serves a hub with tokens checked by v (nil: anonymous) and sec.
func secureHub(t testing.TB, v *TokenVerifier, sec SecurityConfig) (*Hub, string) {
	t.Helper()
	cfg := DefaultConfig()
	if v != nil {
		cfg.Authenticator = v
	}
	cfg.Security = sec
	return testHub(t, cfg)
}

func withToken(wsURL, token string) string {
	return wsURL + "?token=" + url.QueryEscape(token)
}

// refusal makes a WebSocket upgrade request over a real socket and
// returns the HTTP status and the decoded JSON body of a refusal.
func refusal(t testing.TB, wsURL string, hdr http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(wsURL, "ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if resp.StatusCode != http.StatusSwitchingProtocols {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("status %d with a body that is not JSON: %q", resp.StatusCode, b)
		}
		if body["code"] != float64(resp.StatusCode) {
			t.Fatalf("body code %v, status %d", body["code"], resp.StatusCode)
		}
	}
	return resp.StatusCode, body
}

// mustRefuse checks an upgrade is refused with status and a reason
// containing want.
func mustRefuse(t testing.TB, wsURL string, status int, want string) {
	t.Helper()
	got, body := refusal(t, wsURL, nil)
	if got != status {
		t.Fatalf("status %d (%v), want %d", got, body, status)
	}
	if r, _ := body["reason"].(string); !strings.Contains(r, want) {
		t.Fatalf("reason %q, want it to contain %q", r, want)
	}
}

// mustErr sends req and checks the answer is err with code.
func mustErr(t testing.TB, c *client, req string, code int) string {
	t.Helper()
	m := c.RoundTrip(req)
	if m["op"] != "err" || m["code"] != float64(code) {
		t.Fatalf("%s: want err %d, got %v", req, code, m)
	}
	r, _ := m["reason"].(string)
	return r
}
