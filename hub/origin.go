package hub

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// originAllowed applies Config.AllowedOrigins to a browser's Origin
// header. Browsers send Origin on every WebSocket handshake; programs
// usually don't, and they are not what the check protects against (a page
// on another site using a visitor's cookies), so a missing Origin passes.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(h.cfg.AllowedOrigins) == 0 {
		return strings.EqualFold(u.Host, r.Host) || isLoopbackHost(u.Hostname())
	}
	for _, allowed := range h.cfg.AllowedOrigins {
		if allowed == "*" || strings.EqualFold(strings.TrimSuffix(allowed, "/"), u.Scheme+"://"+u.Host) {
			return true
		}
	}
	return false
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
