package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshcast/meshcast/internal/history"
	"github.com/meshcast/meshcast/internal/logsample"
	"github.com/meshcast/meshcast/internal/relay"
	"github.com/meshcast/meshcast/transport"
)

// Hub is a node's set of client sessions and channels. It is an
// http.Handler for the WebSocket endpoint: mount it where clients connect.
type Hub struct {
	cfg       Config
	log       *slog.Logger
	relay     relay.Relay
	transport *transport.Server
	reg       *registry
	events    events
	idPrefix  string
	nextID    atomic.Uint64
	metrics   metrics
	sec       hubSecurity
	sampled   *logsample.Sampler[logKind] // sampledlog.go: which refusals and slow consumers are logged
	liveCfg   atomic.Pointer[Live]        // live.go: what UpdateSecurity may change
	store     *history.Store              // channels with history (history.go)
	hist      histState
	pres      presenceTable // presence.go
	online    onlineHooks   // online.go

	ctx    context.Context // ends at Shutdown; bounds relay waits
	cancel context.CancelFunc
	wg     sync.WaitGroup // interest waits, in-process subscriptions, the expiry sweep
	closed atomic.Bool
	// warnedHijack: the error for a ResponseWriter that cannot be
	// hijacked was logged (upgradeFailed).
	warnedHijack atomic.Bool
}

type metrics struct {
	sessions         atomic.Int64
	connects         atomic.Uint64
	publishes        atomic.Uint64
	remoteDeliveries atomic.Uint64
	deliveries       atomic.Uint64 // of publishes made on this node
	peerDeliveries   atomic.Uint64 // of publishes from other nodes
	subscriptions    atomic.Int64  // client subscriptions, every session's together
	badRequests      atomic.Uint64
	interestTimeouts atomic.Uint64
	refused          atomic.Uint64
	unavailable      atomic.Uint64 // requests refused with 503: not in good standing
	gaps             atomic.Uint64 // gap frames sent to subscribers
	presenceEvents   atomic.Uint64 // join and leave frames sent to subscribers

	refills           atomic.Uint64 // catch-ups of a channel with history after a gap
	refillsIncomplete atomic.Uint64 // those that could not fill every hole (a gap frame went out)
	refilled          atomic.Uint64 // messages a refill or a recovery fetched from the peers and delivered here
	recoveries        atomic.Uint64 // subscribes with since
	recoveriesPartial atomic.Uint64 // those acked with recovered:false
	notStored         atomic.Uint64 // publishes on channels with history refused: not held by enough nodes

	// refused upgrades by reason: refused counts origin, limit, auth and
	// upgrade together; refusedUnavailable, the 503s while not in good
	// standing, are in unavailable as well
	refusedOrigin, refusedLimit, refusedAuth, refusedUnavailable, refusedUpgrade atomic.Uint64
	errs                                                                         errCodes // err frames sent, by code
	refreshes, refreshesRefused                                                  atomic.Uint64
}

// New builds a hub, starts its transport and, with cfg.Cluster, starts the
// cluster with this hub as its receiver. With a cluster the hub serves
// once the node has joined (Ready).
func New(cfg Config) (*Hub, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		releaseCluster(cfg.Cluster)
		return nil, err
	}
	ts, err := transport.NewServer(cfg.Transport)
	if errors.Is(err, transport.ErrInvalidConfig) {
		err = fmt.Errorf("%w: Transport: %w", ErrInvalidConfig, err)
	}
	if err != nil {
		releaseCluster(cfg.Cluster)
		return nil, fmt.Errorf("hub: %w", err)
	}
	var prefix [4]byte
	_, _ = rand.Read(prefix[:])
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		cfg:       cfg,
		log:       cfg.Logger,
		relay:     localRelay{name: cfg.NodeName},
		transport: ts,
		reg:       newRegistry(),
		pres:      newPresenceTable(),
		events:    newEvents(&cfg),
		idPrefix:  hex.EncodeToString(prefix[:]),
		store:     history.New(cfg.HistoryMemory),
		sampled:   &logsample.Sampler[logKind]{Window: sampleEvery},
		hist:      histState{chans: make(map[string]*chanState)},
		ctx:       ctx,
		cancel:    cancel,
	}
	if err := h.attach(cfg.Cluster); err != nil {
		cancel()
		_ = ts.Shutdown(context.Background())
		return nil, err
	}
	h.initSecurity()
	h.startOnline()
	h.wg.Add(1)
	go h.sweepHistory()
	return h, nil
}

