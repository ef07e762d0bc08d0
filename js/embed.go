// Package js holds meshcast's JavaScript client. Its Go side only embeds
// the client so that a meshcast binary serves it to browsers, with no
// build step: cmd/meshcast mounts Handler at /meshcast.js, and the demo
// page imports it from there. The npm package is this same folder
// (package.json, index.d.ts, README.md).
package js

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

// Source is meshcast.js, an ES module for browsers and Node.
//
//go:embed meshcast.js
var Source []byte

// Handler serves Source as JavaScript, revalidated by ETag so a browser
// picks up a new binary's client at once.
func Handler() http.Handler {
	sum := sha256.Sum256(Source)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", etag)
		http.ServeContent(w, r, "meshcast.js", time.Time{}, bytes.NewReader(Source))
	})
}
