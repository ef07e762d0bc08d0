package transport

// batch is a list of shared frames taken from a connection's queue in one go
// and written together, with the position reached by partial writes.
// Batches are pooled so a Send in steady state does not allocate.
type batch struct {
	frames [][]byte
	bytes  int // total bytes of frames
	i, off int // next byte to write: frames[i][off]
}

// maxPooledFrames keeps a slow consumer's huge batch out of the pool.
const maxPooledFrames = 4096

func (b *batch) push(f []byte) {
	b.frames = append(b.frames, f)
	b.bytes += len(f)
}

func (b *batch) done() bool { return b.i == len(b.frames) }

// fill copies bytes from the write position into dst without advancing.
func (b *batch) fill(dst []byte) int {
	n := 0
	i, off := b.i, b.off
	for n < len(dst) && i < len(b.frames) {
		c := copy(dst[n:], b.frames[i][off:])
		n += c
		off += c
		if off == len(b.frames[i]) {
			i, off = i+1, 0
		}
	}
	return n
}

// advance moves the write position n bytes forward.
func (b *batch) advance(n int) {
	for n > 0 && b.i < len(b.frames) {
		rest := len(b.frames[b.i]) - b.off
		if n < rest {
			b.off += n
			return
		}
		n -= rest
		b.i, b.off = b.i+1, 0
	}
}

// reset drops the frame references (they are shared, other connections may
// still hold them, and the GC must be able to free them) for reuse.
func (b *batch) reset() {
	clear(b.frames)
	b.frames = b.frames[:0]
	b.bytes, b.i, b.off = 0, 0, 0
}
