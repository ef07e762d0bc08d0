package hub

import "fmt"

// maxDataDepth bounds how deeply publish data may nest arrays and
// objects. Go's encoding/json gives up at 10,000 levels, but data goes
// byte-exact to every subscriber, whose parsers may give up far sooner or
// run out of stack (a recursive parser, a small thread): one publisher
// must not be able to break everyone else's. 64 is beyond any real
// message.
const maxDataDepth = 64

// errTooDeep refuses data over maxDataDepth.
var errTooDeep = fmt.Errorf("%w: nested deeper than %d levels", ErrBadData, maxDataDepth)

// jsonDepth returns the deepest nesting of arrays and objects in b, which
// must be valid JSON (brackets inside strings do not count).
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = skipString(b, i) - 1
		case '[', '{':
			depth++
			deepest = max(deepest, depth)
		case ']', '}':
			depth--
		}
	}
	return deepest
}
