package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/meshcast/meshcast/internal/relay"
	"strconv"
	"testing"
	"unicode/utf8"
)

var decodeCases = []string{
	`{"op":"sub","ch":"room","id":1}`,
	`{"op":"pub","ch":"room","data":{"a":[1,2,{"b":"}"}]},"id":9007199254740991}`,
	` { "id" : 3 , "op" : "unsub" , "ch" : "x\"y" } `,
	`{"op":"pub","ch":"a","data":"\u0000\\"}`,
	`{"o\u0070":"sub","ch":"a","extra":[{},[]]}`,
	`{"op":"sub","op":"sub"}`,
	`{"op":"sub","id":1e3}`,
	`[]`, `{`, `"op"`, ``,
	// Key orders: the id is read wherever it is, even after a bad field.
	`{"ch":7,"data":1,"id":3,"op":"pub"}`,
	`{"data":[1,{"id":2}],"id":4,"op":"pub","ch":null}`,
	`{"ch":"a","ch":"b","id":5,"op":"sub"}`,
	`{"id":6,"op":7}`,
}

func TestDecodeRequest(t *testing.T) {
	req, err := decodeRequest([]byte(decodeCases[1]))
	if err != nil {
		t.Fatal(err)
	}
	if req.op != "pub" || req.ch != "room" || !req.hasID || req.id != 1<<53-1 || string(req.data) != `{"a":[1,2,{"b":"}"}]}` {
		t.Fatalf("%+v", req)
	}
	req, err = decodeRequest([]byte(decodeCases[2]))
	if err != nil || req.op != "unsub" || req.ch != `x"y` || req.id != 3 {
		t.Fatalf("%+v %v", req, err)
	}
	if _, err := decodeRequest([]byte(decodeCases[5])); err == nil {
		t.Fatal("duplicate op accepted")
	}
	if _, err := decodeRequest([]byte(decodeCases[6])); err == nil {
		t.Fatal("id 1e3 accepted")
	}
}

// FuzzDecodeRequest checks the hand-written decoder against encoding/json:
// whatever it accepts, encoding/json reads the same op, ch, id and the
// byte-identical data.
func FuzzDecodeRequest(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
		for i := 1; i < len(c); i += 7 {
			f.Add([]byte(c[:i])) // truncated frames
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := decodeRequest(frame)
		if !utf8.Valid(frame) {
			return // the transport closes with 1007 before a frame reaches the decoder
		}
		if err != nil {
			if id, ok := onlyID(frame); ok && (!req.hasID || req.id != id) {
				t.Fatalf("err without the readable id %d: %+v", id, req)
			}
			return
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(frame, &raw); err != nil {
			t.Fatalf("accepted what encoding/json refuses: %v", err)
		}
		var op string
		if err := json.Unmarshal(raw["op"], &op); err != nil || op != req.op {
			t.Fatalf("op %q vs %q (%v)", req.op, op, err)
		}
		if r, ok := raw["ch"]; ok {
			var ch string
			if err := json.Unmarshal(r, &ch); err != nil || ch != req.ch {
				t.Fatalf("ch %q vs %q", req.ch, ch)
			}
		}
		if r, ok := raw["id"]; ok != req.hasID || (ok && string(r) != strconv.FormatUint(req.id, 10)) {
			t.Fatalf("id %v/%d vs %s", req.hasID, req.id, r)
		}
		if r, ok := raw["data"]; ok && !bytes.Equal(r, req.data) {
			t.Fatalf("data %q vs %q", req.data, r)
		}
	})
}

// onlyID returns the "id" of a JSON object that has exactly one, a valid
// id, read with encoding/json.
func onlyID(frame []byte) (uint64, bool) {
	var raw map[string]json.RawMessage
	if json.Unmarshal(frame, &raw) != nil || raw["id"] == nil {
		return 0, false
	}
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.Token() // {
	n := 0
	for dec.More() {
		k, _ := dec.Token()
		if k == "id" {
			n++
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(string(raw["id"]), 10, 64)
	return id, n == 1 && err == nil && id <= maxID
}

func TestDecodeKeepsIDAfterBadField(t *testing.T) {
	for _, c := range decodeCases[len(decodeCases)-4:] {
		req, err := decodeRequest([]byte(c))
		if want, _ := onlyID([]byte(c)); err == nil || !req.hasID || req.id != want {
			t.Errorf("%s: %+v, %v; want an error with id %d", c, req, err, want)
		}
	}
}

func TestMsgFrameKeepsData(t *testing.T) {
	frame, kept := msgFrame(`a"b\c`, []byte(`{"x": 1}`), "")
	if string(kept) != `{"x": 1}` {
		t.Fatalf("kept %q", kept)
	}
	if !bytes.HasSuffix(frame, []byte(`{"op":"msg","ch":"a\"b\\c","data":{"x": 1}}`)) {
		t.Fatalf("frame %q", frame)
	}
	if !json.Valid(frame[2:]) {
		t.Fatalf("payload is not JSON: %q", frame)
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	frame := []byte(`{"op":"pub","ch":"bench","data":{"t":1732665000000000000,"s":12345,"p":1,"x":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},"id":77}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendQuotedIsValidJSON: whatever the string (control characters,
// quotes, invalid UTF-8 from a misbehaving peer), appendQuoted writes one
// valid JSON string in valid UTF-8, which reads back as encoding/json
// would write it.
func TestAppendQuotedIsValidJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x1f", "é€😀", "bad\xff\xfe", "cut\xe2\x82", "\xc0\xae"} {
		out := appendQuoted(nil, s)
		var back string
		if !utf8.Valid(out) || json.Unmarshal(out, &back) != nil {
			t.Errorf("%q: %q is not a valid JSON string in UTF-8", s, out)
			continue
		}
		want, _ := json.Marshal(s) // encoding/json: invalid bytes become U+FFFD
		var wantBack string
		json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("%q reads back %q, want %q", s, back, wantBack)
		}
	}
}

// TestPresenceInfoMustBeUTF8: json.Valid accepts invalid UTF-8 inside a
// string; presence info with it, from a peer or a server-side subscribe,
// would reach clients in a text frame browsers refuse. A peer's is
// dropped, a server-side subscribe's refused.
func TestPresenceInfoMustBeUTF8(t *testing.T) {
	bad := json.RawMessage("{\"name\":\"bad\xff\"}")
	if !json.Valid(bad) || utf8.Valid(bad) {
		t.Fatal("the test's premise: json.Valid passes it, utf8.Valid does not")
	}
	h, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	if e := h.remoteEntry(relay.PresenceEntry{Ch: "room", Client: "c1", Info: bad}); e.Info != nil {
		t.Errorf("a peer's invalid UTF-8 info kept: %q", e.Info)
	}
	var s session
	s.hub = h
	if _, err := s.subscribeInfo("room", []SubscribeOption{WithInfo(bad)}); !errors.Is(err, ErrBadData) {
		t.Errorf("server-side subscribe with invalid UTF-8 info: %v, want ErrBadData", err)
	}
}
