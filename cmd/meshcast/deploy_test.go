package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The deploy files are checked here against the binary they run: their
// arguments parse as flags, their ports, probe paths and timeouts match
// the flags. No container engine or cluster is needed (see the README for
// what this does not exercise).

func deployPath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "deploy"}, parts...)...)
}

// k8sObject is the part of a Kubernetes object these checks read.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		// Service
		ClusterIP                string    `yaml:"clusterIP"`
		PublishNotReadyAddresses bool      `yaml:"publishNotReadyAddresses"`
		Ports                    []k8sPort `yaml:"ports"`
		// StatefulSet, PodDisruptionBudget, NetworkPolicy
		ServiceName    string  `yaml:"serviceName"`
		Replicas       int     `yaml:"replicas"`
		Selector       k8sSel  `yaml:"selector"`
		PodSelector    k8sSel  `yaml:"podSelector"`
		MaxUnavailable int     `yaml:"maxUnavailable"`
		Template       k8sPod  `yaml:"template"`
		Ingress        []k8sIn `yaml:"ingress"`
	} `yaml:"spec"`
}

type k8sSel struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type k8sPort struct {
	Name          string `yaml:"name"`
	Port          int    `yaml:"port"`
	ContainerPort int    `yaml:"containerPort"`
	TargetPort    string `yaml:"targetPort"`
	Protocol      string `yaml:"protocol"`
}

