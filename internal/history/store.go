// Package history is a node's memory of recent publishes on channels with
// history, and the positions clients resume from. The hub stores what it
// publishes and delivers; the cluster ships what peers ask for. Neither
// owns the other, so the data structure lives here.
//
// A channel's history is made of streams: every hub process has its own
// stream id, and numbers its publishes on each channel 1, 2, 3... A
// position (Frontier) is the last number seen of each stream, so that it
// stays exact however a node interleaved the streams, and a client can
// resume from it on any node.
//
// Memory is bounded per channel (a count and an age) and per node (bytes,
// oldest first across every channel). Safe for concurrent use.
package history

import (
	"container/heap"
	"slices"
	"sync"
	"time"
	"unsafe"
)

// Msg is one stored publish.
type Msg struct {
	Stream, Seq uint64
	Time        int64  // the publishing node's clock, Unix milliseconds: orders streams for reading
	Data        []byte // shared: never modified
}

// Limits of one channel's history.
type Limits struct {
	Max int           // messages kept, at least 1
	TTL time.Duration // 0: kept until evicted by count or memory
}

// entry is one message in a log; kept small (40 bytes), since a node may
// hold millions. data is the message's bytes as a string header: never
// modified, and 8 bytes smaller than a slice's.
type entry struct {
	seq    uint64
	time   int64 // Msg.Time
	data   string
	stream uint32 // index into log.streams
	at     uint32 // seconds since the store's epoch, for the TTL
}

// entryOverhead is what an entry costs besides its data, for the memory
// budget: the entry, its ring's growth slack, the data's allocation
// slack.
const entryOverhead = 64

// bytesOf shares an entry's data as a slice, without a copy; callers never
// modify it (Msg.Data is documented shared).
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// stringOf takes ownership of b (the caller never modifies it again).
func stringOf(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// span is the seqs of one stream a log holds or held.
type span struct {
	id          uint64
	first, last uint64 // stored: first..last; first == last+1 when all evicted
	// evictedTime is the Time of the newest message of the stream this log
	// evicted (0: none): everything before first is at least that old.
	evictedTime int64
}

// log is one channel's history: entries in arrival order (which is each
// stream's order), as a ring.
type log struct {
	name    string
	lim     Limits
	ring    []entry
	head    int // index of the oldest entry
	n       int // entries held
	streams []span
	hidx    int // index in Store.heads, -1 while empty
}

// Store is a node's history. The zero value is not usable: use New.
type Store struct {
	maxBytes int64
	epoch    time.Time

	mu    sync.Mutex
	logs  map[string]*log
	bytes int64
	// heads orders the non-empty logs by the arrival of their oldest
	// entry, for node-wide oldest-first eviction without a per-message
	// queue.
	heads   logHeap
	evicted uint64 // messages evicted for memory (count and age evictions are the window working)
}

// New returns a store holding at most maxBytes of messages, node-wide.
func New(maxBytes int64) *Store {
	return &Store{maxBytes: maxBytes, epoch: time.Now(), logs: make(map[string]*log)}
}

// Stats is what a store holds.
type Stats struct {
	Channels int    `json:"channels"`
	Messages int    `json:"messages"`
	Bytes    int64  `json:"bytes"`
	Evicted  uint64 `json:"evicted_for_memory"`
}

func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Channels: len(s.logs), Bytes: s.bytes, Evicted: s.evicted}
	for _, l := range s.logs {
		st.Messages += l.n
	}
	return st
}

func (s *Store) now() uint32 { return uint32(time.Since(s.epoch) / time.Second) }

