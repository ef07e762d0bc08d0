package cluster

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"
)

// frameType is the byte after a frame's length prefix.
// Only append: the numbers are the protocol.
type frameType uint8

const (
	frameHello     frameType = 1  // handshake, dialer -> acceptor: version, cluster, name, nonce
	frameChallenge frameType = 2  // handshake, acceptor -> dialer: its nonce
	frameProof     frameType = 3  // handshake, dialer -> acceptor: dialer's proof
	frameWelcome   frameType = 4  // handshake, acceptor -> dialer: accepted with its proof, or why not
	framePublish   frameType = 5  // publish made on the dialer: channel, payload
	frameAdd       frameType = 6  // dialer gained interest in a channel
	frameRemove    frameType = 7  // dialer lost interest in a channel
	frameSnapshot  frameType = 8  // dialer's whole interest set, first thing on a link (chunked)
	frameAck       frameType = 9  // acceptor -> dialer: highest interest seq processed
	frameBye       frameType = 10 // dialer is leaving: everything it queued came before this
	frameGap       frameType = 11 // dialer dropped publishes for these channels (full queue)
	frameMark      frameType = 12 // dialer asks for an ack of seq (re-verification after a stall)
	frameStamped   frameType = 13 // publish on a channel with history: channel, except, stamp, payload
	frameStored    frameType = 14 // acceptor -> dialer: stamped publishes stored, counted on this link
	frameFetch     frameType = 15 // dialer asks for the history of a channel after a frontier
	frameFetched   frameType = 16 // acceptor -> dialer: the answer to a fetch
)

// Presence (presence.go); only append here too.
const (
	framePresence frameType = 20 // dialer's presence on a channel the acceptor wants changed: an entry added or removed
	_             frameType = 21 // protocol 4: the dialer's whole presence; retired
	// dialer's entries of channels the acceptor wants (chunked): at link-up
	// all of them, and one channel when the acceptor comes to want it
	framePresenceChans  frameType = 22
	framePresenceQuery  frameType = 23 // dialer asks for the acceptor's own entries of a channel
	framePresenceAnswer frameType = 24 // acceptor -> dialer: the answer to a query (chunked)
)

// headerLen is the length prefix; the prefix counts the type byte and body.
const headerLen = 4

// handshakeMaxFrame bounds frames before the peer is authenticated.
const handshakeMaxFrame = 4 << 10

// maxNameLen bounds node and cluster names in the handshake.
const maxNameLen = 256

var (
	errMalformed = errors.New("malformed frame")
	errTooLarge  = errors.New("frame too large")
)

// frameReader reads length-prefixed frames from a large bufio.Reader. A frame
// that fits the buffer is returned in place (no allocation); bigger frames go
// through a reused scratch buffer.
type frameReader struct {
	r       *bufio.Reader
	max     int
	pending int // bytes of the last frame still to discard
	scratch []byte
}

func newFrameReader(r *bufio.Reader, max int) *frameReader {
	return &frameReader{r: r, max: max}
}

// release discards the last frame returned, so the bufio.Reader holds only
// bytes not read yet.
func (fr *frameReader) release() error {
	if fr.pending > 0 {
		if _, err := fr.r.Discard(fr.pending); err != nil {
			return err
		}
		fr.pending = 0
	}
	return nil
}

// next returns the next frame. body is valid until the next call.
// A clean EOF between frames is io.EOF; anything else is wrapped.
func (fr *frameReader) next() (frameType, []byte, error) {
	if err := fr.release(); err != nil {
		return 0, nil, err
	}
	hdr, err := fr.r.Peek(headerLen)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: empty frame", errMalformed)
	}
	if uint64(n) > uint64(fr.max) {
		return 0, nil, fmt.Errorf("%w: %d bytes, limit %d", errTooLarge, n, fr.max)
	}
	if _, err := fr.r.Discard(headerLen); err != nil {
		return 0, nil, err
	}
	var b []byte
	if int(n) <= fr.r.Size() {
		b, err = fr.r.Peek(int(n))
		fr.pending = len(b)
	} else {
		if cap(fr.scratch) < int(n) {
			fr.scratch = make([]byte, n)
		}
		b = fr.scratch[:n]
		_, err = io.ReadFull(fr.r, b)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return frameType(b[0]), b[1:], nil
}

// appendFrame appends a complete frame (prefix, type, body) to dst.
func appendFrame(dst []byte, t frameType, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+1))
	dst = append(dst, byte(t))
	return append(dst, body...)
}

// encodeMsg encodes a control message (msgpack map) as a frame.
func encodeMsg(t frameType, v any) ([]byte, error) {
	body, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode frame %d: %w", t, err)
	}
	return appendFrame(make([]byte, 0, headerLen+1+len(body)), t, body), nil
}

// decodeMsg decodes a control message body; any failure is errMalformed.
func decodeMsg(body []byte, v any) (err error) {
	if err := checkMsgpack(body); err != nil {
		return fmt.Errorf("%w: %w", errMalformed, err)
	}
	if err := msgpack.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %w", errMalformed, err)
	}
	return nil
}

