package hub

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// originAllowed applies allowed (Config.AllowedOrigins) to a browser's Origin
// header; a page of the node's own origin (the request's Host) always
// passes, so setting a list never locks out the demo page. Browsers send Origin on every WebSocket handshake; programs
// usually don't, and they are not what the check protects against (a page
// on another site using a visitor's cookies), so a missing Origin passes.
func (h *Hub) originAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u := parseOrigin(origin)
	if u == nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true // the node's own pages: same origin, whatever the list
	}
	if len(allowed) == 0 {
		return isLoopbackHost(u.Hostname())
	}
	return originListed(allowed, u)
}

// parseOrigin parses an Origin header; nil when it names no host ("null").
func parseOrigin(origin string) *url.URL {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return nil
	}
	return u
}

// originListed reports whether u matches one of allowed: "*", or a
// scheme://host[:port], case-insensitively, a trailing slash ignored.
func originListed(allowed []string, u *url.URL) bool {
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), u.Scheme+"://"+u.Host) {
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