// Append stores m on channel ch with the channel's limits. A message
// already stored (same stream and seq, or older than the stream's latest)
// is ignored: peers and refills may hand the same message twice.
func (s *Store) Append(ch string, lim Limits, m Msg) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[ch]
	if l == nil {
		l = &log{name: ch, hidx: -1}
		s.logs[ch] = l
	}
	l.lim = lim
	now := s.now()
	s.expire(l, now)
	si := l.span(m.Stream)
	sp := &l.streams[si]
	if m.Seq <= sp.last {
		return false
	}
	if sp.first > sp.last || m.Seq > sp.last+1 {
		// Nothing of the stream held, or a hole before m: the span claims
		// contiguous seqs, so it starts again at m, knowing nothing of what
		// came before unless it is all evicted and contiguous with m.
		if !(sp.first > sp.last && m.Seq == sp.last+1) {
			sp.evictedTime = 0
		}
		sp.first = m.Seq
	}
	sp.last = m.Seq
	for l.n >= max(1, lim.Max) {
		s.evictHead(l)
	}
	l.push(entry{seq: m.Seq, time: m.Time, data: stringOf(m.Data), stream: uint32(si), at: now})
	if l.hidx < 0 {
		heap.Push(&s.heads, l) // its head is new
	}
	s.bytes += int64(len(m.Data)) + entryOverhead
	for s.bytes > s.maxBytes && s.evictOldest() {
	}
	return true
}

// span returns the index of stream id in l.streams, adding it.
func (l *log) span(id uint64) int {
	for i, sp := range l.streams {
		if sp.id == id {
			return i
		}
	}
	l.streams = append(l.streams, span{id: id, first: 1}) // first > last: holds nothing yet
	return len(l.streams) - 1
}

func (l *log) push(e entry) {
	if l.n == len(l.ring) {
		grown := make([]entry, max(8, 2*len(l.ring)))
		for i := range l.n {
			grown[i] = l.ring[(l.head+i)%len(l.ring)]
		}
		l.ring, l.head = grown, 0
	}
	l.ring[(l.head+l.n)%len(l.ring)] = e
	l.n++
}

func (l *log) at(i int) *entry { return &l.ring[(l.head+i)%len(l.ring)] }

// evictHead drops l's oldest entry.
func (s *Store) evictHead(l *log) {
	e := l.at(0)
	sp := &l.streams[e.stream]
	if e.seq >= sp.first {
		sp.first = e.seq + 1
		sp.evictedTime = max(sp.evictedTime, e.time)
	}
	s.bytes -= int64(len(e.data)) + entryOverhead
	*e = entry{}
	l.head = (l.head + 1) % len(l.ring)
	l.n--
	switch {
	case l.n == 0:
		heap.Remove(&s.heads, l.hidx)
		if len(l.ring) > 64 {
			l.ring, l.head = nil, 0 // an emptied big log gives its memory back
		}
	default:
		heap.Fix(&s.heads, l.hidx)
	}
}

// evictOldest drops the oldest entry of the node: the head of the log
// whose head arrived first (to the second).
func (s *Store) evictOldest() bool {
	if len(s.heads) == 0 {
		return false
	}
	s.evictHead(s.heads[0])
	s.evicted++
	return true
}

// logHeap is a min-heap of non-empty logs by their oldest entry's arrival.
type logHeap []*log

func (h logHeap) Len() int           { return len(h) }
func (h logHeap) Less(i, j int) bool { return h[i].at(0).at < h[j].at(0).at }
func (h logHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *logHeap) Push(x any) {
	l := x.(*log)
	l.hidx = len(*h)
	*h = append(*h, l)
}
func (h *logHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.hidx = -1
	return l
}

// expire drops entries older than l's TTL.
func (s *Store) expire(l *log, now uint32) {
	if l.lim.TTL <= 0 {
		return
	}
	ttl := uint32(l.lim.TTL / time.Second)
	for l.n > 0 && now-l.at(0).at >= max(ttl, 1) {
		s.evictHead(l)
	}
}

// Sweep drops expired entries of every channel and forgets channels left
// with nothing; the hub calls it now and then.
func (s *Store) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for name, l := range s.logs {
		s.expire(l, now)
		if l.n == 0 && l.lim.TTL > 0 && len(l.streams) == 0 {
			delete(s.logs, name)
		}
	}
}

// Result is what a store has of a channel after a frontier.
type Result struct {
	Msgs []Msg // after the frontier, oldest first (each stream in order)
	// Spans is, per stream the store knows, the seqs it holds (First..Last)
	// or held (First = Last+1 when they were all evicted): enough for the
	// asker to tell, with other nodes' spans, whether anything is missing.
	Spans []Span
	More  bool // the byte budget ran out: ask again after what came
}

