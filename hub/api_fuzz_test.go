package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzAPI sends arbitrary requests to the server HTTP API (any op,
// method, query and body, with and without the key) and checks every
// answer: never a 500 or a panic, always valid UTF-8 JSON, an error as
// {"code":status,"reason":...} with a reason, and a 200 to a POST only
// for a body that is one JSON object of the API's shape.
func FuzzAPI(f *testing.F) {
	f.Add(uint8(0), uint8(0), "", []byte(`{"ch":"news","data":{"t":"hi"}}`), true)
	f.Add(uint8(1), uint8(0), "", []byte(`{"chs":["a","b"],"data":[1,2]}`), true)
	f.Add(uint8(2), uint8(0), "", []byte(`{"user":"ann"}`), true)
	f.Add(uint8(3), uint8(1), "ch=news&limit=5", []byte{}, true)
	f.Add(uint8(4), uint8(1), "ch=room", []byte{}, true)
	f.Add(uint8(5), uint8(1), "ch=%FF%00", []byte{}, true)
	f.Add(uint8(0), uint8(0), "", []byte(`{"ch":"news","data":1}{"ch":"x"}`), true)
	f.Add(uint8(0), uint8(0), "", []byte(`{"ch":"\u00ff\ud800","data":"\xff"}`), true)
	f.Add(uint8(0), uint8(0), "", []byte(`{"ch":"news","data":1}`), false)
	f.Add(uint8(1), uint8(2), "", []byte(`[`), true)
	h, err := New(DefaultConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
	api := NewAPI(h, "key")
	ops := []string{"publish", "broadcast", "disconnect", "history", opPresence, opPresenceStats, "other"}
	methods := []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodHead}
	f.Fuzz(func(t *testing.T, op, method uint8, query string, body []byte, withKey bool) {
		r := httptest.NewRequest(methods[int(method)%len(methods)], "/api/"+ops[int(op)%len(ops)], bytes.NewReader(body))
		r.URL.RawQuery = query // any bytes, as the server's parser may pass them
		u := r.URL
		if withKey {
			r.Header.Set("Authorization", "Bearer key")
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, r)
		status, out := w.Code, w.Body.Bytes()
		if status >= 500 && status != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: status %d: %s", r.Method, u, status, out)
		}
		if r.Method == http.MethodHead && len(out) == 0 {
			return
		}
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("%s %s: answer is not UTF-8 JSON: %q", r.Method, u, out)
		}
		if status != http.StatusOK {
			var e struct {
				Code   int    `json:"code"`
				Reason string `json:"reason"`
			}
			if err := json.Unmarshal(out, &e); err != nil || e.Code != status || e.Reason == "" {
				t.Fatalf("%s %s: error %d answered %q", r.Method, u, status, out)
			}
			return
		}
		if r.Method == http.MethodPost {
			var req apiRequest
			if !json.Valid(body) || json.Unmarshal(body, &req) != nil {
				t.Fatalf("POST %s: 200 for the body %q", u, body)
			}
		}
	})
}
