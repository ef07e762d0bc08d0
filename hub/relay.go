package hub

import "context"

// Relay is the hub's view of the rest of the cluster. Package cluster
// satisfies it; a hub without one (single node, tests) uses a relay that
// does nothing. The hub never imports the cluster: cmd or an embedding
// program wires the two.
type Relay interface {
	// Publish forwards a publish made on this node (by a client or by
	// Hub.Publish) to the peers that want ch. It is called on the
	// publisher's goroutine, in publish order, and must not block on the
	// network. data is a valid JSON value that is never modified after the
	// call, so the relay may keep it.
	Publish(ch string, data []byte)

	// Interest reports that this node gained its first local subscriber of
	// ch (on) or lost its last (!on). Calls for one channel come in order,
	// under the hub's registry lock, so it must not block.
	Interest(ch string, on bool)

	// AwaitInterest returns once every live peer has acknowledged this
	// node's interest in ch, so that anything published anywhere after it
	// returns reaches this node. It returns an error when ctx ends or the
	// relay gives up waiting; the hub acks the subscribe anyway and counts
	// it. It is called on a goroutine of its own.
	AwaitInterest(ctx context.Context, ch string) error

	// InterestReady reports whether AwaitInterest would return at once, so
	// that most subscribes are acked without a goroutine to wait. It must
	// not block.
	InterestReady(ch string) bool
}

// localRelay is the relay of a hub that is alone.
type localRelay struct{}

func (localRelay) Publish(string, []byte)                      {}
func (localRelay) Interest(string, bool)                       {}
func (localRelay) AwaitInterest(context.Context, string) error { return nil }
func (localRelay) InterestReady(string) bool                   { return true }
