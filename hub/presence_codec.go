package hub

import "fmt"

// The request fields of presence: "info" in sub (slot 4), "after" in
// presence (slot 5).
func (req *request) setPresence(slot int, val []byte) error {
	switch slot {
	case 4:
		if jsonDepth(val) > maxDataDepth {
			return malformed(fmt.Sprintf(`"info" nested deeper than %d levels`, maxDataDepth))
		}
		req.info = val
	case 5:
		s, ok := unquote(val)
		if !ok {
			return malformed(`"after" must be a string`)
		}
		req.after = s
	}
	return nil
}
