package hub

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestUpgradeRefusalsAreJSON: a request that is not a valid WebSocket
// upgrade is refused with the documented JSON body, like every other
// refusal, not the handshake library's text.
func TestUpgradeRefusalsAreJSON(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	httpURL := "http" + strings.TrimPrefix(url, "ws")
	upgrade := func(version string) http.Header {
		return http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {version}}
	}
	for _, tc := range []struct {
		name   string
		method string
		hdr    http.Header
		status int
	}{
		{"plain GET", "GET", nil, 400},
		{"no key", "GET", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}}, 400},
		{"no version", "GET", upgrade(""), 400},
		{"old version", "GET", upgrade("8"), 426},
		{"POST", "POST", upgrade("13"), 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, httpURL, nil)
			for k, v := range tc.hdr {
				if v[0] != "" {
					req.Header[k] = v
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var body struct {
				Code   int    `json:"code"`
				Reason string `json:"reason"`
			}
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" ||
				json.Unmarshal(b, &body) != nil || body.Code != tc.status || body.Reason == "" {
				t.Fatalf("%d %s %q; want %d with a JSON body", resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.status)
			}
			if tc.status == 426 && resp.Header.Get("Sec-Websocket-Version") != "13" {
				t.Fatalf("426 without Sec-WebSocket-Version: 13: %v", resp.Header)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
	dial(t, url) // a real upgrade still works
	if s := h.Stats(); s.RefusedUpgrade != 5 || s.Refused != 5 {
		t.Fatalf("refused_upgrade %d, refused %d; want 5 each", s.RefusedUpgrade, s.Refused)
	}
}
