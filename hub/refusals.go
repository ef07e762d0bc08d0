package hub

import (
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// refusalLogEvery is how often a refusal of one kind (status and reason)
// is logged at info or above. Refusals are the clients' doing: a full
// node meets thousands of reconnecting clients at once, and a page on a
// foreign origin retries for ever; a line for each would fill the disk
// and bury what the operator must see. The metrics count every one.
const refusalLogEvery = 10 * time.Second

// refusalLog decides which refusals are logged: the first of each kind,
// then at most one per refusalLogEvery, saying how many went unlogged.
type refusalLog struct {
	// mu guards kinds. Its keys are the constant reasons of the
	// refusals logged at info or above, so it stays small.
	mu    sync.Mutex
	kinds map[refusalKind]*refusalCount
}

type refusalKind struct {
	status int
	reason string
}

type refusalCount struct {
	logged   time.Time // when the last line of this kind was written
	unlogged uint64    // refusals of this kind since then
}

// take reports whether to log a refusal of this kind now, and how many
// of its kind were not logged since the last line.
func (l *refusalLog) take(k refusalKind, now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kinds == nil {
		l.kinds = make(map[refusalKind]*refusalCount)
	}
	c := l.kinds[k]
	if c == nil {
		c = &refusalCount{}
		l.kinds[k] = c
	} else if now.Sub(c.logged) < refusalLogEvery {
		c.unlogged++
		return false, 0
	}
	n := c.unlogged
	c.logged, c.unlogged = now, 0
	return true, n
}

// refuse answers a refused upgrade and counts it. Refusals at info or
// above are logged as refusalLog allows; at debug every one is.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, status int, reason string, level slog.Level) {
	h.metrics.refused.Add(1)
	attrs := []slog.Attr{slog.Int("status", status), slog.String("reason", reason),
		slog.String("remote", r.RemoteAddr), slog.String("origin", r.Header.Get("Origin"))}
	if level >= slog.LevelInfo && h.log.Enabled(r.Context(), level) {
		ok, unlogged := h.refusals.take(refusalKind{status, reason}, time.Now())
		if !ok {
			level = slog.LevelDebug
		} else if unlogged > 0 {
			attrs = append(attrs, slog.Uint64("unlogged_since_last", unlogged))
		}
	}
	h.log.LogAttrs(r.Context(), level, "refused connection", attrs...)
	writeError(w, status, reason)
}