// attach starts the cluster with this hub as its receiver.
func (h *Hub) attach(cl relay.Cluster) error {
	if cl == nil {
		return nil
	}
	r, err := cl.Attach(receiver{h}, h.log)
	if err != nil {
		releaseCluster(cl)
		return fmt.Errorf("hub: start cluster: %w", err)
	}
	if name := h.cfg.NodeName; name != "" && name != r.Name() {
		_ = r.Shutdown(context.Background())
		return fmt.Errorf("%w: NodeName %q is not the cluster's name %q: name the node in cluster.Config only", ErrInvalidConfig, name, r.Name())
	}
	h.cfg.NodeName = r.Name()
	h.relay = r
	return nil
}

// releaseCluster shuts down a cluster hub.New will not use.
func releaseCluster(cl relay.Cluster) {
	if !isNilCluster(cl) {
		_ = cl.Shutdown(context.Background())
	}
}

// ServeHTTP upgrades a client to the WebSocket protocol. Origin, limits
// and the Authenticator are checked before the upgrade (admit, auth.go).
// It hijacks the connection through http.ResponseController, so a
// middleware that wraps the ResponseWriter must give it an Unwrap()
// http.ResponseWriter method (without one every upgrade fails with HTTP
// 500, logged once at error level); http.TimeoutHandler cannot wrap it.
// The connection then belongs to the hub: http.Server.Shutdown does not
// wait for it or close it, Hub.Shutdown does.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.closed.Load() {
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	if err := h.relay.Standing(); err != nil {
		h.metrics.unavailable.Add(1)
		h.metrics.refusedUnavailable.Add(1)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "node not ready: "+err.Error())
		return
	}
	if !h.checkUpgrade(w, r) {
		return
	}
	ident, ok := h.admit(w, r)
	if !ok {
		return
	}
	s := &session{hub: h}
	s.client = Client{id: h.newClientID(), remote: r.RemoteAddr, origin: r.Header.Get("Origin"), s: s}
	s.client.ident.Store(ident)
	if _, err := h.transport.Upgrade(w, r, s); err != nil {
		h.sec.conns.release(r.RemoteAddr) // no OnClose will come
		h.upgradeFailed(w, r, err)
	}
}

// upgradeFailed logs a failed handshake: at debug, since any client can
// send a broken one, except a ResponseWriter that cannot be hijacked. That
// is the service's own mux or middleware, and no client will ever connect
// through it, so the first one is an error that says how to fix it.
func (h *Hub) upgradeFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, transport.ErrNotHijacker) && h.warnedHijack.CompareAndSwap(false, true) {
		h.log.Error("WebSocket upgrades fail: the http.ResponseWriter given to the hub cannot be hijacked; "+
			"a middleware that wraps it needs an Unwrap() http.ResponseWriter method, and /ws must be served over HTTP/1.1",
			slog.String("path", r.URL.Path), slog.String("writer", fmt.Sprintf("%T", w)), slog.Any("err", err))
		return
	}
	h.log.Debug("upgrade failed", slog.String("remote", r.RemoteAddr), slog.Any("err", err))
}

func (h *Hub) newClientID() string {
	return h.idPrefix + strconv.FormatUint(h.nextID.Add(1), 36)
}

