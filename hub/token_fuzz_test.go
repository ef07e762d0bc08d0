package hub

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// checkVerified holds for every token Verify accepts.
func checkVerified(t *testing.T, c *Claims, err error) {
	if err != nil {
		if c != nil || !errors.Is(err, ErrBadToken) {
			t.Fatalf("refusal %v with claims %+v", err, c)
		}
		return
	}
	if c.Subject == "" || c.ExpiresAt == nil || !c.ExpiresAt.After(time.Now().Add(-time.Minute)) {
		t.Fatalf("accepted claims without sub or a future exp: %+v", c)
	}
}

// FuzzVerifyToken feeds whole token strings: valid ones, their truncations
// and splices, and garbage. Nothing may panic, and whatever passes has a
// sub and a future exp.
func FuzzVerifyToken(f *testing.F) {
	ek := ecKey(f)
	v, err := NewTokenVerifier(TokenKeys{HMACSecret: testSecret, PublicKeys: map[string]crypto.PublicKey{"e": &ek.PublicKey}})
	if err != nil {
		f.Fatal(err)
	}
	good := []string{
		hs256(f, claims("alice", 24*time.Hour, "channels", []string{"chat:*"}, "publish", []string{"chat:lobby"})),
		sign(f, jwt.SigningMethodES256, ek, claims("bob", 24*time.Hour), "e"),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("eve", time.Hour), ""),
		hs256(f, claims("old", -time.Hour)),
	}
	for _, tok := range good {
		f.Add(tok)
		f.Add(tok[:len(tok)/2])
		f.Add(tok[:strings.LastIndexByte(tok, '.')])
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(strings.Join(parts, ".."))
	}
	f.Add("")
	f.Add("...")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok)
		checkVerified(t, c, err)
	})
}

// FuzzTokenClaims signs arbitrary claim bytes with the right HMAC secret,
// so the fuzzer reaches the claims decoder and validation, not just the
// signature check.
func FuzzTokenClaims(f *testing.F) {
	v := hmacVerifier(f)
	exp := time.Now().Add(24 * time.Hour).Unix()
	for _, seed := range []string{
		`{"sub":"alice","exp":` + itoa(exp) + `}`,
		`{"sub":"alice","exp":` + itoa(exp) + `,"channels":["chat:*"],"publish":"chat:lobby"}`,
		`{"sub":"alice","exp":` + itoa(exp) + `,"channels":"chat:*"}`,
		`{"sub":"alice","exp":` + itoa(exp) + `,"channels":[1,2]}`,
		`{"sub":"alice","exp":"tomorrow"}`,
		`{"sub":5,"exp":` + itoa(exp) + `}`,
		`{"sub":"alice","exp":` + itoa(exp) + `.5,"nbf":1e300}`,
		`{"sub":"alice","exp":1e400}`,
		`{"sub":"a"`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(seed))
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	token := func(payload []byte) string {
		signing := header + "." + base64.RawURLEncoding.EncodeToString(payload)
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(signing))
		return signing + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	// The harness must reach the accepting path, or the fuzzer tests nothing.
	if c, err := v.Verify(token([]byte(`{"sub":"alice","exp":` + itoa(exp) + `,"channels":["chat:*"]}`))); err != nil || c.Channels[0] != "chat:*" {
		f.Fatalf("seed token refused: %v", err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := v.Verify(token(payload))
		checkVerified(t, c, err)
		if err == nil {
			for _, p := range append(c.Channels, c.Publish...) {
				MatchPattern(p, "chat:lobby")
			}
		}
	})
}

// FuzzParseJWKS: nothing panics, and every key returned is one the
// verifier accepts.
func FuzzParseJWKS(f *testing.F) {
	rk, ek := rsaKey(f), ecKey(f)
	b64 := base64.RawURLEncoding.EncodeToString
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"r","n":"` + b64(rk.N.Bytes()) + `","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"` + b64(ek.X.FillBytes(make([]byte, 32))) +
		`","y":"` + b64(ek.Y.FillBytes(make([]byte, 32))) + `"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParseJWKS(b)
		if err != nil {
			return
		}
		for kid, k := range keys {
			switch k := k.(type) {
			case *rsa.PublicKey:
				if k.N.BitLen() < minRSABits || k.E < 3 {
					t.Fatalf("%q: weak RSA key accepted", kid)
				}
			case *ecdsa.PublicKey:
			default:
				t.Fatalf("%q: key type %T", kid, k)
			}
		}
		if _, err := NewTokenVerifier(TokenKeys{PublicKeys: keys}); err != nil {
			t.Fatalf("parsed keys refused by the verifier: %v", err)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
