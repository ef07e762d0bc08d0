package hub

import (
	"errors"
	"strings"
	"testing"
)

// TestDataNestingLimit: publish data nested deeper than maxDataDepth is
// refused, from a client (err 400) and from the server side (ErrBadData):
// it reaches every subscriber byte-exact, and their parsers may not cope.
func TestDataNestingLimit(t *testing.T) {
	h, url := testHub(t, DefaultConfig())
	c := dial(t, url)
	ok := strings.Repeat("[", maxDataDepth) + strings.Repeat("]", maxDataDepth)
	deep := "[" + ok + "]"
	c.MustAck(`{"op":"pub","ch":"a","data":` + ok + `,"id":1}`)
	m := c.RoundTrip(`{"op":"pub","ch":"a","data":` + deep + `,"id":2}`)
	if m["code"] != 400.0 || m["id"] != 2.0 || !strings.Contains(m["reason"].(string), "nested") {
		t.Fatalf("data %d deep: %v", maxDataDepth+1, m)
	}
	objects := `{"a":` + strings.Repeat(`{"a":`, maxDataDepth) + "1" + strings.Repeat("}", maxDataDepth+1)
	if err := h.Publish(t.Context(), "a", []byte(objects)); !errors.Is(err, ErrBadData) {
		t.Fatalf("Publish of %d nested objects: %v", maxDataDepth+1, err)
	}
	if err := h.Publish(t.Context(), "a", []byte(`["[[[[", {"}": "{{{{"}]`)); err != nil {
		t.Fatalf("brackets in strings count: %v", err)
	}
}
