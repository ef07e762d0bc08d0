package hub

import (
	"errors"
	"net/http"
	"strings"
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

// TestDataNestingLimit: publish data nested deeper than maxDataDepth is
// refused, from a client (err 400) and from the server side (ErrBadData):
// it reaches every subscriber byte-exact, and their parsers may not cope.
func TestDataNestingLimit(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	ok := strings.Repeat("[", maxDataDepth) + strings.Repeat("]", maxDataDepth)
	deep := "[" + ok + "]"
	c.MustAck(`{"op":"pub","ch":"a","data":` + ok + `,"id":1}`)
	m := c.RoundTrip(`{"op":"pub","ch":"a","data":` + deep + `,"id":2}`)
	if m["code"] != 400.0 || m["id"] != 2.0 || !strings.Contains(m["reason"].(string), "nested") {
		t.Fatalf("data %d deep: %v", maxDataDepth+1, m)
	}
	objects := `{"a":` + strings.Repeat(`{"a":`, maxDataDepth) + "1" + strings.Repeat("}", maxDataDepth+1)
	if err := h.Publish(t.Context(), "a", []byte(objects)); !errors.Is(err, ErrBadData) {
		t.Fatalf("Publish of %d nested objects: %v", maxDataDepth+1, err)
	}
	if err := h.Publish(t.Context(), "a", []byte(`["[[[[", {"}": "{{{{"}]`)); err != nil {
		t.Fatalf("brackets in strings count: %v", err)
	}
}
