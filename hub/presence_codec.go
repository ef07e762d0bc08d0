package hub

import "fmt"

// The request fields of presence: "info" in sub (slot 6), "after" in
// presence (slot 7).
func (req *request) setPresence(slot int, val []byte) error {
	switch slot {
	case 6:
		if jsonDepth(val) > maxDataDepth {
			return malformed(fmt.Sprintf(`"info" nested deeper than %d levels`, maxDataDepth))
		}
		req.info = val
	case 7:
		s, ok := unquote(val)
		if !ok {
			return malformed(`"after" must be a string`)
		}
		req.after = s
	}
	return nil
}
