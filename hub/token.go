package hub

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the JWT claims meshcast reads from a connection token. sub
// and exp are required; channels and publish are optional lists of channel
// patterns (see MatchPattern) that namespaces with the "claim" rule check.
type Claims struct {
	jwt.RegisteredClaims
	Channels []string `json:"channels,omitempty"` // patterns the client may subscribe to
	Publish  []string `json:"publish,omitempty"`  // patterns the client may publish to
	// Info is shown on presence channels for this connection (at most
	// MaxPresenceInfo bytes), instead of the info its subs give.
	Info json.RawMessage `json:"info,omitempty"`
}

// TokenKeys are the keys a TokenVerifier accepts. At least one is needed.
type TokenKeys struct {
	// HMACSecret verifies HS256 tokens.
	HMACSecret []byte
	// PublicKeys verify RS256 (*rsa.PublicKey) and ES256 (*ecdsa.PublicKey
	// on P-256) tokens, by the token header's kid; a token without a kid
	// uses the key under "". ParsePublicKeyPEM and ParseJWKS build them.
	PublicKeys map[string]crypto.PublicKey
}

// ErrBadToken is wrapped by every error of TokenVerifier.Verify.
var ErrBadToken = errors.New("hub: token refused")

// TokenError says why a token was refused; its Reason goes to the client
// in the 401 body.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return e.Reason }
func (e *TokenError) Unwrap() error { return ErrBadToken }

// maxTokenLen bounds the work one upgrade request can cause.
const maxTokenLen = 8 << 10

// TokenVerifier checks connection tokens (JWT) and is the hub's built-in
// Authenticator: a client presents its token in the "token" query
// parameter of the upgrade request (browsers cannot set headers on a
// WebSocket), or in an "Authorization: Bearer" header. It is immutable and
// safe for concurrent use.
type TokenVerifier struct {
	keys        TokenKeys
	parser      *jwt.Parser
	maxLifetime time.Duration // tokenlife.go; 0: none
}

var _ Authenticator = (*TokenVerifier)(nil)

// Authenticate verifies the request's token. The Identity carries the
// token's sub, its channels and publish patterns, its exp, and the *Claims
// themselves; a missing or bad token is refused with 401 and the reason.
func (v *TokenVerifier) Authenticate(r *http.Request) (Identity, error) {
	token := r.URL.Query().Get("token")
	if token == "" {
		token = bearerToken(r)
	}
	c, err := v.Verify(token)
	if err != nil {
		return Identity{}, &Error{Code: http.StatusUnauthorized, Reason: err.Error(), Err: err}
	}
	id := Identity{User: c.Subject, Channels: c.Channels, Publish: c.Publish, Claims: c, Info: c.Info}
	if c.ExpiresAt != nil {
		id.ExpiresAt = c.ExpiresAt.Time
	}
	return id, nil
}

// NewTokenVerifier accepts HS256 when keys has a secret, RS256 when it
// has an RSA key and ES256 when it has a P-256 key; every other algorithm,
// "none" included, is refused.
func NewTokenVerifier(keys TokenKeys) (*TokenVerifier, error) {
	methods := map[string]bool{}
	if len(keys.HMACSecret) > 0 {
		methods[jwt.SigningMethodHS256.Alg()] = true
	}
	for kid, k := range keys.PublicKeys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			methods[jwt.SigningMethodRS256.Alg()] = true
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				return nil, fmt.Errorf("hub: key %q: only P-256 EC keys (ES256) are supported", kid)
			}
			methods[jwt.SigningMethodES256.Alg()] = true
		default:
			return nil, fmt.Errorf("hub: key %q: unsupported key type %T", kid, k)
		}
	}
	if len(methods) == 0 {
		return nil, errors.New("hub: no token key given")
	}
	valid := make([]string, 0, len(methods))
	for m := range methods {
		valid = append(valid, m)
	}
	sort.Strings(valid)
	return &TokenVerifier{
		keys:   keys,
		parser: jwt.NewParser(jwt.WithValidMethods(valid), jwt.WithExpirationRequired()),
	}, nil
}

// Verify parses and checks a token: signature, algorithm, exp (required,
// in the future, and within the maximum lifetime if one is set), nbf if
// present, and a non-empty sub. Errors are *TokenError values wrapping
// ErrBadToken.
func (v *TokenVerifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, &TokenError{"missing token"}
	}
	if len(token) > maxTokenLen {
		return nil, &TokenError{"token too long"}
	}
	var c Claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return nil, &TokenError{tokenReason(err)}
	}
	if c.Subject == "" {
		return nil, &TokenError{"token has no sub"}
	}
	if err := v.checkLifetime(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

// key picks the key for a token whose algorithm the parser has already
// checked against the allowed list. The key's type must also fit the
// algorithm, so an RSA public key can never serve as an HMAC secret.
func (v *TokenVerifier) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(v.keys.HMACSecret) == 0 {
			return nil, errors.New("no HMAC secret")
		}
		return v.keys.HMACSecret, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodECDSA:
		kid, _ := t.Header["kid"].(string)
		k, ok := v.keys.PublicKeys[kid]
		if !ok {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		if _, rsaMethod := t.Method.(*jwt.SigningMethodRSA); rsaMethod {
			if _, ok := k.(*rsa.PublicKey); !ok {
				return nil, errors.New("key is not an RSA key")
			}
		} else if _, ok := k.(*ecdsa.PublicKey); !ok {
			return nil, errors.New("key is not an EC key")
		}
		return k, nil
	}
	return nil, errors.New("signing method not allowed")
}

// tokenReason turns a jwt error into the short reason a client sees.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		// jwt reports an algorithm outside WithValidMethods this way.
		return "token signing method not allowed"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad token signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signing method or key not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no exp"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	}
	return "invalid token"
}
