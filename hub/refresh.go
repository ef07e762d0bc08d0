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
// The user must stay the same. The new identity's expiry and channel
// patterns apply from the ack on; subscriptions already made stay.
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
	if s.tasks.Add(1) > maxTasks {
		s.tasks.Add(-1)
		s.sendErr(req, CodeRateLimited, "too many requests of this connection at once")
		return
	}
	// The Authenticator may take its time (a custom one may ask a
	// database): not on the transport's read worker.
	ack, token := request{id: req.id, hasID: req.hasID}, req.token
	seq := h.numberRefresh(s)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer s.tasks.Add(-1)
		ctx, cancel := context.WithTimeout(h.ctx, refreshTimeout)
		defer cancel()
		id, err := a.Authenticate(s.refreshRequest(ctx, token))
		switch {
		case err != nil:
			h.metrics.refusedAuth.Add(1)
			s.sendErr(&ack, codeOf(err, CodeForbidden), err.Error())
			return
		case id.User != s.client.User():
			h.metrics.refusedAuth.Add(1)
			s.sendErr(&ack, CodeForbidden, "a refresh cannot change the user")
			return
		}
		expires, open := h.applyRefresh(s, &id, seq)
		if !open {
			return // closed meanwhile
		}
		if ack.hasID {
			s.send(refreshAckFrame(ack.id, expires))
		}
	}()
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
