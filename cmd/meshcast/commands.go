package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/meshcast/meshcast/metrics"
)

// subcommand runs `meshcast version`, `meshcast config check FILE` and
// `meshcast health [URL]`; ok is false when args start a node instead.
func subcommand(args []string, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, metrics.ReadBuildInfo(version))
		return 0, true
	case "config":
		return configCommand(args[1:], stdout, stderr), true
	case "health":
		return healthCommand(args[1:], os.Getenv, stdout, stderr), true
	}
	return 0, false
}

// configCommand is `meshcast config check FILE`: every error of the file,
// each with its line, and exit status 1 if there is any.
func configCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: meshcast config check FILE")
		return 2
	}
	errs := checkConfigFile(args[1])
	for _, err := range errs {
		fmt.Fprintln(stderr, err)
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "%s: %d error(s)\n", args[1], len(errs))
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[1])
	return 0
}

// checkConfigFile reports every problem of the config file at path, as a
// node started with only --config path would meet them: unknown keys and
// bad values (every one, with its line), then what the settings say
// together, then the files they name (keys, certificates).
func checkConfigFile(path string) []error {
	var c config
	fs := c.flagSet(io.Discard)
	cf, errs := loadConfigFile(path, fs)
	if len(errs) > 0 {
		return errs
	}
	for _, v := range cf.values {
		_ = fs.Set(v.key, v.value) // loadConfigFile checked each value
	}
	c.security.fileNamespaces = cf.namespaces
	if err := c.validate(); err != nil {
		return cf.locateAll(err)
	}
	return c.checkFiles(cf)
}

// checkFiles reads every file the config names, as a start would.
func (c *config) checkFiles(cf *configFile) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, cf.locate(err))
		}
	}
	_, err := c.strongSecret()
	add(err)
	_, err = c.security.tokenVerifier()
	add(err)
	_, err = c.security.readAPIKey()
	add(err)
	_, err = c.tls.setup()
	add(err)
	return errs
}

// healthCommand is `meshcast health [URL]`: exit 0 if URL answers 200,
// else 1. It is the container's HEALTHCHECK, for images with no shell or
// curl. Without a URL it asks the node at MESHCAST_LISTEN (127.0.0.1:8080
// if unset), over HTTPS if MESHCAST_TLS_CERT is set; a URL without a path
// gets /healthz.
// healthReason is what a node's 503 says keeps it from serving, as
// ": isolated: 1 of 3 members reachable; ..." (/readyz), or "".
func healthReason(body []byte) string {
	var r struct{ Status, Reason string }
	if json.Unmarshal(body, &r) != nil || r.Status == "" {
		return ""
	}
	if r.Reason == "" {
		return ": " + r.Status
	}
	return ": " + r.Status + ": " + r.Reason
}

func healthCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	target := ""
	switch {
	case len(args) == 0:
		host, port := "127.0.0.1", "8080"
		if h, p, err := net.SplitHostPort(getenv("MESHCAST_LISTEN")); err == nil {
			if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
				host = h // bound to one address: 127.0.0.1 may not answer
			}
			if p != "" {
				port = p
			}
		}
		scheme := "http"
		if getenv("MESHCAST_TLS_CERT") != "" {
			scheme = "https"
		}
		target = scheme + "://" + net.JoinHostPort(host, port) + "/healthz"
	case len(args) == 1 && !strings.HasPrefix(args[0], "-"):
		target = args[0]
		if u, err := url.Parse(target); err == nil && (u.Path == "" || u.Path == "/") {
			u.Path = "/healthz" // the bare address of the node: "/" is the demo page, 200 even when broken
			target = u.String()
		}
	default:
		fmt.Fprintln(stderr, "usage: meshcast health [URL]  (default: /healthz at MESHCAST_LISTEN, or 127.0.0.1:8080; https with MESHCAST_TLS_CERT)")
		return 2
	}
	client := http.Client{
		Timeout: 3 * time.Second,
		// As Kubernetes' HTTPS probes: a local probe of the node's own
		// listener proves it serves; its certificate names the public
		// host, not 127.0.0.1, and may be signed by a private CA.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	resp, err := client.Get(target)
	if err != nil {
		fmt.Fprintln(stderr, "meshcast health:", err)
		return 1
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "meshcast health: %s answered %s%s\n", target, resp.Status, healthReason(body))
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}
