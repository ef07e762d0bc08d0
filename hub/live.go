package hub

import (
	"errors"
	"fmt"
	"math"
)

// Live is the part of a hub's configuration that may change while it runs
// without dropping a client: who may connect, channel permissions, limits
// and browser origins. New takes it from Config; UpdateSecurity replaces
// it. Its fields mean what Config's fields of the same names mean.
type Live struct {
	Authenticator    Authenticator
	Security         SecurityConfig
	AllowedOrigins   []string
	MaxDataSize      int
	MaxSubscriptions int
}

// live returns the configuration in force: one atomic load, so request
// paths may call it per request. The value is never modified once stored.
func (h *Hub) live() *Live { return h.liveCfg.Load() }

// UpdateSecurity swaps in new live settings, atomically: a request is
// judged wholly by the old settings or wholly by the new. Open
// connections stay open and keep their identity and subscriptions; the
// new rules apply to their next sub and pub, the new limits to their next
// request (the connection limits to the next connection), the new
// Authenticator and origins to the next upgrade. Zero fields take their
// defaults, as in New. It is safe for concurrent use.
func (h *Hub) UpdateSecurity(l Live) error {
	if err := l.normalize(); err != nil {
		return err
	}
	h.liveCfg.Store(&l)
	return nil
}

// live is the Live part of cfg.
func (cfg *Config) live() Live {
	return Live{
		Authenticator:    cfg.Authenticator,
		Security:         cfg.Security,
		AllowedOrigins:   cfg.AllowedOrigins,
		MaxDataSize:      cfg.MaxDataSize,
		MaxSubscriptions: cfg.MaxSubscriptions,
	}
}

// normalize rejects values that cannot be meant and fills defaults.
func (l *Live) normalize() error {
	sc := &l.Security
	if f, ok := l.Authenticator.(AuthenticatorFunc); ok && f == nil {
		return fmt.Errorf("%w: a nil AuthenticatorFunc (it would panic on every upgrade)", ErrInvalidConfig)
	}
	switch {
	case l.MaxDataSize < 0:
		return fmt.Errorf("%w: negative MaxDataSize", ErrInvalidConfig)
	case l.MaxSubscriptions < 0:
		return fmt.Errorf("%w: negative MaxSubscriptions", ErrInvalidConfig)
	case sc.PublishRate < 0 || sc.PublishBurst < 0:
		return fmt.Errorf("%w: negative publish rate or burst", ErrInvalidConfig)
	case sc.MaxConnections < 0 || sc.MaxConnectionsPerIP < 0:
		return fmt.Errorf("%w: negative connection limit", ErrInvalidConfig)
	}
	for name, ns := range sc.Namespaces {
		if err := ns.Check(); err != nil {
			return fmt.Errorf("%w: namespace %q: %w", ErrInvalidConfig, name, err)
		}
	}
	d := DefaultConfig()
	if l.MaxDataSize == 0 {
		l.MaxDataSize = d.MaxDataSize
	}
	if l.MaxSubscriptions == 0 {
		l.MaxSubscriptions = d.MaxSubscriptions
	}
	if sc.PublishRate > 0 && sc.PublishBurst <= 0 {
		sc.PublishBurst = max(1, int(math.Ceil(sc.PublishRate)))
	}
	return nil
}

// Check reports settings of ns that contradict each other or are out of
// range, as New and UpdateSecurity would refuse them; a config loader
// calls it to report the problem where the namespace is written.
func (ns Namespace) Check() error {
	switch {
	case ns.History < 0 || ns.History > MaxHistory:
		return fmt.Errorf("history %d is not from 0 to %d", ns.History, MaxHistory)
	case ns.HistoryTTL < 0:
		return errors.New("negative history_ttl")
	case ns.HistoryTTL != 0 && ns.History == 0:
		return errors.New("history_ttl without history")
	case ns.JoinLeave && !ns.Presence:
		return errors.New("join_leave needs presence")
	}
	return nil
}
