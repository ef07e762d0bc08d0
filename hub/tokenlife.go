package hub

import "time"

// WithMaxLifetime returns a verifier like v that also refuses a token
// whose exp is more than d from the time it is presented (0: no limit).
// A connection token cannot be revoked (Disconnect closes connections,
// and a client still holding a valid token may connect again), so its
// lifetime is how long it works once leaked or its user removed; one with
// exp in year 9999 is a permanent credential. Clients are expected to
// fetch fresh tokens and reconnect before exp (close code 4001).
func (v *TokenVerifier) WithMaxLifetime(d time.Duration) *TokenVerifier {
	w := *v
	w.maxLifetime = d
	return &w
}

// checkLifetime refuses claims valid longer than the verifier allows.
func (v *TokenVerifier) checkLifetime(c *Claims) error {
	if v.maxLifetime <= 0 || c.ExpiresAt == nil {
		return nil
	}
	if time.Until(c.ExpiresAt.Time) > v.maxLifetime {
		return &TokenError{"token lifetime over the node's limit (exp too far ahead)"}
	}
	return nil
}
