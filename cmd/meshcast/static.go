package main

import (
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// staticHandler serves the demo page's files from fsys. It answers 404
// itself for a path that names no file, including paths no file can have
// (invalid UTF-8 such as %c0%ae, NUL), which http.FileServerFS answers
// with 500 (fs.ErrInvalid). Errors are JSON, like the node's others.
func staticHandler(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "."
		}
		if !fs.ValidPath(name) || strings.ContainsAny(name, "\x00\\") {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		if _, err := fs.Stat(fsys, name); err != nil {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		// After the path: a POST to a mistyped /api/publis is a 404,
		// not a "use GET" that sends the operator the wrong way.
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		files.ServeHTTP(w, r)
	})
}

// writeError answers {"code":N,"reason":"..."}, the body of every error.
func writeError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	writeJSON(w, status, map[string]any{"code": status, "reason": reason})
}
