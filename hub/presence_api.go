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
	var body any
	var err error
	if op == opPresence {
		var members []Member
		members, err = a.hub.Presence(r.Context(), ch)
		body = struct {
			Ch      string   `json:"ch"`
			Members []Member `json:"members"`
		}{ch, members}
	} else {
		var st PresenceStats
		st, err = a.hub.PresenceStats(r.Context(), ch)
		body = struct {
			Ch string `json:"ch"`
			PresenceStats
		}{ch, st}
	}
	if err != nil {
		writeError(w, presenceStatus(err), strings.TrimPrefix(err.Error(), "hub: "))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func presenceStatus(err error) int {
	if errors.Is(err, ErrNoPresence) {
		return http.StatusBadRequest
	}
	return apiStatus(err)
}
