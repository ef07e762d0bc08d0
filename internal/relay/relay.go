// Package relay is the contract between a hub and the cluster it runs in:
// what the hub asks of the rest of the cluster (Relay) and what the cluster
// hands back to the hub (Receiver). Package hub uses it, package cluster
// implements it, and neither imports the other. It is internal so that none
// of this plumbing is public API: an embedding program passes a
// *cluster.Cluster to hub.Config.Cluster and never calls these methods.
package relay

import (
	"context"
	"log/slog"

	"github.com/meshcast/meshcast/internal/history"
)

// Cluster is what hub.New accepts as Config.Cluster. Attach is called once,
// by hub.New: the cluster starts (memberlist, peer links, the join) and
// from then on hands what it receives to r. The hub owns the returned Relay
// and shuts it down with itself.
type Cluster interface {
	Attach(r Receiver, log *slog.Logger) (Relay, error)
	// Shutdown releases a cluster that was never attached (hub.New failed
	// before Attach); after Attach the Relay's Shutdown is used.
	Shutdown(ctx context.Context) error
}

// Receiver is the hub as the cluster sees it.
type Receiver interface {
	// Deliver hands over a publish that another node made, for every local
	// subscriber but the client except (if any). A publish on a channel
	// with history carries its stamp; the hub stores it before returning,
	// since the cluster then tells the publishing node it is stored. It is
	// called from a peer link's reader goroutine, in link order, and must
	// not block; data is a valid JSON value, only valid during the call.
	Deliver(ch string, data []byte, except string, stamp *Stamp)

	// History answers a peer that asks what this node holds of ch after a
	// frontier, up to about budget bytes of data (history.Store.After). It
	// is called from a peer link's reader goroutine and must not block.
	History(ch string, after history.Frontier, budget int) history.Result

	// Gap reports channels on which this node may have missed publishes
	// (a peer link broke, a peer was declared dead or came back, a peer
	// dropped frames for us). The hub tells their local subscribers. It is
	// called from the cluster's goroutines, never under the hub's locks,
	// and must not block; chs is only valid during the call.
	Gap(chs []string)

	PresenceReceiver // presence.go
}

// Ticket identifies the interest change a subscribe caused (or the one
// still in force), for waiting until every peer has it.
type Ticket uint64

// Stamp is where a publish on a channel with history stands in its
// stream: the publishing hub's stream for the channel, the publish's
// number in it, and the publishing node's clock (Unix milliseconds), which
// orders history across streams.
type Stamp struct {
	Stream, Seq uint64
	Time        int64
}

// Relay is the rest of the cluster as the hub sees it. Every method may be
// called from any goroutine; none blocks on the network except the Await
// and Ready methods, which take a context.
type Relay interface {
	// Name is this node's name, unique in the cluster.
	Name() string

	// Publish forwards a publish made on this node to every peer that
	// wants ch. It never blocks: a full or down link drops and counts, and
	// the peer's subscribers are told with a gap. Calls for one channel
	// from one publisher come in publish order. data is never modified
	// after the call, so the relay may keep it. except, if not empty, is a
	// client id no node delivers it to. A stamped publish (a channel with
	// history) is stored by every peer it is sent to, and by backups when
	// no peer wants ch; stored, if not nil, is called once, from a cluster
	// goroutine or at once, with nil when enough peers hold it for it to
	// survive any one node's death, or with why not.
	Publish(ch string, data []byte, except string, stamp *Stamp, stored func(error))

	// Fetch asks every live peer what it holds of ch after a frontier (up
	// to about budget bytes each; ask again after what came when More is
	// set) and returns their answers, or an error if ctx ended first. A
	// peer that does not answer in time is left out; complete says whether
	// enough answered that every publish stored by the configured number
	// of replicas is among the answers (all live peers but replicas-1).
	Fetch(ctx context.Context, ch string, after history.Frontier, budget int) (answers []history.Result, complete bool, err error)

	// Subscribe records one more local subscriber of ch (the first one
	// tells every peer) and returns the ticket to wait for, and whether
	// every live peer has confirmed it already (the common case, which
	// needs no wait). Unsubscribe records one fewer (the last one tells
	// every peer, and on a presence channel drops the other nodes'
	// entries of it). Every Subscribe is followed by exactly one
	// Unsubscribe of the same channel; calls need no other ordering.
	// presence says ch is a presence channel (the same for every call of
	// one channel): peers then send this node their entries of it, and a
	// ticket of it is confirmed only once every live peer's entries have
	// arrived (presence.go).
	Subscribe(ch string, presence bool) (t Ticket, confirmed bool)
	Unsubscribe(ch string)

	// Confirmed reports whether every live peer has acknowledged t of ch,
	// that is whether every later publish anywhere reaches this node (and,
	// on a presence channel, whether this node holds every peer's entries).
	Confirmed(ch string, t Ticket) bool
	// AwaitConfirmed blocks until Confirmed(ch, t), ctx is cancelled, or the
	// relay's interest timeout or ctx's deadline passes, whichever comes
	// first (an error). On a timeout (either) the relay keeps watching:
	// when the late peers confirm, it reports a Gap on ch, since publishes
	// made there meanwhile did not reach this node. A deadline already
	// past settles at once: the hub uses one for the subscribes that have
	// waited as long as one that timed out.
	AwaitConfirmed(ctx context.Context, ch string, t Ticket) error

	// Standing is nil while this node is a member in good standing, and
	// otherwise says why not (joining, isolated from the members it
	// expects, re-verifying after a stall, shutting down). The hub refuses
	// new clients, subscribes and publishes meanwhile. It is cheap.
	Standing() error
	// Ready blocks until Standing is nil or ctx ends.
	Ready(ctx context.Context) error

	// Shutdown flushes the peer links, leaves the cluster and stops every
	// goroutine of the relay, within ctx. The hub calls it once its own
	// clients are closed.
	Shutdown(ctx context.Context) error

	PresenceRelay // presence.go
}
