package hub

import (
	"context"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/relay"
)

// localRelay is the relay of a hub that is alone: every node is this one,
// so everything is confirmed at once and the node is always in standing.
type localRelay struct{ name string }

var _ relay.Relay = localRelay{}

func (r localRelay) Name() string { return r.name }
func (localRelay) Publish(_ string, _ []byte, _ string, _ *relay.Stamp, stored func(error)) {
	if stored != nil {
		stored(nil) // alone, this node's copy is all there is
	}
}
func (localRelay) Fetch(context.Context, string, history.Frontier, int) ([]history.Result, bool, error) {
	return nil, true, nil
}
func (localRelay) Subscribe(string, bool) (relay.Ticket, bool)                { return 0, true }
func (localRelay) Unsubscribe(string)                                         {}
func (localRelay) Confirmed(string, relay.Ticket) bool                        { return true }
func (localRelay) AwaitConfirmed(context.Context, string, relay.Ticket) error { return nil }
func (localRelay) Standing() error                                            { return nil }
func (localRelay) Ready(context.Context) error                                { return nil }
func (localRelay) Shutdown(context.Context) error                             { return nil }

// receiver is the hub as its cluster sees it (relay.Receiver). It is not
// the Hub itself, so that delivering "from a peer" is not public API.
type receiver struct{ h *Hub }

var _ relay.Receiver = receiver{}

func (r receiver) Deliver(ch string, data []byte, except string, st *relay.Stamp) {
	if st != nil {
		r.h.deliverStamped(ch, data, except, *st)
		return
	}
	r.h.deliver(ch, data, except)
}

func (r receiver) History(ch string, after history.Frontier, budget int) history.Result {
	return r.h.store.After(ch, after, budget)
}

func (r receiver) Gap(chs []string) { r.h.gap(chs) }