// Publish sends data, which must be one valid JSON value, to every
// subscriber of ch on every node (but a client opts exclude). It returns
// once the local deliveries are queued and the publish is handed to every
// peer that wants ch; it does not block on any subscriber.
func (h *Hub) Publish(ctx context.Context, ch string, data []byte, opts ...PublishOption) error {
	return h.Broadcast(ctx, []string{ch}, data, opts...)
}

// serving reports why the hub cannot take a request now: closed, or not a
// member in good standing of its cluster.
func (h *Hub) serving(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := h.standing()
	if errors.Is(err, ErrUnavailable) {
		h.metrics.unavailable.Add(1) // a request refused
	}
	return err
}

// standing is serving without a context, and without counting: asking
// is not being refused.
func (h *Hub) standing() error {
	if h.closed.Load() {
		return ErrClosed
	}
	if err := h.relay.Standing(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// publish encodes the msg frame once, hands it to the relay, and queues
// it to every local subscriber but the client except. On a channel with
// history stored is called once enough nodes hold the publish (or with why
// not); elsewhere it is called at once with nil.
func (h *Hub) publish(ch string, data []byte, except string, stored func(error)) {
	start := h.samplePublish(h.metrics.publishes.Add(1))
	if lim, ok := h.limits(ch); ok {
		h.publishStamped(ch, lim, data, except, stored)
		if !start.IsZero() {
			h.cfg.Observer.PublishQueued(time.Since(start))
		}
		return
	}
	frame, kept := msgFrame(ch, data, "")
	// Peers first (as Phoenix.PubSub broadcasts): handing it to the links
	// is a queue push, while the local fan-out claims every subscriber's
	// connection in turn, milliseconds on a node with tens of thousands,
	// which subscribers on other nodes would otherwise wait for. Order
	// per publisher holds either way: each path keeps its own.
	h.relay.Publish(ch, kept, except, nil, nil)
	h.metrics.deliveries.Add(h.fanOut(ch, frame, kept, except, ""))
	if !start.IsZero() {
		h.cfg.Observer.PublishQueued(time.Since(start))
	}
	if stored != nil {
		stored(nil)
	}
}

// deliver takes a publish that arrived from another node: it goes to local
// subscribers only, never back to the cluster. data is a valid JSON value,
// only read during the call.
func (h *Hub) deliver(ch string, data []byte, except string) {
	if isReserved(ch) {
		h.deliverSystem(ch, data)
		return
	}
	h.metrics.remoteDeliveries.Add(1)
	frame, kept := msgFrame(ch, data, "")
	h.metrics.peerDeliveries.Add(h.fanOut(ch, frame, kept, except, ""))
}

// fanOut queues frame to every client subscriber of ch (but except) and
// data to every in-process one (with pos, on a channel with history).
// Both are shared and never modified. It returns how many it queued, for
// the caller's delivery counter.
func (h *Hub) fanOut(ch string, frame, data []byte, except, pos string) uint64 {
	subs, locals := h.reg.snapshot(ch)
	n := len(subs)
	if len(subs) > 0 {
		// One Burst for the whole fan-out: idle connections are written at
		// once by every writer, busy ones queued (transport.Server.Burst).
		cp := connsPool.Get().(*[]*transport.Conn)
		conns := (*cp)[:0]
		for _, s := range subs {
			if except != "" && s.client.id == except {
				n--
				continue
			}
			conns = append(conns, s.conn)
		}
		h.transport.Burst(conns, frame)
		clear(conns)
		*cp = conns[:0]
		connsPool.Put(cp)
	}
	for _, l := range locals {
		l.push(Message{Channel: ch, Data: data, Pos: pos})
	}
	return uint64(n + len(locals))
}

// connsPool holds the connection lists fanOut hands to Burst, so a
// fan-out in steady state allocates only its frame.
var connsPool = sync.Pool{New: func() any { return new([]*transport.Conn) }}

// gap handles the cluster's report that publishes on chs may have been
// missed here (a broken link, a dead peer, a dropped frame): channels with
// history are refilled from the peers, the others' subscribers are told.
// Reserved channels have no clients to tell.
func (h *Hub) gap(chs []string) {
	for _, ch := range h.refill(chs) {
		if !isReserved(ch) {
			h.sendGaps(ch)
		}
	}
}

// sendGaps tells the local subscribers of ch that they may have missed
// publishes on it. Subscribes not acked yet are skipped: nothing was
// promised to them.
func (h *Hub) sendGaps(ch string) {
	subs, locals := h.reg.snapshot(ch)
	for _, l := range locals {
		l.push(Message{Channel: ch, Gap: true})
	}
	if len(subs) == 0 {
		return
	}
	frame := gapFrame(ch)
	for _, s := range subs {
		if s.confirmedOn(ch) {
			s.send(frame)
			h.metrics.gaps.Add(1)
		}
	}
}

// Ready blocks until the node is a member in good standing of its cluster
// (at once without a cluster), or ctx ends.
func (h *Hub) Ready(ctx context.Context) error {
	if h.closed.Load() {
		return ErrClosed
	}
	return h.relay.Ready(ctx)
}

// Standing is nil while the node serves: not closed, and a member in good
// standing of its cluster. Otherwise it says why (for readiness probes:
// unlike a refused request, asking is not counted as unavailable).
func (h *Hub) Standing() error {
	return h.standing()
}

func (h *Hub) sessionOpened() {
	h.metrics.sessions.Add(1)
	h.metrics.connects.Add(1)
}

func (h *Hub) sessionClosed(s *session, err error) {
	h.metrics.sessions.Add(-1)
	ce, _ := err.(*transport.CloseError)
	if ce != nil && ce.Code == transport.ClosePolicyViolation && ce.Reason == transport.ReasonSlowConsumer {
		h.logSlowConsumer(&s.client)
	}
	h.log.Debug("client gone", slog.String("client", s.client.id), slog.Any("why", err))
	h.events.disconnected(&s.client, ce)
}

// Shutdown refuses new clients, closes every connection with 1001 "going
// away", then leaves the cluster (flushing the peer links first) and waits
// for the hub's goroutines. When ctx ends first, the connections left are
// closed without flushing and it returns an error wrapping ctx's, but only
// once the hooks already running (OnDisconnect...) have returned: so a
// hook must not call Shutdown, which would wait for itself; start it on a
// goroutine of its own. It is idempotent; a later call waits for what an
// earlier one left running.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.closed.Store(true)
	err := errors.Join(h.transport.Shutdown(ctx), h.relay.Shutdown(ctx))
	h.cancel()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// Stats is a snapshot of the hub's counters.
type Stats struct {
	Sessions         int64  `json:"sessions"`
	Connects         uint64 `json:"connects"`
	Channels         int    `json:"channels"`
	Publishes        uint64 `json:"publishes"`
	RemoteDeliveries uint64 `json:"remote_publishes"`
	Deliveries       uint64 `json:"deliveries"`      // every local delivery, PeerDeliveries included
	PeerDeliveries   uint64 `json:"peer_deliveries"` // deliveries of publishes from other nodes
	Subscriptions    int64  `json:"subscriptions"`   // client subscriptions on this node
	BadRequests      uint64 `json:"bad_requests"`
	InterestTimeouts uint64 `json:"interest_timeouts"`
	Refused          uint64 `json:"refused"`
	Unavailable      uint64 `json:"unavailable"` // upgrades, subs and pubs refused with 503 while not in good standing
	Gaps             uint64 `json:"gaps"`        // gap frames sent to subscribers
	// Upgrades refused before the WebSocket handshake, by reason: a
	// browser origin not allowed, a connection limit, the Authenticator,
	// the node not in good standing (503), a request that is not a valid
	// WebSocket upgrade (400, 405, 426, 505; upgrade.go).
	RefusedOrigin      uint64 `json:"refused_origin"`
	RefusedLimit       uint64 `json:"refused_limit"`
	RefusedAuth        uint64 `json:"refused_auth"`
	RefusedUnavailable uint64 `json:"refused_unavailable"`
	RefusedUpgrade     uint64 `json:"refused_upgrade"`
	// ErrCodes counts the err frames sent to clients by code ("400",
	// "403", "413", "429", "503", and "other" for a hook's own codes).
	ErrCodes map[string]uint64 `json:"err_codes"`
	// Token refreshes over live connections (refresh.go): applied, and
	// refused (the token invalid, another user, a channel no longer
	// allowed, one already running).
	Refreshes        uint64          `json:"refreshes"`
	RefreshesRefused uint64          `json:"refreshes_refused"`
	History          HistoryStats    `json:"history"`
	Presence         PresenceCounts  `json:"presence"` // presence_ops.go
	Transport        transport.Stats `json:"transport"`
}

// HistoryStats is what the node holds of channels with history, and how
// its recoveries and refills went.
type HistoryStats struct {
	Channels          int    `json:"channels"`
	Messages          int    `json:"messages"`
	Bytes             int64  `json:"bytes"`              // data plus per-message overhead, as counted against HistoryMemory
	EvictedForMemory  uint64 `json:"evicted_for_memory"` // messages dropped because HistoryMemory was full
	Recoveries        uint64 `json:"recoveries"`         // subscribes with since
	RecoveriesPartial uint64 `json:"recoveries_partial"` // acked with recovered:false
	Refills           uint64 `json:"refills"`            // catch-ups of a channel after a gap
	RefillsIncomplete uint64 `json:"refills_incomplete"` // those that left a hole (a gap frame went out)
	Refilled          uint64 `json:"refilled"`           // messages fetched from the peers and delivered to this node's subscribers
	NotStored         uint64 `json:"not_stored"`         // publishes refused with 503: not held by enough nodes
}

// HistoryStats returns the history figures alone (Stats has them too).
func (h *Hub) HistoryStats() HistoryStats {
	st := h.store.Stats()
	m := &h.metrics
	return HistoryStats{
		Channels: st.Channels, Messages: st.Messages, Bytes: st.Bytes, EvictedForMemory: st.Evicted,
		Recoveries: m.recoveries.Load(), RecoveriesPartial: m.recoveriesPartial.Load(),
		Refills: m.refills.Load(), RefillsIncomplete: m.refillsIncomplete.Load(), Refilled: m.refilled.Load(),
		NotStored: m.notStored.Load(),
	}
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	m := &h.metrics
	peer := m.peerDeliveries.Load()
	return Stats{
		Sessions:         m.sessions.Load(),
		Connects:         m.connects.Load(),
		Channels:         h.reg.count(),
		Publishes:        m.publishes.Load(),
		RemoteDeliveries: m.remoteDeliveries.Load(),
		Deliveries:       m.deliveries.Load() + peer,
		PeerDeliveries:   peer,
		Subscriptions:    m.subscriptions.Load(),
		BadRequests:      m.badRequests.Load(),
		InterestTimeouts: m.interestTimeouts.Load(),
		Refused:          m.refused.Load(),
		Unavailable:      m.unavailable.Load(),
		Gaps:             m.gaps.Load(),

		RefusedOrigin:      m.refusedOrigin.Load(),
		RefusedLimit:       m.refusedLimit.Load(),
		RefusedAuth:        m.refusedAuth.Load(),
		RefusedUnavailable: m.refusedUnavailable.Load(),
		RefusedUpgrade:     m.refusedUpgrade.Load(),
		ErrCodes:           m.errs.snapshot(),
		Refreshes:          m.refreshes.Load(),
		RefreshesRefused:   m.refreshesRefused.Load(),
		History:            h.HistoryStats(),
		Presence:           h.PresenceCounts(),
		Transport:          h.transport.Stats(),
	}
}
