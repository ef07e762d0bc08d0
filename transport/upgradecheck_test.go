package transport

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckUpgrade(t *testing.T) {
	valid := func() *http.Request {
		r := httptest.NewRequest("GET", "http://example.com/ws", nil)
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "keep-alive, Upgrade") // as Firefox sends it
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Sec-WebSocket-Version", "13")
		return r
	}
	for _, tc := range []struct {
		name   string
		change func(r *http.Request)
		status int
	}{
		{"valid", func(r *http.Request) {}, 0},
		{"upgrade in capitals", func(r *http.Request) { r.Header.Set("Upgrade", "WebSocket") }, 0},
		{"POST", func(r *http.Request) { r.Method = "POST" }, 405},
		{"HTTP/1.0", func(r *http.Request) { r.ProtoMinor = 0 }, 505},
		{"no host", func(r *http.Request) { r.Host = "" }, 400},
		{"no upgrade", func(r *http.Request) { r.Header.Del("Upgrade") }, 400},
		{"connection close", func(r *http.Request) { r.Header.Set("Connection", "close") }, 400},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "abc") }, 400},
		{"no version", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") }, 400},
		{"version 8", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, 426},
	} {
		r := valid()
		tc.change(r)
		err := CheckUpgrade(r)
		var ue *UpgradeError
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.status != 0 && (!errors.As(err, &ue) || ue.Status != tc.status || ue.Reason == ""):
			t.Errorf("%s: %v, want status %d", tc.name, err, tc.status)
		}
	}
}
