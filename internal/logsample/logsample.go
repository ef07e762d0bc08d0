// Package logsample lowers the repeats of one kind of log line: the first
// of a kind is written at its level, the others within a window at debug,
// and the next one written at its level says how many were lowered. An
// event the outside world can repeat at will (a refused client, a slow
// consumer, a peer gossiping to an address this node cannot reach) must
// not fill the disk and bury what an operator has to see; the metrics
// count every one.
package logsample

import (
	"log/slog"
	"sync"
	"time"
)

// Sampler samples events by kind. Set Window (and MaxKinds) before use.
type Sampler[K comparable] struct {
	Window   time.Duration // one line of a kind per Window at its level
	MaxKinds int           // kinds remembered at most (0: no bound); past it, all are forgotten

	mu    sync.Mutex
	kinds map[K]*count
}

type count struct {
	logged  time.Time // when the last line of this kind was written at its level
	lowered uint64    // events of this kind lowered to debug since
}

// Take reports whether an event of kind k at now is logged at its level,
// and how many of its kind were lowered since the last one that was.
func (s *Sampler[K]) Take(k K, now time.Time) (bool, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.kinds[k]
	switch {
	case c == nil:
		if s.kinds == nil || (s.MaxKinds > 0 && len(s.kinds) >= s.MaxKinds) {
			s.kinds = make(map[K]*count)
		}
		c = &count{}
		s.kinds[k] = c
	case now.Sub(c.logged) < s.Window:
		c.lowered++
		return false, 0
	}
	n := c.lowered
	c.logged, c.lowered = now, 0
	return true, n
}

// Apply is Take for a line about to be logged at level with attrs: the
// level to log it at (debug when lowered), and attrs with key set to the
// count lowered since the last one when there were any.
func (s *Sampler[K]) Apply(k K, now time.Time, level slog.Level, key string, attrs []slog.Attr) (slog.Level, []slog.Attr) {
	ok, lowered := s.Take(k, now)
	switch {
	case !ok:
		return slog.LevelDebug, attrs
	case lowered > 0:
		return level, append(attrs, slog.Uint64(key, lowered))
	}
	return level, attrs
}
