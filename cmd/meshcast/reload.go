package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/meshcast/meshcast/hub"
)

// reloadable names the settings a reload (SIGHUP) applies to a running
// node without dropping a client. Any other setting that changed refuses
// the whole reload. The namespaces of the config file and the contents
// of the key and certificate files are read again on every reload too.
func reloadable(setting string) bool {
	switch setting {
	case "log-level", "gc-percent", "allowed-origins", "namespace",
		"max-data", "max-subscriptions", "client-publish-rate", "client-publish-burst",
		"max-connections", "max-connections-per-ip",
		"token-hmac-secret", "token-rsa-public-key", "token-jwks-file", "token-max-lifetime", "insecure",
		"api-key", "api-key-file":
		return true
	}
	return false
}

// errReloadRefused wraps every reason a reload changed nothing.
var errReloadRefused = errors.New("reload refused, the running configuration stays")

// reload reads the configuration again, from the same flags, environment
// and config file, and applies it whole or not at all: a bad value, a
// file that cannot be read, or a changed setting that needs a restart
// refuses it, naming the setting. Open connections are never dropped.
func (n *node) reload() error {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	next, err := parseConfig(n.cfg.args, n.cfg.getenv, io.Discard)
	if err != nil {
		return fmt.Errorf("%w: %w", errReloadRefused, err)
	}
	changed, restart := diffSettings(n.cfg.values, next.values)
	if len(restart) > 0 {
		return fmt.Errorf("%w: %s cannot change without a restart", errReloadRefused, strings.Join(restart, ", "))
	}
	live, key, err := next.live()
	if err != nil {
		return fmt.Errorf("%w: %w", errReloadRefused, err)
	}
	if n.cfg.security.insecure && !next.security.insecure {
		// The secret in use must pass without --insecure, as at a start.
		if _, err := next.strongSecret(); err != nil {
			return fmt.Errorf("%w: --insecure cannot be turned off: %w", errReloadRefused, err)
		}
	}
	commitTLS, err := n.tls.prepare()
	if err != nil {
		return fmt.Errorf("%w: %w", errReloadRefused, err)
	}
	if err := n.hub.UpdateSecurity(live); err != nil {
		return fmt.Errorf("%w: %w", errReloadRefused, err)
	}
	n.api.set(hub.NewAPI(n.hub, key))
	n.conns.set(next.security.maxConnections, next.security.maxConnectionsPerIP) // before the upgrade (httpserver.go)
	commitTLS(n.log)
	n.applyRuntime(&next)
	if next.security.hmacSecret != n.cfg.security.hmacSecret || n.cfg.security.insecure && !next.security.insecure {
		next.security.warnWeakTokenSecret(n.log)
	}
	n.cfg = next
	what := strings.Join(changed, ",")
	if what == "" { // not "": it reads as a bug, or as nothing done
		what = "no setting (key and certificate files were read again)"
	}
	n.log.Info("configuration reloaded", slog.String("changed", what))
	return nil
}

// applyRuntime applies the settings that live outside the hub.
func (n *node) applyRuntime(next *config) {
	next.level = n.cfg.level
	if next.level != nil {
		var lvl slog.Level
		_ = lvl.UnmarshalText([]byte(next.logLevel)) // validated
		next.level.Set(lvl)
	}
	if next.gcPercent != n.cfg.gcPercent && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(next.gcPercent)
	}
}

// diffSettings lists the settings whose values differ, and of those the
// ones a reload cannot apply (as --name, sorted).
func diffSettings(cur, next map[string]string) (changed, restart []string) {
	for name, v := range next {
		if cur[name] == v {
			continue
		}
		changed = append(changed, name)
		if !reloadable(name) {
			restart = append(restart, "--"+name)
		}
	}
	slices.Sort(changed)
	slices.Sort(restart)
	return changed, restart
}

// live is the hub's Live settings and the server API key from c, with
// every key file read.
func (c *config) live() (hub.Live, string, error) {
	sec, err := c.security.hubSecurity()
	if err != nil {
		return hub.Live{}, "", err
	}
	key, err := c.security.readAPIKey()
	if err != nil {
		return hub.Live{}, "", err
	}
	l := hub.Live{Security: sec, AllowedOrigins: splitList(c.allowedOrigins),
		MaxDataSize: c.maxData, MaxSubscriptions: c.maxSubscriptions}
	v, err := c.security.tokenVerifier()
	if err != nil {
		return hub.Live{}, "", err
	}
	if v != nil { // a nil *TokenVerifier in the interface would not be nil
		l.Authenticator = v
	}
	return l, key, nil
}

// swapHandler is an http.Handler that a reload can replace.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func newSwapHandler(h http.Handler) *swapHandler {
	s := &swapHandler{}
	s.set(h)
	return s
}

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// reloadOnSIGHUP reloads the configuration on every SIGHUP until the
// returned stop is called (it waits for the watcher to exit).
func (n *node) reloadOnSIGHUP() (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hup:
				n.log.Info("SIGHUP received, reloading the configuration")
				if err := n.reload(); err != nil {
					n.log.Error("reload failed", slog.Any("err", err))
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}
