package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	var out bytes.Buffer
	if code, ok := subcommand([]string{"version"}, &out, &out); !ok || code != 0 || !strings.HasPrefix(out.String(), "meshcast ") {
		t.Fatalf("version: %v %d %q", ok, code, out.String())
	}
	if _, ok := subcommand([]string{"--listen", ":0"}, &out, &out); ok {
		t.Fatal("flags taken for a subcommand")
	}
}

// TestHealthCommand: the container HEALTHCHECK passes against a serving
// node and fails against nothing.
func TestHealthCommand(t *testing.T) {
	n := startTestNode(t, testNodeConfig(t), nodeOptions{})
	var out, errOut bytes.Buffer
	if code := healthCommand([]string{n.baseURL() + "/healthz"}, &out, &errOut); code != 0 {
		t.Fatalf("health of a serving node: %d %s", code, errOut.String())
	}
	if code := healthCommand([]string{n.baseURL() + "/nope"}, &out, &errOut); code != 1 {
		t.Fatalf("health of a 404: %d", code)
	}
	if code := healthCommand([]string{"http://127.0.0.1:1/healthz"}, &out, &errOut); code != 1 {
		t.Fatalf("health of nothing: %d", code)
	}
}
