package hub

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// sampleEvery is how often an event of one kind the clients cause is
// logged at info or above: a refused upgrade (status and reason), a slow
// consumer cut off. A full node meets thousands of reconnecting clients
// at once, a page on a foreign origin retries for ever, a stalled network
// cuts off every subscriber behind it; a line for each would fill the
// disk and bury what the operator must see. The metrics count every one.
const sampleEvery = 10 * time.Second

// sampledLog decides which of such events are logged: the first of each
// kind, then at most one per sampleEvery, saying how many went unlogged.
type sampledLog struct {
	// mu guards kinds. Its keys are constant codes and reasons, so it
	// stays small.
	mu    sync.Mutex
	kinds map[logKind]*sampleCount
}

// logKind is a kind of event: an HTTP status or close code, and a reason.
type logKind struct {
	code   int
	reason string
}

type sampleCount struct {
	logged   time.Time // when the last line of this kind was written
	unlogged uint64    // refusals of this kind since then
}

// take reports whether to log a refusal of this kind now, and how many
// of its kind were not logged since the last line.
func (l *sampledLog) take(k logKind, now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kinds == nil {
		l.kinds = make(map[logKind]*sampleCount)
	}
	c := l.kinds[k]
	if c == nil {
		c = &sampleCount{}
		l.kinds[k] = c
	} else if now.Sub(c.logged) < sampleEvery {
		c.unlogged++
		return false, 0
	}
	n := c.unlogged
	c.logged, c.unlogged = now, 0
	return true, n
}

// refuse answers a refused upgrade and counts it. Refusals at info or
// above are logged as sampledLog allows; at debug every one is.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, level slog.Level) {
	h.metrics.refused.Add(1)
	attrs := []slog.Attr{slog.Int("status", status), slog.String("reason", reason),
		slog.String("remote", r.RemoteAddr), slog.String("origin", r.Header.Get("Origin"))}
	if level >= slog.LevelInfo && h.log.Enabled(r.Context(), level) {
		ok, unlogged := h.sampled.take(logKind{status, reason}, time.Now())
		if !ok {
			level = slog.LevelDebug
		} else if unlogged > 0 {
			attrs = append(attrs, slog.Uint64("unlogged_since_last", unlogged))
		}
	}
	h.log.LogAttrs(r.Context(), level, "refused connection", attrs...)
	writeError(w, status, reason)
}

// logSlowConsumer says that a client was cut off as a slow consumer, as
// sampledLog allows (the rest at debug).
func (h *Hub) logSlowConsumer(c *Client) {
	level := slog.LevelInfo
	attrs := []slog.Attr{slog.String("client", c.id), slog.String("remote", c.remote)}
	if u := c.User(); u != "" {
		attrs = append(attrs, slog.String("user", u))
	}
	ok, unlogged := h.sampled.take(logKind{1008, "slow consumer"}, time.Now())
	if !ok {
		level = slog.LevelDebug
	} else if unlogged > 0 {
		attrs = append(attrs, slog.Uint64("unlogged_since_last", unlogged))
	}
	h.log.LogAttrs(context.Background(), level,
		"client cut off as a slow consumer (1008): it did not read, and its --write-queue filled", attrs...)
}
