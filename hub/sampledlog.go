package hub

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// sampleEvery is how often an event of one kind the clients cause is
// logged at info or above: a refused upgrade (status and reason), a slow
// consumer cut off. A full node meets thousands of reconnecting clients
// at once, a page on a foreign origin retries for ever, a stalled network
// cuts off every subscriber behind it; a line for each would fill the
// disk and bury what the operator must see. The metrics count every one.
const sampleEvery = 10 * time.Second

// logKind is a kind of event: an HTTP status or close code, and a reason.
// The codes and reasons are constant, so the kinds stay few.
type logKind struct {
	code   int
	reason string
}

// refuse answers a refused upgrade and counts it. Refusals at info or
// above are logged as h.sampled allows; at debug every one is.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, level slog.Level) {
	h.metrics.refused.Add(1)
	attrs := []slog.Attr{slog.Int("status", status), slog.String("reason", reason),
		slog.String("remote", r.RemoteAddr), slog.String("origin", r.Header.Get("Origin"))}
	if level >= slog.LevelInfo && h.log.Enabled(r.Context(), level) {
		level, attrs = h.sampled.Apply(logKind{status, reason}, time.Now(), level, "unlogged_since_last", attrs)
	}
	h.log.LogAttrs(r.Context(), level, "refused connection", attrs...)
	writeError(w, status, reason)
}

// logSlowConsumer says that a client was cut off as a slow consumer, as
// h.sampled allows (the rest at debug).
func (h *Hub) logSlowConsumer(c *Client) {
	attrs := []slog.Attr{slog.String("client", c.id), slog.String("remote", c.remote)}
	if u := c.User(); u != "" {
		attrs = append(attrs, slog.String("user", u))
	}
	level, attrs := h.sampled.Apply(logKind{1008, "slow consumer"}, time.Now(), slog.LevelInfo, "unlogged_since_last", attrs)
	h.log.LogAttrs(context.Background(), level,
		"client cut off as a slow consumer (1008): it did not read, and its --write-queue filled", attrs...)
}
