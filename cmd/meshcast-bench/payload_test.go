package main

import (
	"encoding/json"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{0, 10, 40, 100, 1000, 4096} {
		b := appendPayload(nil, 1732665600123456789, 42, 3, size)
		if size >= 60 && len(b) != size {
			t.Fatalf("size %d: got %d bytes", size, len(b))
		}
		var v struct {
			T int64  `json:"t"`
			S uint64 `json:"s"`
			P int    `json:"p"`
			X string `json:"x"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.T != 1732665600123456789 || v.S != 42 || v.P != 3 {
			t.Fatalf("size %d: %s: %v %+v", size, b, err, v)
		}
		for _, frame := range []string{
			string(b),
			`{"op":"msg","ch":"bench","data":` + string(b) + `}`,
			`{"data":` + string(b) + `,"ch":"t","op":"msg"}`,
			`42["msg",{"room":"bench","data":` + string(b) + `}]`,
		} {
			ts, s, p, ok := scanPayload([]byte(frame))
			if !ok || ts != 1732665600123456789 || s != 42 || p != 3 {
				t.Fatalf("scan %s: %d %d %d %v", frame, ts, s, p, ok)
			}
		}
	}
}

func TestScanPayloadRejects(t *testing.T) {
	for _, in := range []string{
		``, `{}`, `{"op":"msg","ch":"x","data":{"t":1,"s":2}}`, `{"data":{"t":"1","s":2,"p":3}}`,
		`{"data":{"t":-1,"s":2,"p":3}}`, `{"data":{"t":1,"s":2,"p":`, `{"data":{"t":123456789012345678901,"s":2,"p":3}}`,
	} {
		if _, _, _, ok := scanPayload([]byte(in)); ok {
			t.Errorf("accepted %q", in)
		}
	}
	if _, s, _, ok := scanPayload([]byte(`{"data":{"t": 5,"s": 6,"p": 7}}`)); !ok || s != 6 {
		t.Error("spaces after the colon not accepted")
	}
}

func TestOpOf(t *testing.T) {
	for in, want := range map[string]byte{
		`{"op":"msg","ch":"a","data":1}`: 'm', `{"op":"ack","id":1}`: 'a', `{"op":"err","id":1}`: 'e',
		`{"op":"hello"}`: 'h', `{"op":"`: 0, `{}`: 0,
	} {
		if got := opOf([]byte(in)); got != want {
			t.Errorf("%s: %q", in, got)
		}
	}
}

func TestScanAllocatesNothing(t *testing.T) {
	frame := []byte(`{"op":"msg","ch":"bench","data":` + string(appendPayload(nil, 1, 2, 3, 100)) + `}`)
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(1000, func() {
		buf = appendPayload(buf[:0], 1, 2, 3, 100)
		_, _, _, _ = scanPayload(frame)
		_ = opOf(frame)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

func FuzzScanPayload(f *testing.F) {
	f.Add([]byte(`{"op":"msg","ch":"bench","data":{"t":1,"s":2,"p":3,"x":"xx"}}`))
	f.Add([]byte(`{"op":"msg","ch":"bench","data":{"t":1,"s":2,"p`))
	f.Add([]byte(`42["msg",{"room":"r","data":{"t":9,"s":0,"p":0}}]`))
	f.Add([]byte(`"data":"t":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, _, p, ok := scanPayload(b)
		if ok && (ts < 0 || p < 0) {
			t.Fatalf("negative fields accepted: %d %d", ts, p)
		}
		_ = opOf(b)
	})
}

func BenchmarkScanPayload(b *testing.B) {
	frame := []byte(`{"op":"msg","ch":"bench","data":` + string(appendPayload(nil, 1732665600123456789, 123456, 2, 100)) + `}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		_, _, _, _ = scanPayload(frame)
	}
}