// Control message bodies. Short keys keep frames small; unknown keys are
// ignored so fields can be added without a version bump.
type interestMsg struct {
	Ch  string `msgpack:"c"`
	Seq uint64 `msgpack:"s"`
	// Presence: ch is a presence channel; the acceptor answers the add
	// with its entries of ch (presence.go).
	Presence bool `msgpack:"p,omitempty"`
}

type snapshotMsg struct {
	Seq  uint64   `msgpack:"s"`
	Chs  []string `msgpack:"c"`
	Done bool     `msgpack:"d"` // last chunk: the acceptor acks Seq after it
	// Epoch identifies the dialer's process (random at start): a new epoch
	// is a restarted node.
	Epoch uint64 `msgpack:"e"`
	// Fresh: the dialer's process had published nothing before this link
	// came up, so its absence cost the acceptor nothing.
	Fresh bool `msgpack:"f,omitempty"`
	// Pres lists the presence channels among Chs, as interestMsg.Presence.
	Pres []string `msgpack:"p,omitempty"`
}

// ackMsg is an ack (acceptor -> dialer) or a mark (dialer -> acceptor).
type ackMsg struct {
	Seq uint64 `msgpack:"s"`
}

// fetchMsg asks for what the acceptor holds of a channel after a frontier
// (pairs of stream and seq), up to about Budget bytes of data.
type fetchMsg struct {
	ID     uint64      `msgpack:"i"`
	Ch     string      `msgpack:"c"`
	After  [][2]uint64 `msgpack:"a,omitempty"`
	Budget int         `msgpack:"b"`
}

// fetchedMsg answers a fetchMsg: messages as (stream, seq, time, data),
// spans as (stream, first, last, before time), and whether more is held.
type fetchedMsg struct {
	ID    uint64          `msgpack:"i"`
	Msgs  []fetchedRecord `msgpack:"m,omitempty"`
	Spans [][4]int64      `msgpack:"p,omitempty"`
	More  bool            `msgpack:"x,omitempty"`
}

type fetchedRecord struct {
	_msgpack struct{} `msgpack:",as_array"`
	Stream   uint64
	Seq      uint64
	Time     int64
	Data     []byte
}

// gapMsg lists the channels of publishes the dialer dropped for the
// acceptor; All when it lost count.
type gapMsg struct {
	Chs []string `msgpack:"c,omitempty"`
	All bool     `msgpack:"a,omitempty"`
}

// interestFrame encodes an add or remove by hand: it is built under the
// interest lock on every first subscribe and last unsubscribe of a
// channel, so it must be cheap. Any msgpack library decodes it as
// interestMsg (a 2-entry map, keys "c" and "s").
func interestFrame(t frameType, ch string, seq uint64) []byte {
	return interestFrameAs(t, ch, seq, false)
}

// interestFrameAs is interestFrame with Presence set when presence is.
func interestFrameAs(t frameType, ch string, seq uint64, presence bool) []byte {
	size := headerLen + 1 + 1 + 2 + strHeaderLen(len(ch)) + len(ch) + 2 + 9
	keys := byte(0x82)
	if presence {
		size += 3
		keys = 0x83
	}
	b := make([]byte, headerLen, size)
	binary.BigEndian.PutUint32(b, uint32(size-headerLen))
	b = append(b, byte(t), keys, 0xa1, 'c')
	b = appendStr(b, ch)
	b = append(b, 0xa1, 's', 0xcf)
	b = binary.BigEndian.AppendUint64(b, seq)
	if presence {
		b = append(b, 0xa1, 'p', 0xc3)
	}
	return b
}

// snapshotFrames encodes the interest set as chunks that each fit in a frame
// of max bytes; the last chunk has Done set. Every chunk carries seq, the
// dialer's epoch and whether it is fresh.
func snapshotFrames(chs []string, pres map[string]bool, head snapshotMsg, max int) ([][]byte, error) {
	var frames [][]byte
	budget := max / 2 // headroom for msgpack overhead
	var chunk, presChunk []string
	size := 0
	flush := func(done bool) error {
		m := head
		m.Chs, m.Pres, m.Done = chunk, presChunk, done
		f, err := encodeMsg(frameSnapshot, m)
		if err != nil {
			return err
		}
		frames = append(frames, f)
		chunk, presChunk, size = nil, nil, 0
		return nil
	}
	for _, ch := range chs {
		n := len(ch) + 8
		if pres[ch] {
			n *= 2 // named twice
		}
		if size+n > budget && len(chunk) > 0 {
			if err := flush(false); err != nil {
				return nil, err
			}
		}
		chunk = append(chunk, ch)
		if pres[ch] {
			presChunk = append(presChunk, ch)
		}
		size += n
	}
	if err := flush(true); err != nil {
		return nil, err
	}
	return frames, nil
}
