package wstest

import (
	"bytes"
	"strings"
	"sync"
)

// SyncBuffer is a bytes.Buffer that a logger (or a child process's output
// copier) may write from any goroutine while the test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Lines returns the lines written so far that contain every one of subs
// (every line, with none).
func (b *SyncBuffer) Lines(subs ...string) []string {
	var out []string
next:
	for _, line := range strings.Split(b.String(), "\n") {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}
