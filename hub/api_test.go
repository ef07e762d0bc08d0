package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// apiHub serves a hub at /ws and its API, with key, at /api/.
func apiHub(t testing.TB, cfg Config, key string) (h *Hub, wsURL, apiURL string) {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	mux.Handle("/api/", NewAPI(h, key))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Close()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h, "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", srv.URL + "/api/"
}

// post sends body to url with key and returns the status and decoded body.
func post(t testing.TB, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: body is not JSON: %q", url, b)
	}
	if resp.StatusCode != http.StatusOK && m["code"] != float64(resp.StatusCode) {
		t.Fatalf("%s: status %d, body %s", url, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func TestAPIOffWithoutKey(t *testing.T) {
	_, _, api := apiHub(t, DefaultConfig(), "")
	for _, op := range []string{"publish", "broadcast", "disconnect"} {
		if status, _ := post(t, api+op, "anything", `{"ch":"x","data":1}`); status != http.StatusNotFound {
			t.Fatalf("%s without a configured key: %d", op, status)
		}
		if status, _ := post(t, api+op, "", `{"ch":"x","data":1}`); status != http.StatusNotFound {
			t.Fatalf("%s without a configured key or header: %d", op, status)
		}
	}
}

func TestAPIWrongKey(t *testing.T) {
	_, ws, api := apiHub(t, DefaultConfig(), "right-key")
	sub := dial(t, ws)
	sub.MustAck(`{"op":"sub","ch":"x","id":1}`)
	for _, key := range []string{"", "wrong-key", "right-ke", "right-key2"} {
		if status, body := post(t, api+"publish", key, `{"ch":"x","data":"no"}`); status != http.StatusUnauthorized {
			t.Fatalf("key %q: %d %v", key, status, body)
		}
	}
	expectOnlyMarker(t, sub, "x") // nothing was published

}

func TestAPIPublishAndBroadcast(t *testing.T) {
	_, ws, api := apiHub(t, DefaultConfig(), "k")
	sub := dial(t, ws)
	sub.MustAck(`{"op":"sub","ch":"a","id":1}`)
	sub.MustAck(`{"op":"sub","ch":"b","id":2}`)
	if status, body := post(t, api+"publish", "k", `{"ch":"a","data":{"n": 1}}`); status != http.StatusOK {
		t.Fatalf("publish: %d %v", status, body)
	}
	if got := string(sub.ReadText()); got != `{"op":"msg","ch":"a","data":{"n": 1}}` {
		t.Fatalf("delivery %s", got)
	}
	if status, body := post(t, api+"broadcast", "k", `{"chs":["a","b","c"],"data":"all"}`); status != http.StatusOK {
		t.Fatalf("broadcast: %d %v", status, body)
	}
	seen := map[string]bool{}
	for range 2 {
		m := sub.ReadJSON()
		seen[m["ch"].(string)] = m["data"] == "all"
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("broadcast deliveries %v", seen)
	}
}

func TestAPIErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDataSize = 16
	_, _, api := apiHub(t, cfg, "k")
	for _, tc := range []struct {
		op, body string
		status   int
	}{
		{"publish", `not json`, 400},
		{"publish", `{"ch":"x"}`, 400},
		{"publish", `{"ch":"bad name","data":1}`, 400},
		{"publish", `{"ch":"$sys:disconnect","data":{"user":"a"}}`, 403},
		{"publish", `{"ch":"x","data":"` + strings.Repeat("z", 32) + `"}`, 413},
		{"publish", `{"ch":"x","data":1} {}`, 400},
		{"broadcast", `{"chs":[],"data":1}`, 400},
		{"broadcast", `{"chs":["ok","$no"],"data":1}`, 403},
		{"disconnect", `{}`, 400},
		{"nothing", `{}`, 404},
	} {
		if status, body := post(t, api+tc.op, "k", tc.body); status != tc.status {
			t.Errorf("%s %s: %d %v, want %d", tc.op, tc.body, status, body, tc.status)
		}
	}
	// The 413 says the limit (it named only the Go field, MaxDataSize).
	if _, body := post(t, api+"publish", "k", `{"ch":"x","data":"`+strings.Repeat("z", 32)+`"}`); body["reason"] != "data is larger than MaxDataSize (34 bytes, the limit is 16)" {
		t.Errorf("413 reason %q", body["reason"])
	}
	resp, err := http.Get(api + "publish")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

// TestDisconnectLocal: every connection of the user closes with 4003, and
// the others stay.
func TestDisconnectLocal(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Authenticator = hmacVerifier(t)
	_, ws, api := apiHub(t, cfg, "k")
	a1 := dial(t, withToken(ws, hs256(t, claims("alice", time.Hour))))
	a2 := dial(t, withToken(ws, hs256(t, claims("alice", time.Hour))))
	bob := dial(t, withToken(ws, hs256(t, claims("bob", time.Hour))))
	if status, body := post(t, api+"disconnect", "k", `{"user":"alice"}`); status != http.StatusOK {
		t.Fatalf("disconnect: %d %v", status, body)
	}
	for _, c := range []*client{a1, a2} {
		if code, reason := c.ExpectClose(); code != CloseDisconnected || reason != "disconnected" {
			t.Fatalf("close %d %q", code, reason)
		}
	}
	bob.MustAck(`{"op":"sub","ch":"x","id":1}`)
}

func TestBroadcastChecksEverythingFirst(t *testing.T) {
	h, ws := testHub(t, DefaultConfig())
	c := dial(t, ws)
	c.MustAck(`{"op":"sub","ch":"a","id":1}`)
	if err := h.Broadcast(t.Context(), []string{"a", "bad name"}, []byte(`1`)); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("err %v", err)
	}
	if err := h.Disconnect(t.Context(), ""); !errors.Is(err, ErrNoUser) {
		t.Fatalf("err %v", err)
	}
	expectOnlyMarker(t, c, "a") // nothing reached "a" before

}

// expectOnlyMarker publishes a marker on ch, to which c is subscribed, and
// checks the next two frames are its delivery and its ack, in either
// order: anything published before would come first.
func expectOnlyMarker(t testing.TB, c *client, ch string) {
	t.Helper()
	c.SendText(`{"op":"pub","ch":"` + ch + `","data":"marker","id":99}`)
	for range 2 {
		m := c.ReadJSON()
		if m["op"] == "ack" && m["id"] == 99.0 {
			continue
		}
		if m["op"] != "msg" || m["data"] != "marker" {
			t.Fatalf("want the marker or its ack, got %v", m)
		}
	}
}

// TestInvalidUTF8DataRefused: data that is not UTF-8 would reach browsers
// in a text frame they must close with 1007, so the API and the Go calls
// refuse it as a client's frame would be (json.Valid does not check it).
func TestInvalidUTF8DataRefused(t *testing.T) {
	h, ws, api := apiHub(t, DefaultConfig(), "k")
	sub := dial(t, ws)
	sub.MustAck(`{"op":"sub","ch":"x","id":1}`)
	for _, body := range []string{
		"{\"ch\":\"x\",\"data\":\"caf\xe9\"}",
		"{\"ch\":\"x\",\"data\":{\"k\xff\":1}}",
		// encoding/json would have read these channels as "x\uFFFD".
		"{\"ch\":\"x\xff\",\"data\":1}",
		`{"ch":"x\ud800","data":1}`,
	} {
		if status, m := post(t, api+"publish", "k", body); status != http.StatusBadRequest {
			t.Errorf("publish %q: %d %v, want 400", body, status, m)
		}
		if status, m := post(t, api+"broadcast", "k", strings.Replace(body, `"ch":"x"`, `"chs":["x"]`, 1)); status != http.StatusBadRequest {
			t.Errorf("broadcast %q: %d %v, want 400", body, status, m)
		}
	}
	if err := h.Publish(t.Context(), "x", []byte("\"caf\xe9\"")); !errors.Is(err, ErrBadData) {
		t.Errorf("Publish: %v, want ErrBadData", err)
	}
	if err := h.Broadcast(t.Context(), []string{"x"}, []byte("[\"\xc0\xae\"]")); !errors.Is(err, ErrBadData) {
		t.Errorf("Broadcast: %v, want ErrBadData", err)
	}
	if err := h.Publish(t.Context(), "x\xff", []byte("1")); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("Publish to a channel that is not UTF-8: %v", err)
	}
	expectOnlyMarker(t, sub, "x") // nothing reached the subscriber
}
