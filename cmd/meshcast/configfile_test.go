package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// everySetting gives each flag a value that is not its default, in the
// form the flag prints it. A flag missing here fails
// TestConfigFileCoversEveryFlag: a new flag needs a config key, a test
// value and a line in deploy/meshcast.yaml.
var everySetting = map[string]string{
	"listen": "127.0.0.1:9090", "metrics-listen": "127.0.0.1:9091", "max-message": "131072", "max-data": "65536",
	"max-subscriptions": "64", "write-queue": "2097152", "ping-interval": "30s", "allowed-origins": "https://a.example,https://b.example",
	"drain-timeout": "25s", "log-format": "json", "log-level": "debug", "pprof": "true", "gc-percent": "80", "io-uring": "false",
	"name": "edge-1", "gossip": "127.0.0.1:8946", "peer": "127.0.0.1:8947", "advertise": "10.1.2.3",
	"join": "seed-a:7946,seed-b:7946", "secret": "s3cret", "cluster-name": "prod", "join-timeout": "20s",
	"reconnect-interval": "3s", "reconnect-timeout": "12h0m0s", "history-memory": "512", "history-replicas": "3", "token-hmac-secret": "tok",
	"token-rsa-public-key": "/etc/meshcast/token.pem", "token-jwks-file": "/etc/meshcast/jwks.json", "token-max-lifetime": "1h0m0s", "insecure": "true",
	"namespace": "chat:subscribe=authenticated,publish=subscribers", "client-publish-rate": "2.5",
	"client-publish-burst": "10", "max-connections": "5000", "max-connections-per-ip": "50", "api-key": "key",
	"tls-cert": "/etc/meshcast/tls.pem", "tls-key": "/etc/meshcast/tls-key.pem", "peer-tls-cert": "/etc/meshcast/node.pem",
	"peer-tls-key": "/etc/meshcast/node-key.pem", "peer-tls-ca": "/etc/meshcast/ca.pem",
	// Each excludes one above (--secret, --api-key): set in a second file.
	"secret-file": "/etc/meshcast/secret", "api-key-file": "/etc/meshcast/api-key",
}

// exclusive are the settings of everySetting that go in the second file.
var exclusive = []string{"secret-file", "api-key-file"}

func noEnv(string) string { return "" }

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigFileCoversEveryFlag sets every flag from a config file and
// checks that each took the file's value.
func TestConfigFileCoversEveryFlag(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "deploy", "meshcast.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c config
	c.flagSet(io.Discard).VisitAll(func(f *flag.Flag) {
		if _, ok := everySetting[f.Name]; !ok && f.Name != "config" {
			t.Errorf("flag --%s has no config-file test value (everySetting) ", f.Name)
		}
		documented := strings.Contains(string(example), "\n"+f.Name+":") || strings.Contains(string(example), "\n# "+f.Name+":")
		if !documented && f.Name != "config" {
			t.Errorf("flag --%s is not in the example deploy/meshcast.yaml", f.Name)
		}
	})
	var first, second strings.Builder
	for k, v := range everySetting {
		b := &first
		if slices.Contains(exclusive, k) {
			b = &second
		}
		b.WriteString(k + ": " + quoteYAML(v) + "\n")
	}
	for _, text := range []string{first.String(), second.String()} {
		path := writeFile(t, "meshcast.yaml", text)
		cfg, err := parseConfig([]string{"--config", path}, noEnv, io.Discard)
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		for k := range everySetting {
			if strings.Contains(text, "\n"+k+":") || strings.HasPrefix(text, k+":") {
				if got := cfg.values[k]; got != everySetting[k] {
					t.Errorf("%s: %q, want %q", k, got, everySetting[k])
				}
			}
		}
	}
}

func quoteYAML(s string) string { return `"` + s + `"` }

