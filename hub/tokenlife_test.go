package hub

import (
	"net/http"
	"testing"
	"time"
)

// TestTokenMaxLifetime: with a maximum lifetime, a token valid for longer
// than that from now (exp in year 9999, a permanent credential) is
// refused; without one it is accepted.
func TestTokenMaxLifetime(t *testing.T) {
	_, url := secureHub(t, hmacVerifier(t).WithMaxLifetime(24*time.Hour), SecurityConfig{})
	forever := claims("alice", time.Hour)
	forever["exp"] = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	mustRefuse(t, withToken(url, hs256(t, forever)), http.StatusUnauthorized, "lifetime")
	mustRefuse(t, withToken(url, hs256(t, claims("alice", 25*time.Hour))), http.StatusUnauthorized, "lifetime")
	dial(t, withToken(url, hs256(t, claims("alice", 23*time.Hour))))

	_, open := secureHub(t, hmacVerifier(t), SecurityConfig{})
	dial(t, withToken(open, hs256(t, forever)))
}
