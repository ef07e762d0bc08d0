package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testSecret is strong enough for the check: tests run without --insecure.
const testSecret = "mc-test-5Jd9QvXr2LwP7tKz8NbYhGf3"

func TestSecretStrength(t *testing.T) {
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	// Generated secrets, many times each: an estimate that misjudges some
	// of them shows here.
	strong := map[string]func() string{
		"openssl rand -base64 32": func() string { return base64.StdEncoding.EncodeToString(random(32)) },
		"16 bytes in base64":      func() string { return base64.StdEncoding.EncodeToString(random(16)) },
		"17 bytes in base64url":   func() string { return base64.RawURLEncoding.EncodeToString(random(17)) },
		"openssl rand -hex 16":    func() string { return hex.EncodeToString(random(16)) },
		"crypto/rand.Text":        rand.Text,
		"the tests' secret":       func() string { return testSecret },
	}
	weak := map[string]func() string{
		"15 bytes in hex":       func() string { return hex.EncodeToString(random(15)) },
		"15 bytes in base64url": func() string { return base64.RawURLEncoding.EncodeToString(random(15)) },
	}
	for i := range 500 {
		for name, gen := range strong {
			if s := gen(); checkSecret([]byte(s)) != nil {
				t.Fatalf("%s refused (%q, try %d): %v", name, s, i, checkSecret([]byte(s)))
			}
		}
		for name, gen := range weak {
			if s := gen(); checkSecret([]byte(s)) == nil {
				t.Fatalf("%s accepted (%q)", name, s)
			}
		}
	}
	for _, s := range []string{
		"test-secret", "change-me", "correct horse battery staple", "correcthorsebatterystaplesandmore",
		strings.Repeat("a", 64), strings.Repeat("ab12", 16), "Summer2024!Summer2024!",
	} {
		if err := checkSecret([]byte(s)); err == nil || !strings.Contains(err.Error(), "openssl rand -base64 32") {
			t.Errorf("%q accepted (or the error does not say how to make one: %v)", s, err)
		}
	}
}

// TestWeakSecretRefusedAtStart: --secret, MESHCAST_SECRET and
// --secret-file all go through the check; --insecure lets a demo run with
// a weak one.
func TestWeakSecretRefusedAtStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, setSecret := range []func(c *config){
		func(c *config) { c.secret = "hunter2" },
		func(c *config) { c.secret, c.secretFile = "", file },
	} {
		cfg := testNodeConfig(t)
		setSecret(&cfg)
		if n, err := startNode(cfg, testLogger(t), nodeOptions{}); err == nil {
			stopNode(t, n)
			t.Fatal("a node started with a weak secret")
		} else if !strings.Contains(err.Error(), "--insecure") {
			t.Fatalf("error does not name the way out: %v", err)
		}
		cfg.security.insecure = true
		stopNode(t, startTestNode(t, cfg, nodeOptions{}))
	}
}
