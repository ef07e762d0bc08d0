package hub

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/meshcast/meshcast/transport"
)

// checkUpgrade refuses, in the JSON every refusal uses, a request that is
// not a WebSocket upgrade; it reports whether r may go on. Junk is
// logged at debug: anyone can send it.
func (h *Hub) checkUpgrade(w http.ResponseWriter, r *http.Request) bool {
	err := transport.CheckUpgrade(r)
	var ue *transport.UpgradeError
	if !errors.As(err, &ue) {
		return true
	}
	switch ue.Status {
	case http.StatusUpgradeRequired:
		w.Header().Set("Sec-WebSocket-Version", transport.WebSocketVersion)
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodGet)
	}
	h.metrics.refusedUpgrade.Add(1)
	h.refuse(w, r, ue.Status, ue.Reason, slog.LevelDebug)
	return false
}
