package cluster

import (
	"context"
	"time"

	"github.com/meshcast/meshcast/internal/history"
)

// fetches are the history requests this node sent and waits answers for.
type fetches = pending[chan history.Result]

// maxFetchBudget keeps an answer well inside a frame.
func (c *Cluster) maxFetchBudget() int { return c.cfg.MaxFrameSize / 2 }

// fetch asks every live peer with a link up what it holds of ch after a
// frontier, waits for their answers (at most InterestTimeout), and says
// whether enough answered: all but Replicas-1, since every publish stored
// was stored by Replicas nodes (a peer just killed is still "live" until
// memberlist declares it dead, and must not make every recovery partial).
func (c *Cluster) fetch(ctx context.Context, ch string, after history.Frontier, budget int) ([]history.Result, bool, error) {
	budget = min(max(budget, 1), c.maxFetchBudget())
	peers := c.peerList()
	ids := make(map[uint64]chan history.Result, len(peers))
	missing := 0
	for _, p := range peers {
		oc := p.out.Load()
		if oc == nil {
			missing++
			continue
		}
		id, ch2 := c.fetches.open(func(uint64) chan history.Result { return make(chan history.Result, 1) })
		f, err := encodeMsg(frameFetch, fetchMsg{ID: id, Ch: ch, After: frontierPairs(after), Budget: budget})
		if err != nil || !oc.q.pushAll([][]byte{f}) {
			c.fetches.close(id)
			missing++
			continue
		}
		ids[id] = ch2
	}
	defer func() {
		for id := range ids {
			c.fetches.close(id)
		}
	}()
	timer := time.NewTimer(c.cfg.InterestTimeout)
	defer timer.Stop()
	var answers []history.Result
	tolerated := max(c.cfg.Replicas-1, 0)
	expired := false
	for _, ch2 := range ids {
		if !expired {
			select {
			case r := <-ch2:
				answers = append(answers, r)
				continue
			case <-timer.C:
				expired = true
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
		}
		// Past the timeout, take what has come without waiting: a peer
		// that did not answer must not lose the others' answers.
		select {
		case r := <-ch2:
			answers = append(answers, r)
		default:
		}
	}
	missing += len(ids) - len(answers)
	return answers, missing <= tolerated, nil
}

// fetched hands a peer's answer to the fetch that asked.
func (c *Cluster) fetched(m *fetchedMsg) {
	r := history.Result{More: m.More}
	for _, rec := range m.Msgs {
		r.Msgs = append(r.Msgs, history.Msg{Stream: rec.Stream, Seq: rec.Seq, Time: rec.Time, Data: rec.Data})
	}
	for _, sp := range m.Spans {
		r.Spans = append(r.Spans, history.Span{Stream: uint64(sp[0]), First: uint64(sp[1]), Last: uint64(sp[2]), BeforeTime: sp[3]})
	}
	c.fetches.answer(m.ID, func(ch chan history.Result) bool {
		ch <- r // buffered for the one answer
		return true
	})
}

// maxFetchStreams bounds the frontier of a fetch (a position names at
// most 1,024 streams).
const maxFetchStreams = 1024

// serveFetch answers a peer's fetch from this node's history.
func (c *Cluster) serveFetch(m *fetchMsg) []byte {
	if len(m.After) > maxFetchStreams {
		// No position names that many streams: an answer with no spans,
		// which the asker counts as incomplete.
		f, _ := encodeMsg(frameFetched, fetchedMsg{ID: m.ID})
		return f
	}
	after := make(history.Frontier, 0, len(m.After))
	for _, pr := range m.After {
		after = after.With(pr[0], pr[1])
	}
	r := c.recv.History(m.Ch, after, min(max(m.Budget, 1), c.maxFetchBudget()))
	out := fetchedMsg{ID: m.ID, More: r.More}
	for _, msg := range r.Msgs {
		out.Msgs = append(out.Msgs, fetchedRecord{Stream: msg.Stream, Seq: msg.Seq, Time: msg.Time, Data: msg.Data})
	}
	for _, sp := range r.Spans {
		out.Spans = append(out.Spans, [4]int64{int64(sp.Stream), int64(sp.First), int64(sp.Last), sp.BeforeTime})
	}
	f, err := encodeMsg(frameFetched, out)
	if err != nil || len(f)-headerLen > c.cfg.MaxFrameSize {
		// Cannot happen within the limits (a window is at most 10,000
		// messages of at most MaxDataSize), but if it did: an answer with
		// no spans, which the asker counts as incomplete.
		f, _ = encodeMsg(frameFetched, fetchedMsg{ID: m.ID})
	}
	return f
}

func frontierPairs(f history.Frontier) [][2]uint64 {
	out := make([][2]uint64, len(f))
	for i, m := range f {
		out[i] = [2]uint64{m.Stream, m.Seq}
	}
	return out
}
