package hub

import (
	"crypto"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshcast/meshcast/transport/wstest"
)

func TestTokenGoodHasUserInHello(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	c := dial(t, withToken(url, hs256(t, claims("alice", time.Hour))))
	if c.Hello["user"] != "alice" {
		t.Fatalf("hello: %v", c.Hello)
	}
	c.MustAck(`{"op":"sub","ch":"news","id":1}`)
}

func TestTokenInAuthorizationHeader(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	hdr := http.Header{"Authorization": {"Bearer " + hs256(t, claims("bob", time.Hour))}}
	c := dialHeader(t, url, hdr)
	if c.Hello["user"] != "bob" {
		t.Fatalf("hello: %v", c.Hello)
	}
}

func TestAnonymousHelloHasNoUser(t *testing.T) {
	_, url := testHub(t, DefaultConfig())
	if c := dial(t, url); c.Hello["user"] != nil {
		t.Fatalf("anonymous hello: %v", c.Hello)
	}
}

func TestTokenMissing(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	mustRefuse(t, url, http.StatusUnauthorized, "missing token")
}

func TestTokenMalformed(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	mustRefuse(t, withToken(url, "not.a.jwt"), http.StatusUnauthorized, "malformed")
}

func TestTokenExpired(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	mustRefuse(t, withToken(url, hs256(t, claims("alice", -time.Minute))), http.StatusUnauthorized, "expired")
}

func TestTokenWithoutExp(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	mustRefuse(t, withToken(url, hs256(t, jwt.MapClaims{"sub": "alice"})), http.StatusUnauthorized, "no exp")
}

func TestTokenWithoutSub(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	tok := hs256(t, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})
	mustRefuse(t, withToken(url, tok), http.StatusUnauthorized, "no sub")
}

func TestTokenWrongSignature(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	tok := sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-32"), claims("alice", time.Hour), "")
	mustRefuse(t, withToken(url, tok), http.StatusUnauthorized, "signature")
}

func TestTokenAlgNone(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	tok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("alice", time.Hour), "")
	mustRefuse(t, withToken(url, tok), http.StatusUnauthorized, "signing method not allowed")
}

// TestTokenHS256AgainstRS256: the classic confusion attack signs HS256
// with the RSA public key's bytes as the secret; a node that accepts only
// RS256 must refuse it.
func TestTokenHS256AgainstRS256(t *testing.T) {
	k := rsaKey(t)
	v, err := NewTokenVerifier(TokenKeys{PublicKeys: map[string]crypto.PublicKey{"": &k.PublicKey}})
	if err != nil {
		t.Fatal(err)
	}
	_, url := secureHub(t, v, SecurityConfig{})
	good := sign(t, jwt.SigningMethodRS256, k, claims("alice", time.Hour), "")
	if c := dial(t, withToken(url, good)); c.Hello["user"] != "alice" {
		t.Fatalf("RS256 token refused: %v", c.Hello)
	}
	pubBytes := k.PublicKey.N.Bytes()
	forged := sign(t, jwt.SigningMethodHS256, pubBytes, claims("mallory", time.Hour), "")
	mustRefuse(t, withToken(url, forged), http.StatusUnauthorized, "signing method not allowed")
	hs := hs256(t, claims("mallory", time.Hour))
	mustRefuse(t, withToken(url, hs), http.StatusUnauthorized, "signing method not allowed")
}