// TestConfigFilePathsRelativeToTheFile: a relative path in the config
// file is read from the file's folder, whatever the working directory; a
// flag's stays relative to the working directory. Every flag that names a
// file must be in pathSettings.
func TestConfigFilePathsRelativeToTheFile(t *testing.T) {
	var c config
	c.flagSet(io.Discard).VisitAll(func(f *flag.Flag) {
		names := regexp.MustCompile(`\b(file|PEM)\b`).MatchString(f.Usage)
		if names && !pathSettings[f.Name] && f.Name != "config" && f.Name != "secret" && f.Name != "api-key" {
			t.Errorf("--%s names a file (%q) but is not in pathSettings", f.Name, f.Usage)
		}
	})
	dir := t.TempDir()
	secret := "kq3Yx7mB2vN9pL4sT8wZ1cF6hJ0dR5gU"
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "meshcast.yaml")
	if err := os.WriteFile(path, []byte("secret-file: secret\ntls-cert: tls/cert.pem\ntls-key: tls/key.pem\ntoken-jwks-file: /abs/jwks.json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // a working directory with no secret in it
	cfg, err := parseConfig([]string{"--config", path}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := cfg.clusterSecret(); err != nil || string(got) != secret {
		t.Fatalf("secret from the file's folder: %q, %v", got, err)
	}
	if want := filepath.Join(dir, "tls", "cert.pem"); cfg.values["tls-cert"] != want {
		t.Errorf("tls-cert %q, want %q", cfg.values["tls-cert"], want)
	}
	if cfg.values["token-jwks-file"] != "/abs/jwks.json" {
		t.Errorf("an absolute path changed: %q", cfg.values["token-jwks-file"])
	}
	cfg, err = parseConfig([]string{"--config", path, "--tls-cert", "mine.pem"}, noEnv, io.Discard)
	if err != nil || cfg.values["tls-cert"] != "mine.pem" {
		t.Fatalf("a flag's path: %q, %v (want it as given)", cfg.values["tls-cert"], err)
	}
}

// TestConfigPrecedence: a flag beats the environment, which beats the
// file, which beats the default.
func TestConfigPrecedence(t *testing.T) {
	path := writeFile(t, "meshcast.yaml", "max-message: 1000\nmax-data: 900\nmax-subscriptions: 7\nping-interval: 3s\n")
	env := map[string]string{"MESHCAST_MAX_MESSAGE": "2000", "MESHCAST_MAX_DATA": "800"}
	cfg, err := parseConfig([]string{"--config", path, "--max-message", "3000"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.maxMessage != 3000 || cfg.maxData != 800 || cfg.maxSubscriptions != 7 || cfg.writeQueue != 1<<20 {
		t.Fatalf("max-message %d (flag), max-data %d (env), max-subscriptions %d (file), write-queue %d (default)",
			cfg.maxMessage, cfg.maxData, cfg.maxSubscriptions, cfg.writeQueue)
	}
	// The environment may name the file too.
	cfg, err = parseConfig(nil, func(k string) string {
		return map[string]string{"MESHCAST_CONFIG": path}[k]
	}, io.Discard)
	if err != nil || cfg.maxSubscriptions != 7 {
		t.Fatalf("MESHCAST_CONFIG: %v, %d", err, cfg.maxSubscriptions)
	}
}

// TestConfigFileLists: a YAML list is a comma-separated flag value
// (namespace's rules are separated by ';').
func TestConfigFileLists(t *testing.T) {
	path := writeFile(t, "meshcast.yaml", `join: [a:7946, b:7946]
namespace:
  - "chat:publish=subscribers"
  - "news:publish=nobody"
namespaces:
  team: {subscribe: claim, publish: claim, origins: [https://a.example]}
`)
	cfg, err := parseConfig([]string{"--config", path}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := cfg.security.namespaceRules()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.join != "a:7946,b:7946" || len(rules) != 3 || rules["team"].Origins[0] != "https://a.example" {
		t.Fatalf("join %q, rules %+v", cfg.join, rules)
	}
}

// TestConfigCheck: `meshcast config check` reports every error with its
// line, and passes a good file.
func TestConfigCheck(t *testing.T) {
	bad := writeFile(t, "bad.yaml", `listen: ":9090"
max-message: lots
bogus: 1
namespaces:
  chat: {subscribe: anyone, publish: everybody, colour: red}
  "a:b": {}
listen: ":9091"
`)
	var out, errOut bytes.Buffer
	if code := configCommand([]string{"check", bad}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d for a bad file", code)
	}
	for _, want := range []string{
		bad + `:2: max-message: invalid value "lots"`,
		bad + `:3: unknown setting "bogus"`,
		bad + `:5: namespace "chat": hub: publish rule "everybody"`,
		bad + `:5: namespace "chat": unknown key "colour"`,
		bad + `:6: namespace "a:b" has a ':'`,
		bad + `:7: listen: set twice (first on line 1)`,
		"6 error(s)",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("missing %q in\n%s", want, errOut.String())
		}
	}
	// Every setting at odds with another is reported, each at its line.
	cross := writeFile(t, "cross.yaml", "max-message: 1000\nmax-data: 2000\nping-interval: 1ms\nhistory-replicas: 0\n"+
		"client-publish-burst: 5\ntls-cert: a.pem\n")
	errs := checkConfigFile(cross)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if len(errs) != 5 || !strings.HasPrefix(got[0], cross+":2: --max-data") ||
		!strings.HasPrefix(got[1], cross+":3: --ping-interval") || !strings.HasPrefix(got[2], cross+":4: --history-replicas") ||
		!strings.HasPrefix(got[3], cross+":5: --client-publish-burst") || !strings.HasPrefix(got[4], cross+":6: give both --tls-cert") {
		t.Fatalf("cross-setting errors:\n%s", strings.Join(got, "\n"))
	}
	missing := writeFile(t, "missing.yaml", "token-jwks-file: /nonexistent/jwks.json\n")
	if errs := checkConfigFile(missing); len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), missing+":1: --token-jwks-file") {
		t.Fatalf("missing key file: %v", errs)
	}
	out.Reset()
	if code := configCommand([]string{"check", filepath.Join("..", "..", "deploy", "meshcast.yaml")}, &out, &errOut); code != 0 {
		t.Fatalf("deploy/meshcast.yaml: exit %d\n%s", code, errOut.String())
	}
}

// TestConfigFileErrorsStopTheStart: a node does not start on a bad file,
// and says where.
func TestConfigFileErrorsStopTheStart(t *testing.T) {
	path := writeFile(t, "meshcast.yaml", "max-message: 1000\nmax-data: 2000\n")
	_, err := parseConfig([]string{"--config", path}, noEnv, io.Discard)
	var le *lineError
	if !errors.As(err, &le) || le.line != 2 {
		t.Fatalf("error %v, want one at line 2", err)
	}
	if _, err := parseConfig([]string{"--config", writeFile(t, "x.yaml", "- a\n- b\n")}, noEnv, io.Discard); err == nil {
		t.Fatal("a list as the whole file was accepted")
	}
	if _, err := parseConfig([]string{"--config", writeFile(t, "x.yaml", "config: other.yaml\n")}, noEnv, io.Discard); err == nil {
		t.Fatal("a config file naming another was accepted")
	}
}

// TestFlagErrorsSayWhatToDo: a bad flag gets one line that says what to do
// (not the whole usage), and settings that cannot work together are named.
func TestFlagErrorsSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--join-timeout", "10"}, "a duration takes a unit: 10s"},
		{[]string{"--max-message", "x for flag -nope: "}, `invalid value "x for flag -nope: " for flag -max-message`}, // once a panic
		{[]string{"--bogus"}, "flag provided but not defined: -bogus (meshcast --help lists the flags)"},
		{[]string{"--log-level", "loud"}, `--log-level must be debug, info, warn or error, not "loud"`},
		{[]string{"--gossip", "127.0.0.1:7946", "--peer", "127.0.0.1:7946"}, "--gossip and --peer must be different addresses"},
		{[]string{"--join", "10.0.0.1:7946,10.0.0.2:79466"}, `--join: "10.0.0.2:79466": the port must be a number from 1 to 65535`},
		{[]string{"--join", "10.0.0.1:7946,10.0.0.2:gossip"}, `--join: "10.0.0.2:gossip": the port must be`},
		{[]string{"--join", ":7946"}, `--join: ":7946" has no host`},
		{[]string{"--join", "10.0.0.1:7946:7946"}, `--join: "10.0.0.1:7946:7946" is not host:port`},
	} {
		var usage bytes.Buffer
		_, err := parseConfig(tc.args, noEnv, &usage)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
		if usage.Len() != 0 {
			t.Errorf("%v: %d bytes of usage printed for a mistake", tc.args, usage.Len())
		}
	}
	var usage bytes.Buffer
	if _, err := parseConfig([]string{"--help"}, noEnv, &usage); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "-max-message") {
		t.Fatalf("--help: %v, usage %q", err, usage.String())
	}
}

// TestSeedsThatMayWork: what --join accepts, a name that may resolve
// later and a seed without a port (memberlist's 7946) included.
func TestSeedsThatMayWork(t *testing.T) {
	ok := []string{"10.0.0.1:7946", "10.0.0.1", "meshcast-headless.default.svc:7946", "node-1", "[fd00::1]:7946", "fd00::1", "nosuchhost.invalid:7946"}
	if err := checkSeeds(ok); err != nil {
		t.Fatal(err)
	}
}
