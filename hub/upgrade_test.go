package hub

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
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

// statusRecorder is a middleware's status statusRecorder that forgot Unwrap: the hub
// cannot hijack through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// unwrappingRecorder is the same statusRecorder done right.
type unwrappingRecorder struct{ statusRecorder }

func (w *unwrappingRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRecords collects the records a hub logs.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func (l *logRecords) at(level slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Level == level {
			out = append(out, r.Message)
		}
	}
	return out
}

// TestUnhijackableWriterIsAnError: a service whose middleware hides the
// connection from the hub gets every upgrade refused; that is its own
// setup, so the hub says so once at error level, naming the fix, instead
// of at debug like a client's broken handshake.
func TestUnhijackableWriterIsAnError(t *testing.T) {
	logs := &logRecords{}
	cfg := DefaultConfig()
	cfg.Logger = slog.New(logs)
	h, _ := testHub(t, cfg)
	wrap := func(w http.ResponseWriter) http.ResponseWriter { return &statusRecorder{ResponseWriter: w} }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(wrap(w), r) }))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, _, err := ws.Dial(ctx, url)
		cancel()
		if err == nil {
			conn.Close()
			t.Fatal("upgraded through a writer that cannot be hijacked")
		}
	}
	errs := logs.at(slog.LevelError)
	if len(errs) != 1 || !strings.Contains(errs[0], "Unwrap") {
		t.Fatalf("error logs %q, want one naming Unwrap", errs)
	}
	wrap = func(w http.ResponseWriter) http.ResponseWriter {
		return &unwrappingRecorder{statusRecorder{ResponseWriter: w}}
	}
	dial(t, url) // with Unwrap the hub hijacks through it
}
