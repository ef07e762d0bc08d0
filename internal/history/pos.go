package history

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"slices"
	"strings"
)

// Mark is how far one stream of a channel has got: its last sequence
// number delivered (or, in a request, already had).
type Mark struct {
	Stream uint64 // the publishing hub's stream id, never 0
	Seq    uint64 // 1 for a stream's first message on a channel
}

// Frontier is how far a channel's history was seen: a Mark per stream,
// sorted by Stream, at most one per stream. The zero Frontier is the
// beginning.
type Frontier []Mark

// Pos is a client's position in a channel: the Frontier of what it
// received, and the newest origin time among it (Unix milliseconds). A
// stream the Frontier does not name is judged by time: its messages from
// after Time (less the clock skew allowed between nodes) are new to the
// client, older ones came before it was there.
type Pos struct {
	Marks Frontier
	Time  int64
}

// Skew is how far apart the clocks of two nodes may be: a message of a
// stream unknown to a position counts as new if its time is within Skew
// before the position's. Generous, since a message counted twice is a
// duplicate that the frontier then removes, while one counted as old is
// lost.
const Skew = 5000 // milliseconds

// maxStreams bounds the streams a position may name: a client could
// otherwise send a position that costs a lookup per entry on every node.
const maxStreams = 1024

// posVersion starts every encoded position; a later format changes it.
const posVersion = "p1."

// Errors of DecodePos.
var (
	ErrBadPos     = errors.New("history: malformed position")
	ErrOtherPlace = errors.New("history: position from another cluster or channel")
)

// Get returns the seq of stream in f, or 0.
func (f Frontier) Get(stream uint64) uint64 {
	i, ok := slices.BinarySearchFunc(f, stream, cmpStream)
	if !ok {
		return 0
	}
	return f[i].Seq
}

// With returns f with stream advanced to seq (never moved back). It does
// not modify f.
func (f Frontier) With(stream, seq uint64) Frontier {
	i, ok := slices.BinarySearchFunc(f, stream, cmpStream)
	if ok {
		if f[i].Seq >= seq {
			return f
		}
		out := slices.Clone(f)
		out[i].Seq = seq
		return out
	}
	return slices.Insert(slices.Clone(f), i, Mark{stream, seq})
}

// Covers reports whether f has everything g has, stream by stream.
func (f Frontier) Covers(g Frontier) bool {
	for _, m := range g {
		if f.Get(m.Stream) < m.Seq {
			return false
		}
	}
	return true
}

func cmpStream(m Mark, stream uint64) int {
	switch {
	case m.Stream < stream:
		return -1
	case m.Stream > stream:
		return 1
	}
	return 0
}

// Place identifies a channel in positions, so that a position of another
// channel is refused instead of replaying the wrong streams.
func Place(ch string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(ch))
	return h.Sum32()
}

// EncodePos encodes p as an opaque position string for the channel whose
// Place is place.
func EncodePos(place uint32, p Pos) string {
	f := p.Marks
	b := make([]byte, 0, 4+10+len(f)*12)
	b = binary.BigEndian.AppendUint32(b, place)
	b = binary.AppendVarint(b, p.Time)
	b = binary.AppendUvarint(b, uint64(len(f)))
	var prev uint64
	for _, m := range f {
		b = binary.AppendUvarint(b, m.Stream-prev) // streams ascend: small deltas
		b = binary.AppendUvarint(b, m.Seq)
		prev = m.Stream
	}
	return posVersion + base64.RawURLEncoding.EncodeToString(b)
}

// DecodePos parses a position made by EncodePos for place. It never
// panics and allocates at most in proportion to its input.
func DecodePos(place uint32, s string) (Pos, error) {
	rest, ok := strings.CutPrefix(s, posVersion)
	if !ok || len(rest) > base64.RawURLEncoding.EncodedLen(4+10+maxStreams*20) {
		return Pos{}, ErrBadPos
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) < 4 {
		return Pos{}, ErrBadPos
	}
	if binary.BigEndian.Uint32(b) != place {
		return Pos{}, ErrOtherPlace
	}
	b = b[4:]
	t, k := binary.Varint(b)
	if k <= 0 {
		return Pos{}, ErrBadPos
	}
	b = b[k:]
	f, err := decodeMarks(b)
	return Pos{Marks: f, Time: t}, err
}

func decodeMarks(b []byte) (Frontier, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxStreams || n > uint64(len(b)) {
		return nil, ErrBadPos
	}
	b = b[k:]
	f := make(Frontier, 0, n)
	var stream uint64
	for range n {
		delta, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return nil, ErrBadPos
		}
		seq, k2 := binary.Uvarint(b[k1:])
		if k2 <= 0 {
			return nil, ErrBadPos
		}
		b = b[k1+k2:]
		if delta == 0 && len(f) > 0 || stream+delta < stream || seq == 0 {
			return nil, ErrBadPos // not ascending, overflowing, or a seq that cannot exist
		}
		stream += delta
		if stream == 0 {
			return nil, ErrBadPos
		}
		f = append(f, Mark{stream, seq})
	}
	if len(b) != 0 {
		return nil, ErrBadPos
	}
	return f, nil
}