// TestTokenJWKSByKid: RS256 and ES256 keys from one JWKS, chosen by kid;
// an unknown kid or a token signed by a key not in the set is refused.
func TestTokenJWKSByKid(t *testing.T) {
	rk, ek := rsaKey(t), ecKey(t)
	b64 := base64.RawURLEncoding.EncodeToString
	pad32 := func(i *big.Int) string { return b64(i.FillBytes(make([]byte, 32))) }
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": pad32(ek.X), "y": pad32(ek.Y)},
		{"kty": "oct", "kid": "skipped", "k": "c2VjcmV0"},
	}})
	keys, err := ParseJWKS(jwks)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys: %v", keys)
	}
	v, err := NewTokenVerifier(TokenKeys{PublicKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	_, url := secureHub(t, v, SecurityConfig{})
	for _, tc := range []struct {
		m   jwt.SigningMethod
		key any
		kid string
	}{{jwt.SigningMethodRS256, rk, "r1"}, {jwt.SigningMethodES256, ek, "e1"}} {
		tok := sign(t, tc.m, tc.key, claims("u-"+tc.kid, time.Hour), tc.kid)
		if c := dial(t, withToken(url, tok)); c.Hello["user"] != "u-"+tc.kid {
			t.Fatalf("%s: %v", tc.kid, c.Hello)
		}
	}
	mustRefuse(t, withToken(url, sign(t, jwt.SigningMethodRS256, rk, claims("x", time.Hour), "nope")), http.StatusUnauthorized, "key not accepted")
	mustRefuse(t, withToken(url, sign(t, jwt.SigningMethodES256, ek, claims("x", time.Hour), "r1")), http.StatusUnauthorized, "key not accepted")
	other := ecKey(t)
	mustRefuse(t, withToken(url, sign(t, jwt.SigningMethodES256, other, claims("x", time.Hour), "e1")), http.StatusUnauthorized, "signature")
	if elliptic.P256() != ek.Curve {
		t.Fatal("test key is not P-256")
	}
}

// TestTokenExpiresWhileConnected: the sweep closes the connection with
// 4001 once exp passes; the deadline, not a sleep, bounds the wait.
func TestTokenExpiresWhileConnected(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t), SecurityConfig{})
	c := dial(t, withToken(url, hs256(t, claims("alice", 2*time.Second))))
	c.MustAck(`{"op":"sub","ch":"a","id":1}`)
	start := time.Now()
	code, reason := c.ExpectClose() // ReadFrame has a 10 s deadline
	if code != CloseTokenExpired || reason != "token expired" {
		t.Fatalf("close %d %q, want 4001 token expired", code, reason)
	}
	if waited := time.Since(start); waited > 4*time.Second {
		t.Fatalf("closed after %v", waited)
	}
}

// TestAuthenticatorRefinesTokenCheck: an Authenticator of the service's
// own can call the token verifier and decide otherwise; a *hub.Error
// chooses the refusal's status.
func TestAuthenticatorRefinesTokenCheck(t *testing.T) {
	cfg := DefaultConfig()
	v := hmacVerifier(t)
	cfg.Authenticator = AuthenticatorFunc(func(r *http.Request) (Identity, error) {
		id, err := v.Authenticate(r)
		if err != nil {
			if r.URL.Query().Get("guest") != "" {
				return Identity{User: "guest"}, nil // the override: guests need no token
			}
			return Identity{}, &Error{Code: http.StatusUnauthorized, Reason: "hook: " + err.Error()}
		}
		return id, nil
	})
	_, url := testHub(t, cfg)
	if c := dial(t, url+"?guest=1"); c.Hello["user"] != "guest" {
		t.Fatalf("guest: %v", c.Hello)
	}
	mustRefuse(t, url, http.StatusUnauthorized, "hook: missing token")
	if c := dial(t, withToken(url, hs256(t, claims("alice", time.Hour)))); c.Hello["user"] != "alice" {
		t.Fatalf("token: %v", c.Hello)
	}
}

func TestTokenVerifierRefusesNoKeys(t *testing.T) {
	if _, err := NewTokenVerifier(TokenKeys{}); err == nil {
		t.Fatal("a verifier without keys was built")
	}
	if _, err := ParsePublicKeyPEM([]byte("not pem")); err == nil {
		t.Fatal("garbage PEM parsed")
	}
}

func dialHeader(t *testing.T, url string, hdr http.Header) *client {
	t.Helper()
	c := wstest.DialRaw(t, url, hdr)
	if err := json.Unmarshal(c.ReadText(), &c.Hello); err != nil || c.Hello["op"] != "hello" {
		t.Fatalf("first message is not hello: %v %v", c.Hello, err)
	}
	return c
}