// Span is the seqs of one stream held by one store. BeforeTime, when not
// zero, says that every message of the stream before First is at least
// that old (it was evicted); zero says nothing.
type Span struct {
	Stream, First, Last uint64
	BeforeTime          int64
}

// After returns the messages of ch after f, oldest first, until about
// budget bytes of data, and what the store holds of each stream.
func (s *Store) After(ch string, f Frontier, budget int) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[ch]
	if l == nil {
		return Result{}
	}
	s.expire(l, s.now())
	var r Result
	for _, sp := range l.streams {
		r.Spans = append(r.Spans, Span{sp.id, sp.first, sp.last, sp.evictedTime})
	}
	size := 0
	for i := range l.n {
		e := l.at(i)
		id := l.streams[e.stream].id
		if e.seq <= f.Get(id) {
			continue
		}
		if size > 0 && size+len(e.data) > budget {
			r.More = true
			break
		}
		r.Msgs = append(r.Msgs, Msg{Stream: id, Seq: e.seq, Time: e.time, Data: bytesOf(e.data)})
		size += len(e.data)
	}
	return r
}

// Spans returns what the store holds of each stream of ch.
func (s *Store) Spans(ch string) []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[ch]
	if l == nil {
		return nil
	}
	s.expire(l, s.now())
	out := make([]Span, 0, len(l.streams))
	for _, sp := range l.streams {
		out = append(out, Span{sp.id, sp.first, sp.last, sp.evictedTime})
	}
	return out
}

// Last returns up to n of ch's newest messages, oldest first.
func (s *Store) Last(ch string, n int) []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.logs[ch]
	if l == nil || n <= 0 {
		return nil
	}
	s.expire(l, s.now())
	out := make([]Msg, 0, min(n, l.n))
	for i := max(0, l.n-n); i < l.n; i++ {
		e := l.at(i)
		out = append(out, Msg{Stream: l.streams[e.stream].id, Seq: e.seq, Time: e.time, Data: bytesOf(e.data)})
	}
	return out
}

// Complete reports whether spans from every node that answered cover
// everything published after p: for a stream p names, every seq after its
// mark up to the newest any node has; for a stream p does not name, every
// message newer than p.Time less Skew (a node that evicted older ones says
// how old they were). A stream of p that no node knows is a stream whose
// history is gone: incomplete.
func Complete(p Pos, spans []Span) bool {
	byStream := map[uint64][]Span{}
	for _, sp := range spans {
		byStream[sp.Stream] = append(byStream[sp.Stream], sp)
	}
	for _, m := range p.Marks {
		sps, ok := byStream[m.Stream]
		if !ok {
			return false
		}
		newest := uint64(0)
		for _, sp := range sps {
			newest = max(newest, sp.Last)
		}
		if m.Seq > newest {
			return false // a position from the future, or another cluster's
		}
	}
	for id, sps := range byStream {
		had := p.Marks.Get(id)
		if had == 0 {
			had = oldPrefix(sps, p.Time-Skew)
		}
		if !covered(had, sps) {
			return false
		}
	}
	return true
}

// oldPrefix is the highest seq known to be older than threshold: the seq
// before a span whose evicted messages are all that old.
func oldPrefix(sps []Span, threshold int64) uint64 {
	var had uint64
	for _, sp := range sps {
		if sp.BeforeTime != 0 && sp.BeforeTime < threshold && sp.First > 0 {
			had = max(had, sp.First-1)
		}
	}
	return had
}

// covered: the spans hold every seq from had+1 to the newest any of them
// knows of (an emptied span still says how far its stream got).
func covered(had uint64, sps []Span) bool {
	need := had
	for _, sp := range sps {
		need = max(need, sp.Last)
	}
	slices.SortFunc(sps, func(a, b Span) int { return cmpU64(a.First, b.First) })
	next := had + 1
	for _, sp := range sps {
		if sp.First > sp.Last || sp.Last < next {
			continue // holds nothing, or nothing new
		}
		if sp.First > next {
			return false // a hole before this span
		}
		next = sp.Last + 1
	}
	return next > need
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
