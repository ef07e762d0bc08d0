package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// minSecretBits is the least entropy a cluster secret must have. Gossip
// ciphertext (and, on the path between nodes, a peer-link proof) lets
// anyone who captures it try guesses offline, as fast as they can hash:
// 128 bits puts that out of reach, as 16 random bytes do (22 base64 or 32
// hex characters).
const minSecretBits = 128

// checkSecret refuses a cluster secret whose estimated entropy is under
// minSecretBits. An empty secret is not refused here: it means an open
// cluster, which the cluster warns about.
func checkSecret(s []byte) error {
	if len(s) == 0 {
		return nil
	}
	if bits := secretBits(s); bits < minSecretBits {
		return fmt.Errorf("the cluster secret is too weak (about %d bits, want %d): "+
			"generate one with `openssl rand -base64 32`, or give --insecure to run with it anyway (demos only)",
			int(bits), minSecretBits)
	}
	return nil
}

// secretBits estimates, on the low side, the entropy of s as if it were
// random: its length times the bits of the smallest alphabet its
// characters fit (hex digits, letters and separators that may be words,
// base64, the printable ASCII classes it uses, or any byte; base64
// padding not counted), the length cut down
// for a repeating pattern or few distinct characters. It cannot see that
// a long string is a sentence or a name plus a year; it stops the short
// and the obviously patterned ones, and the error says how to do better.
func secretBits(s []byte) float64 {
	if len(s) > 1024 { // enough to judge, and keeps period's quadratic worst case small
		s = s[:1024]
	}
	if b64 := bytes.TrimRight(s, "="); isBase64(b64) && len(b64) > 0 && !isHex(b64) {
		s = b64 // padding carries nothing
	}
	n := min(len(s), period(s), 4*distinct(s))
	return float64(n) * bitsPerChar(s)
}

func isBase64(s []byte) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("+/-_", c) >= 0) {
			return false
		}
	}
	return true
}

func isHex(s []byte) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// bitsPerChar is log2 of the alphabet s seems drawn from.
func bitsPerChar(s []byte) float64 {
	switch {
	case isHex(s):
		return 4
	case isWordy(s): // letters and separators: perhaps words, about 2 bits a letter
		return 2
	case isBase64(s): // base64 or base64url, or fewer classes: 6 bits at most
		return 6
	}
	var lower, upper, digit, symbol bool
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		case c >= ' ' && c < 0x7f:
			symbol = true
		default: // control characters and bytes over 0x7f: raw bytes
			return 8
		}
	}
	size := 0
	for _, class := range []struct {
		in   bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {symbol, 33}} {
		if class.in {
			size += class.size
		}
	}
	return math.Log2(float64(size))
}

// isWordy: letters and separators, all lowercase or with a space, as
// words are (mixed-case letters alone are more likely base64 without a
// digit, which happens to one 16-byte secret in a hundred).
func isWordy(s []byte) bool {
	upper, space := false, false
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c == ' ':
			space = true
		case !(c >= 'a' && c <= 'z' || strings.IndexByte("-_.", c) >= 0):
			return false
		}
	}
	return !upper || space
}

// period is the length of the shortest block s repeats at least twice
// ("abcabcab": 3), or len(s).
func period(s []byte) int {
	for p := 1; p <= len(s)/2; p++ {
		repeats := true
		for i := p; i < len(s) && repeats; i++ {
			repeats = s[i] == s[i-p]
		}
		if repeats {
			return p
		}
	}
	return len(s)
}

func distinct(s []byte) int {
	var seen [256]bool
	n := 0
	for _, c := range s {
		if !seen[c] {
			seen[c], n = true, n+1
		}
	}
	return n
}
