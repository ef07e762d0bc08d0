package hub

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// SubscribeRule says who may subscribe to the channels of a namespace.
type SubscribeRule uint8

// The zero rule is SubscribeAnyone, so a hub without namespaces behaves as
// before permissions existed.
const (
	SubscribeAnyone        SubscribeRule = iota // every connection
	SubscribeAuthenticated                      // connections with a user
	SubscribeClaim                              // only channels matching the token's "channels" claim
)

// PublishRule says who may publish from a client connection to the
// channels of a namespace. Hub.Publish and the server API are not bound by
// it.
type PublishRule uint8

const (
	PublishAnyone      PublishRule = iota // every connection
	PublishSubscribers                    // connections subscribed to the channel
	PublishClaim                          // only channels matching the token's "publish" claim
	PublishNobody                         // server-side publishing only
)

var (
	subscribeNames = []string{"anyone", "authenticated", "claim"}
	publishNames   = []string{"anyone", "subscribers", "claim", "nobody"}
)

func (r SubscribeRule) String() string { return ruleName(subscribeNames, int(r)) }
func (r PublishRule) String() string   { return ruleName(publishNames, int(r)) }

func (r SubscribeRule) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
func (r PublishRule) MarshalText() ([]byte, error)   { return []byte(r.String()), nil }

// UnmarshalText reads anyone, authenticated or claim.
func (r *SubscribeRule) UnmarshalText(b []byte) error {
	i, err := parseRule("subscribe", subscribeNames, string(b))
	*r = SubscribeRule(i)
	return err
}

// UnmarshalText reads anyone, subscribers, claim or nobody.
func (r *PublishRule) UnmarshalText(b []byte) error {
	i, err := parseRule("publish", publishNames, string(b))
	*r = PublishRule(i)
	return err
}

func ruleName(names []string, i int) string {
	if i < len(names) {
		return names[i]
	}
	return fmt.Sprintf("rule(%d)", i)
}

func parseRule(what string, names []string, s string) (int, error) {
	for i, n := range names {
		if s == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("hub: %s rule %q: want one of %s", what, s, strings.Join(names, ", "))
}

// Namespace holds the permissions of the channels whose name starts with
// "<namespace>:" (see NamespaceOf).
type Namespace struct {
	Subscribe SubscribeRule `json:"subscribe"`
	Publish   PublishRule   `json:"publish"`
	// Origins, if set, are the only browser origins whose connections may
	// subscribe or publish here ("https://app.example.com", "*"), on top
	// of Config.AllowedOrigins. Connections without an Origin header pass.
	Origins []string `json:"origins,omitempty"`
	// Presence makes a subscriber of the namespace's channels present on
	// them as its user, cluster-wide (presence_ops.go); JoinLeave, which
	// needs it, sends subscribers a join and a leave event per user.
	Presence  bool `json:"presence,omitempty"`
	JoinLeave bool `json:"join_leave,omitempty"`
	// History keeps the last History messages of each channel (at most
	// MaxHistory) on the nodes that deliver them, for recovery and the
	// history op; 0: no history (docs/history.md). HistoryTTL, if set,
	// also drops them once that old.
	History    int      `json:"history,omitempty"`
	HistoryTTL Duration `json:"history_ttl,omitempty"`
}

// MaxHistory bounds Namespace.History.
const MaxHistory = 10000

// Duration is a time.Duration that reads and writes as "5m" in JSON and
// config files.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return errors.New("negative duration")
	}
	*d = Duration(v)
	return nil
}

// ReservedPrefix starts the channel names meshcast keeps for itself
// ("$sys:disconnect"): clients may neither subscribe nor publish to them
// and Hub.Publish refuses them, whatever the hooks say.
const ReservedPrefix = "$"

// errReservedClient is the same refusal in the words a client sees.
var errReservedClient = errors.New("channels starting with $ are reserved")

func isReserved(ch string) bool { return strings.HasPrefix(ch, ReservedPrefix) }

// namespace returns the rules that apply to ch: its namespace's, else the
// default namespace's, else anyone/anyone.
func (h *Hub) namespace(ch string) Namespace {
	nss := h.live().Security.Namespaces
	if ns, ok := nss[NamespaceOf(ch)]; ok {
		return ns
	}
	return nss[""]
}

// CanSubscribe is the built-in subscribe decision for this connection:
// personal channels ("user:#ann") only for the users they name, then the
// namespace's rule and origins. nil means allowed. A hub's
// AuthorizeSubscribe hook replaces this decision and may call it.
func (c *Client) CanSubscribe(ch string) error {
	if users, ok := personalUsers(ch); ok && !personalAllows(users, c.User()) {
		return errors.New("personal channel of another user")
	}
	ns := c.s.hub.namespace(ch)
	if err := ns.checkOrigin(c.origin); err != nil {
		return err
	}
	switch ns.Subscribe {
	case SubscribeAnyone:
		return nil
	case SubscribeAuthenticated:
		if c.User() == "" {
			return errors.New("subscribing here needs a token")
		}
		return nil
	case SubscribeClaim:
		if id := c.ident.Load(); id == nil || !matchAny(id.Channels, ch) {
			return errors.New("channel not in the token's channels claim")
		}
		return nil
	}
	return errors.New("subscribing here is not allowed")
}

// CanPublish is the built-in decision for a client publish: the
// namespace's publish rule and origins. nil means allowed. A hub's
// AuthorizePublish hook replaces this decision and may call it.
func (c *Client) CanPublish(ch string) error {
	ns := c.s.hub.namespace(ch)
	if err := ns.checkOrigin(c.origin); err != nil {
		return err
	}
	switch ns.Publish {
	case PublishAnyone:
		return nil
	case PublishSubscribers:
		if !c.s.subscribed(ch) {
			return errors.New("subscribe before publishing here")
		}
		return nil
	case PublishClaim:
		if id := c.ident.Load(); id == nil || !matchAny(id.Publish, ch) {
			return errors.New("channel not in the token's publish claim")
		}
		return nil
	}
	return errors.New("clients may not publish here")
}

func (ns *Namespace) checkOrigin(origin string) error {
	if len(ns.Origins) == 0 || origin == "" {
		return nil
	}
	if u := parseOrigin(origin); u != nil && originListed(ns.Origins, u) {
		return nil
	}
	return errors.New("origin not allowed in this namespace")
}

// authorizeSubscribe applies the reserved prefix, then the hook if the
// hub has one, else the built-in decision.
func (s *session) authorizeSubscribe(ch string) error {
	if isReserved(ch) {
		return errReservedClient
	}
	if hook := s.hub.cfg.AuthorizeSubscribe; hook != nil {
		return hook(&s.client, ch)
	}
	return s.client.CanSubscribe(ch)
}

// authorizePublish is authorizeSubscribe for a client publish.
func (s *session) authorizePublish(ch string, data []byte) error {
	if isReserved(ch) {
		return errReservedClient
	}
	if hook := s.hub.cfg.AuthorizePublish; hook != nil {
		return hook(&s.client, ch, data)
	}
	return s.client.CanPublish(ch)
}
