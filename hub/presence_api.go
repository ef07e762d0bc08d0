package hub

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// servePresence answers GET .../presence?ch= with {"ch":..,"members":[..]}
// and GET .../presence_stats?ch= with {"ch":..,"users":N,"clients":M},
// with the same key as the rest of the API. The server API reads every
// channel, whatever the namespace's subscribe rule.
func (a *API) servePresence(w http.ResponseWriter, r *http.Request, op string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshcast"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong API key")
		return
	}
	ch := r.URL.Query().Get("ch")
	var body []byte
	if op == opPresence {
		members, err := a.hub.Presence(r.Context(), ch)
		if err != nil {
			writeError(w, presenceStatus(err), strings.TrimPrefix(err.Error(), "hub: "))
			return
		}
		body = membersJSON(ch, members)
	} else {
		st, err := a.hub.PresenceStats(r.Context(), ch)
		if err != nil {
			writeError(w, presenceStatus(err), strings.TrimPrefix(err.Error(), "hub: "))
			return
		}
		body, _ = json.Marshal(struct {
			Ch string `json:"ch"`
			PresenceStats
		}{ch, st})
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

// membersJSON is {"ch":..,"members":[..]}, built as the client op's
// answer is: encoding/json takes several times as long for a big channel.
func membersJSON(ch string, members []Member) []byte {
	b := make([]byte, 0, 32+len(ch)+48*len(members))
	b = append(b, `{"ch":`...)
	b = appendQuoted(b, ch)
	b = append(b, `,"members":[`...)
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMember(b, m)
	}
	return append(b, "]}"...)
}

func presenceStatus(err error) int {
	if errors.Is(err, ErrNoPresence) {
		return http.StatusBadRequest
	}
	return apiStatus(err)
}
