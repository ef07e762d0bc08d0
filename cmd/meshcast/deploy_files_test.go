package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshcast/meshcast/metrics"
)

// unitDirectives reads a systemd unit: directive -> values, in order.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(line, "#") {
			d[k] = append(d[k], v)
		}
	}
	return d
}

// TestSystemdUnit: ExecStart parses as the binary's flags with the
// example config and the credential, the stop timeout covers the drain,
// the sandbox options are there, and systemd-analyze verify passes where
// it is installed.
func TestSystemdUnit(t *testing.T) {
	path := deployPath("systemd", "meshcast.service")
	d := unitDirectives(t, path)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte(testSecret), 0o600)
	exec0 := strings.Fields(d["ExecStart"][0])
	r := strings.NewReplacer("%d", dir, "/etc/meshcast/meshcast.yaml", deployPath("meshcast.yaml"))
	var args []string
	for _, a := range exec0[1:] {
		args = append(args, r.Replace(a))
	}
	cfg, err := parseConfig(args, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("ExecStart %v: %v", exec0, err)
	}
	if _, err := cfg.strongSecret(); err != nil { // as a start reads it
		t.Fatal(err)
	}
	if d["LoadCredential"][0] != "secret:/etc/meshcast/secret" {
		t.Errorf("LoadCredential %v", d["LoadCredential"])
	}
	stop, err := time.ParseDuration(d["TimeoutStopSec"][0])
	if err != nil || stop <= cfg.drainTimeout {
		t.Errorf("TimeoutStopSec %v must exceed --drain-timeout %v", d["TimeoutStopSec"], cfg.drainTimeout)
	}
	for _, k := range []string{"DynamicUser", "NoNewPrivileges", "ProtectSystem", "PrivateTmp", "SystemCallFilter", "ExecReload"} {
		if len(d[k]) == 0 {
			t.Errorf("no %s", k)
		}
	}
	verifyUnit(t, path, exec0[0])
}

// verifyUnit runs systemd-analyze verify on a copy of the unit whose
// ExecStart names a binary that exists (this test's own).
func verifyUnit(t *testing.T, path, binary string) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit not verified")
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	copyPath := filepath.Join(t.TempDir(), "meshcast.service")
	os.WriteFile(copyPath, []byte(strings.ReplaceAll(string(b), binary, self)), 0o644)
	if out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDockerfile: two stages, a static build, a distroless non-root
// image, and a CMD and HEALTHCHECK that fit the binary's flags.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(deployPath("docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", "")
	instr := map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && !strings.HasPrefix(line, "#") {
			instr[k] = append(instr[k], v)
		}
	}
	if len(instr["FROM"]) != 2 || !strings.Contains(instr["FROM"][1], "distroless/static") {
		t.Errorf("FROM %v: want a build stage and distroless/static", instr["FROM"])
	}
	if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(text, "-X main.version=") {
		t.Error("the binary must be static and carry its version")
	}
	if u := instr["USER"]; len(u) != 1 || strings.HasPrefix(u[0], "root") || strings.HasPrefix(u[0], "0") {
		t.Errorf("USER %v", u)
	}
	var cmd []string
	if err := json.Unmarshal([]byte(instr["CMD"][0]), &cmd); err != nil {
		t.Fatalf("CMD: %v", err)
	}
	cfg, err := parseConfig(cmd, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("CMD %v: %v", cmd, err)
	}
	hc := instr["HEALTHCHECK"]
	if len(hc) != 1 || !strings.Contains(hc[0], `"/meshcast", "health"`) ||
		!strings.Contains(hc[0], ":"+strconv.Itoa(portOf(t, cfg.listen))+"/healthz") {
		t.Errorf("HEALTHCHECK %v must run meshcast health against --listen's /healthz", hc)
	}
	for _, p := range []string{"8080", "7946/tcp", "7946/udp", "7947"} {
		if !strings.Contains(" "+instr["EXPOSE"][0]+" ", " "+p+" ") {
			t.Errorf("EXPOSE %v lacks %s", instr["EXPOSE"], p)
		}
	}
}

// TestGrafanaDashboard: the dashboard is valid JSON and every metric its
// queries name is one the binary exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(deployPath("grafana", "meshcast-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	known := exportedFamilies(t)
	name := regexp.MustCompile(`\b(meshcast|go|process)_[a-z_]+`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !known[base] {
					t.Errorf("panel %q: %s is not a metric meshcast exports", p.Title, m)
				}
			}
		}
	}
	if queries < 20 {
		t.Errorf("%d queries", queries)
	}
}

// exportedFamilies lists every family name a node registers.
func exportedFamilies(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	if _, err := metrics.NewHistograms(reg); err != nil {
		t.Fatal(err)
	}
	cs := []prometheus.Collector{metrics.NewCollector(metrics.Sources{}), metrics.NewBuildInfoCollector(metrics.ReadBuildInfo("")),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		httpRefusedCounter(newConnLimit(0, 0))}
	ch := make(chan *prometheus.Desc, 1000)
	for _, c := range cs {
		c.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	known := map[string]bool{}
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			known[m[1]] = true
		}
	}
	for _, h := range []string{"meshcast_subscribe_ack_wait_seconds", "meshcast_publish_enqueue_seconds", "meshcast_peer_round_trip_seconds"} {
		known[h] = true
	}
	return known
}

// TestREADMEProduction: the README's Production section shows the example
// config file as it is, and names every metric family meshcast exports.
func TestREADMEProduction(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(deployPath("meshcast.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(example)+"```") {
		t.Error("README.md does not show deploy/meshcast.yaml as it is")
	}
	for name := range exportedFamilies(t) {
		if !strings.HasPrefix(name, "meshcast_") {
			continue
		}
		wild := name[:strings.Index(name[len("meshcast_"):], "_")+len("meshcast_")] + "_*`"
		if !strings.Contains(string(readme), "`"+name+"`") && !strings.Contains(string(readme), "`"+wild) {
			t.Errorf("README.md's metrics table lacks %s", name)
		}
	}
}