type k8sIn struct {
	From  []map[string]any `yaml:"from"`
	Ports []k8sPort        `yaml:"ports"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sPod struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot bool `yaml:"runAsNonRoot"`
		} `yaml:"securityContext"`
		Containers []struct {
			Name           string    `yaml:"name"`
			Image          string    `yaml:"image"`
			Args           []string  `yaml:"args"`
			Ports          []k8sPort `yaml:"ports"`
			ReadinessProbe k8sProbe  `yaml:"readinessProbe"`
			LivenessProbe  k8sProbe  `yaml:"livenessProbe"`
			Lifecycle      struct {
				PreStop struct {
					Sleep struct {
						Seconds int `yaml:"seconds"`
					} `yaml:"sleep"`
				} `yaml:"preStop"`
			} `yaml:"lifecycle"`
			SecurityContext struct {
				ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
			} `yaml:"securityContext"`
		} `yaml:"containers"`
	} `yaml:"spec"`
}

// readManifests decodes every document of the Kubernetes file, by kind
// and name, checking each has the fields every object needs.
func readManifests(t *testing.T) map[string]k8sObject {
	t.Helper()
	b, err := os.ReadFile(deployPath("kubernetes", "meshcast.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(false)
	objs := map[string]k8sObject{}
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kubernetes/meshcast.yaml: %v", err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Fatalf("an object without apiVersion, kind or name: %+v", o)
		}
		objs[o.Kind+"/"+o.Metadata.Name] = o
	}
	for _, want := range []string{"ConfigMap/meshcast-config", "Service/meshcast-headless", "Service/meshcast",
		"StatefulSet/meshcast", "PodDisruptionBudget/meshcast", "NetworkPolicy/meshcast"} {
		if _, ok := objs[want]; !ok {
			t.Fatalf("no %s", want)
		}
	}
	return objs
}

// TestKubernetesManifests checks the StatefulSet's container against the
// binary's flags and the other objects against the StatefulSet.
func TestKubernetesManifests(t *testing.T) {
	objs := readManifests(t)
	sts := objs["StatefulSet/meshcast"]
	pod := sts.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	ctr := pod.Spec.Containers[0]
	cfg := k8sContainerConfig(t, objs["ConfigMap/meshcast-config"].Data["meshcast.yaml"], ctr.Args)

	ports := map[string]k8sPort{}
	for _, p := range ctr.Ports {
		ports[p.Name] = p
	}
	for name, addr := range map[string]string{"http": cfg.listen, "gossip-tcp": cfg.gossip, "gossip-udp": cfg.gossip,
		"peer": cfg.peer, "metrics": cfg.metricsListen} {
		if got := ports[name].ContainerPort; got != portOf(t, addr) {
			t.Errorf("container port %s is %d, the flag says %s", name, got, addr)
		}
	}
	if ports["gossip-udp"].Protocol != "UDP" || ports["gossip-tcp"].Protocol != "TCP" {
		t.Error("gossip needs both TCP and UDP")
	}
	if ctr.ReadinessProbe.HTTPGet.Path != "/readyz" || ctr.LivenessProbe.HTTPGet.Path != "/healthz" ||
		ctr.ReadinessProbe.HTTPGet.Port != "http" {
		t.Errorf("probes: readiness %+v, liveness %+v", ctr.ReadinessProbe, ctr.LivenessProbe)
	}
	grace := time.Duration(pod.Spec.TerminationGracePeriodSeconds) * time.Second
	preStop := time.Duration(ctr.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if preStop == 0 || grace < preStop+cfg.drainTimeout+2*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v must cover preStop %v + --drain-timeout %v, with room", grace, preStop, cfg.drainTimeout)
	}
	if !pod.Spec.SecurityContext.RunAsNonRoot || !ctr.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the pod must run as non-root on a read-only root file system")
	}
	checkK8sServices(t, objs, cfg)
	checkK8sSelectors(t, objs)
}

// k8sContainerConfig parses the container's args as the binary would,
// with the ConfigMap and the secret at the paths they are mounted at.
func k8sContainerConfig(t *testing.T, configMap string, args []string) config {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "meshcast.yaml")
	secret := filepath.Join(dir, "secret")
	os.WriteFile(file, []byte(configMap), 0o600)
	os.WriteFile(secret, []byte(testSecret+"\n"), 0o600)
	r := strings.NewReplacer("/etc/meshcast/meshcast.yaml", file, "/var/run/secrets/meshcast/secret", secret,
		"$(POD_NAME)", "meshcast-0", "$(POD_IP)", "10.0.0.7")
	var local []string
	for _, a := range args {
		local = append(local, r.Replace(a))
	}
	cfg, err := parseConfig(local, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("container args %v: %v", args, err)
	}
	if errs := checkConfigFile(file); len(errs) > 0 {
		t.Fatalf("the ConfigMap's meshcast.yaml: %v", errs)
	}
	if _, err := cfg.strongSecret(); err != nil { // as a start reads it
		t.Fatal(err)
	}
	return cfg
}

// checkK8sServices: the headless Service carries gossip (TCP and UDP) and
// peer ports and publishes pods before they are ready; --join names it.
func checkK8sServices(t *testing.T, objs map[string]k8sObject, cfg config) {
	t.Helper()
	headless := objs["Service/meshcast-headless"]
	if headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
		t.Error("the headless Service needs clusterIP None and publishNotReadyAddresses (a joining node is not ready yet)")
	}
	seen := map[string]bool{}
	for _, p := range headless.Spec.Ports {
		seen[p.Protocol+"/"+p.TargetPort] = true
	}
	for _, want := range []string{"TCP/gossip-tcp", "UDP/gossip-udp", "TCP/peer"} {
		if !seen[want] {
			t.Errorf("headless Service lacks %s", want)
		}
	}
	host, port, err := net.SplitHostPort(cfg.join)
	if err != nil || host != "meshcast-headless" || port != "7946" || portOf(t, cfg.gossip) != 7946 {
		t.Errorf("--join %q must be the headless Service at the gossip port", cfg.join)
	}
	if objs["StatefulSet/meshcast"].Spec.ServiceName != "meshcast-headless" {
		t.Error("the StatefulSet's serviceName is not the headless Service")
	}
	allowed := map[string]bool{}
	for _, in := range objs["NetworkPolicy/meshcast"].Spec.Ingress {
		for _, p := range in.Ports {
			allowed[p.Protocol+"/"+strconv.Itoa(p.Port)] = len(in.From) > 0
		}
	}
	for _, want := range []string{"TCP/7946", "UDP/7946", "TCP/7947"} {
		if !allowed[want] {
			t.Errorf("NetworkPolicy does not admit %s from meshcast pods only", want)
		}
	}
}

// checkK8sSelectors: every selector matches the pods' labels.
func checkK8sSelectors(t *testing.T, objs map[string]k8sObject) {
	t.Helper()
	labels := objs["StatefulSet/meshcast"].Spec.Template.Metadata.Labels
	for name, sel := range map[string]map[string]string{
		"StatefulSet":         objs["StatefulSet/meshcast"].Spec.Selector.MatchLabels,
		"PodDisruptionBudget": objs["PodDisruptionBudget/meshcast"].Spec.Selector.MatchLabels,
		"NetworkPolicy":       objs["NetworkPolicy/meshcast"].Spec.PodSelector.MatchLabels,
	} {
		if len(sel) == 0 {
			t.Errorf("%s has no selector", name)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selects %s=%s, the pods have %q", name, k, v, labels[k])
			}
		}
	}
	if objs["PodDisruptionBudget/meshcast"].Spec.MaxUnavailable != 1 {
		t.Error("the PodDisruptionBudget should let one pod go at a time")
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := net.LookupPort("tcp", p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
