package hub

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// API is the server HTTP API of a hub: POST .../publish, .../broadcast and
// .../disconnect, GET .../history?ch=x&limit=50, GET .../presence?ch=x and
// .../presence_stats?ch=x (presence_api.go) (the last path element picks
// the operation, so it can be mounted under any prefix, "/api/" in
// cmd/meshcast). Requests carry
// "Authorization: Bearer <key>"; the key is compared in constant time.
// Every error is JSON {"code":N,"reason":"..."}; success is 200 {}.
type API struct {
	hub *Hub
	key [sha256.Size]byte
	on  bool
}

// NewAPI returns the server API of h, authenticated by key. With an empty
// key the API is off: every request gets 404, it is never open.
func NewAPI(h *Hub, key string) *API {
	return &API{hub: h, key: sha256.Sum256([]byte(key)), on: key != ""}
}

type apiRequest struct {
	Ch   string          `json:"ch"`
	Chs  []string        `json:"chs"`
	Data json.RawMessage `json:"data"`
	User string          `json:"user"`
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := path.Base(r.URL.Path)
	if a.on && (op == opPresence || op == opPresenceStats) {
		a.servePresence(w, r, op) // presence_api.go
		return
	}
	if !a.on {
		// Saying so costs nothing: off, it serves nobody.
		writeError(w, http.StatusNotFound, "not found: the server API is off (no API key configured)")
		return
	}
	if op != "publish" && op != "broadcast" && op != "disconnect" && op != "history" {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if op == "history" {
		a.history(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshcast"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong API key")
		return
	}
	var req apiRequest
	if status, reason := a.decode(w, r, &req); status != 0 {
		writeError(w, status, reason)
		return
	}
	var err error
	switch op {
	case "publish":
		if err = needData(req.Data); err == nil {
			err = a.hub.Publish(r.Context(), req.Ch, req.Data)
		}
	case "broadcast":
		if err = needData(req.Data); err == nil && len(req.Chs) == 0 {
			err = errors.New(`"chs" must list at least one channel`)
		}
		if err == nil {
			err = a.hub.Broadcast(r.Context(), req.Chs, req.Data)
		}
	case "disconnect":
		err = a.hub.Disconnect(r.Context(), req.User)
	}
	if err != nil {
		writeError(w, apiStatus(err), strings.TrimPrefix(err.Error(), "hub: "))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}\n")
}

// history answers GET .../history?ch=x&limit=N with
// {"ch":"x","msgs":[{"pos":"…","data":…},…]}, oldest first.
func (a *API) history(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshcast"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong API key")
		return
	}
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, `"limit" must be a non-negative integer`)
			return
		}
		limit = n
	}
	ch := q.Get("ch")
	msgs, err := a.hub.History(r.Context(), ch, limit)
	if err != nil {
		writeError(w, apiStatus(err), strings.TrimPrefix(err.Error(), "hub: "))
		return
	}
	type entry struct {
		Pos  string          `json:"pos"`
		Data json.RawMessage `json:"data"`
	}
	out := struct {
		Ch   string  `json:"ch"`
		Msgs []entry `json:"msgs"`
	}{Ch: ch, Msgs: make([]entry, len(msgs))}
	for i, m := range msgs {
		out.Msgs[i] = entry{m.Pos, m.Data}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// authorized compares hashes, so neither the key's bytes nor its length
// leak through timing.
func (a *API) authorized(r *http.Request) bool {
	got := sha256.Sum256([]byte(bearerToken(r)))
	return subtle.ConstantTimeCompare(got[:], a.key[:]) == 1
}

// decode reads one JSON object, at most a publish's data plus room for a
// long channel list.
func (a *API) decode(w http.ResponseWriter, r *http.Request, req *apiRequest) (int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(a.hub.live().MaxDataSize)+1<<20))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, "body too large"
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() { // the server's ReadTimeout
			return http.StatusRequestTimeout, "body not received in time"
		}
		return http.StatusBadRequest, "body not read: " + err.Error()
	}
	// encoding/json would turn bytes that are not UTF-8 into U+FFFD, and
	// a channel name so changed is another channel.
	if !utf8.Valid(body) {
		return http.StatusBadRequest, "body is not valid UTF-8"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(req); err != nil {
		return http.StatusBadRequest, "body is not a JSON object of the expected shape"
	}
	// Nothing but white space may follow the object. dec.More() alone is
	// false before a '}' or ']' too, so `{...}}` and `{...}]` passed.
	if _, err := dec.Token(); err != io.EOF {
		return http.StatusBadRequest, "body has more than one JSON value"
	}
	return 0, ""
}

var errNoData = errors.New(`missing "data"`)

func needData(d json.RawMessage) error {
	if d == nil {
		return errNoData
	}
	return nil
}

func apiStatus(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrReserved):
		return http.StatusForbidden
	case errors.Is(err, ErrClosed), errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotStored):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}
