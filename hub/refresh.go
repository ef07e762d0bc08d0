package hub

import (
	"context"
	"net/http"
	"time"
)

// refreshTimeout bounds the Authenticator's decision on a refresh.
const refreshTimeout = 10 * time.Second

// refresh is {"op":"refresh","token":"..."}: the connection's identity is
// replaced by the one the Authenticator gives for the new token, as if it
// had connected with it, without closing it. A connection closed with 4001
// at its token's exp has to reconnect, and every subscription without
// history then gets a gap and every presence channel a leave and a join;
// clients refresh before exp instead (hello and the ack say when).
//
// The user must stay the same, and the new identity must allow every
// channel the connection is subscribed to: a token that narrows them is
// refused, so the connection ends at its current exp and its resubscribes
// are checked then, as without refresh (a token issuer narrowing a user's
// channels must not be outlived by a refreshing client). The new expiry and
// channel patterns apply once accepted, before the ack. One refresh at a
// time per connection.
func (s *session) refresh(req *request) {
	h := s.hub
	a := h.live().Authenticator
	switch {
	case a == nil:
		h.metrics.badRequests.Add(1)
		s.sendErr(req, CodeBadRequest, "this node does not authenticate connections: nothing to refresh")
		return
	case s.client.User() == "":
		h.metrics.badRequests.Add(1)
		s.sendErr(req, CodeBadRequest, "an anonymous connection has nothing to refresh")
		return
	case req.token == "":
		h.metrics.badRequests.Add(1)
		s.sendErr(req, CodeBadRequest, `refresh needs "token"`)
		return
	}
	if !h.beginRefresh(s) {
		h.metrics.refreshesRefused.Add(1)
		s.sendErr(req, CodeRateLimited, "a refresh of this connection is already running")
		return
	}
	// The Authenticator may take its time (a custom one may ask a
	// database): not on the transport's read worker.
	ack, token := request{id: req.id, hasID: req.hasID}, req.token
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		ctx, cancel := context.WithTimeout(h.ctx, refreshTimeout)
		defer cancel()
		id, err := a.Authenticate(s.refreshRequest(ctx, token))
		if code, reason := s.applyIdentity(id, err); reason != "" {
			h.metrics.refreshesRefused.Add(1)
			if _, open := h.endRefresh(s); open {
				s.sendErr(&ack, code, reason)
			}
			return
		}
		expires, open := h.endRefresh(s)
		if open {
			h.metrics.refreshes.Add(1)
		}
		if open && ack.hasID {
			s.send(refreshAckFrame(ack.id, expires))
		}
	}()
}

// applyIdentity judges the Authenticator's answer to a refresh and, if it
// is good, makes id the connection's identity: the code and reason of a
// refusal, or "". The new identity is put in place first and the
// channels the connection is in checked against it (hooks read it from
// the Client); refused, the old one is put back. A subscribe authorized
// against the old one that joins after the channels were read is checked
// again against the new one (stillAllowed), so none escapes the check.
func (s *session) applyIdentity(id Identity, err error) (int, string) {
	switch {
	case err != nil:
		return codeOf(err, CodeForbidden), err.Error()
	case id.User != s.client.User():
		return CodeForbidden, "a refresh cannot change the user"
	}
	old := s.client.ident.Swap(&id)
	for _, ch := range s.channels() {
		if err := s.authorizeSubscribe(ch); err != nil {
			s.client.ident.Store(old)
			return CodeForbidden, "the new token does not allow " + quoteForReason(ch) +
				", which this connection is subscribed to (" + err.Error() + "): unsubscribe first, or reconnect with it"
		}
	}
	return 0, ""
}

// channels returns the channels the session is in.
func (s *session) channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.subs))
	for i, sb := range s.subs {
		out[i] = sb.c.name
	}
	return out
}

// refreshRequest is what the Authenticator sees of a refresh: the token as
// "Authorization: Bearer", and the connection's address and origin.
func (s *session) refreshRequest(ctx context.Context, token string) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	r.RemoteAddr = s.client.remote
	r.Header.Set("Authorization", "Bearer "+token)
	if s.client.origin != "" {
		r.Header.Set("Origin", s.client.origin)
	}
	return r
}
