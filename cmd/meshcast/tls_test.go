package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/meshcast/meshcast/transport/wstest"
)

// certFiles writes a self-signed ECDSA certificate for 127.0.0.1 with the
// given common name to cert.pem and key.pem in dir (replacing them) and
// returns a pool trusting it.
func certFiles(t testing.TB, dir, cn string) *x509.CertPool {
	t.Helper()
	cert, pool := wstest.SelfSigned(t, cn)
	der := cert.Certificate[0]
	kder, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "cert.pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, "key.pem"), "EC PRIVATE KEY", kder)
	return pool
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsNodeConfig is testNodeConfig with --tls-cert/--tls-key from dir.
func tlsNodeConfig(t testing.TB, dir string) config {
	cfg := testNodeConfig(t)
	cfg.tls.cert = filepath.Join(dir, "cert.pem")
	cfg.tls.key = filepath.Join(dir, "key.pem")
	return cfg
}

// dialWSS opens a WebSocket over TLS trusting roots, reads the hello, and
// returns the client and the certificate the server presented.
func dialWSS(t testing.TB, addr string, roots *x509.CertPool) (*wstest.Client, *x509.Certificate) {
	t.Helper()
	var state tls.ConnectionState
	d := ws.Dialer{
		Timeout:   5 * time.Second,
		TLSConfig: &tls.Config{RootCAs: roots},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, "wss://"+addr+"/ws")
	if err != nil {
		t.Fatalf("dial wss://%s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	if tc, ok := conn.(*tls.Conn); ok {
		state = tc.ConnectionState()
	} else {
		t.Fatalf("dialled a %T, want *tls.Conn", conn)
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	c := &wstest.Client{T: t, Conn: conn, R: br}
	if m := c.ReadJSON(); m["op"] != "hello" {
		t.Fatalf("first message %v, want hello", m)
	}
	return c, state.PeerCertificates[0]
}

func httpsClient(roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DisableKeepAlives: true, // no idle connection left for goleak
	}}
}

func TestTLSServesWSSAndHTTPS(t *testing.T) {
	dir := t.TempDir()
	roots := certFiles(t, dir, "first")
	n := startTestNode(t, tlsNodeConfig(t, dir), nodeOptions{})
	addr := n.listener.Addr().String()

	resp, err := httpsClient(roots).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<title>meshcast chat</title>") {
		t.Fatalf("demo page over https: %d %.200s", resp.StatusCode, body)
	}
	if resp.ProtoMajor != 1 {
		t.Fatalf("served %s: WebSocket upgrades need HTTP/1.1", resp.Proto)
	}

	sub, cert := dialWSS(t, addr, roots)
	if cert.Subject.CommonName != "first" {
		t.Fatalf("server certificate %q", cert.Subject.CommonName)
	}
	sub.MustAck(`{"op":"sub","ch":"secure","id":1}`)
	pub, _ := dialWSS(t, addr, roots)
	pub.MustAck(`{"op":"pub","ch":"secure","data":"over tls","id":1}`)
	if m := sub.ReadJSON(); m["op"] != "msg" || m["data"] != "over tls" {
		t.Fatalf("subscriber got %v", m)
	}

	// Plain HTTP on the TLS port is answered with an error, not served.
	if status, _ := get(t, "http://"+addr+"/healthz"); status != http.StatusBadRequest {
		t.Fatalf("plain http on the TLS port: %d, want 400", status)
	}
}

func TestTLSReloadKeepsConnections(t *testing.T) {
	dir := t.TempDir()
	firstRoots := certFiles(t, dir, "first")
	n := startTestNode(t, tlsNodeConfig(t, dir), nodeOptions{})
	addr := n.listener.Addr().String()
	old, cert := dialWSS(t, addr, firstRoots)
	if cert.Subject.CommonName != "first" {
		t.Fatalf("server certificate %q", cert.Subject.CommonName)
	}
	old.MustAck(`{"op":"sub","ch":"rotate","id":1}`)

	secondRoots := certFiles(t, dir, "second")
	if err := n.tls.reload(testLogger(t)); err != nil {
		t.Fatal(err)
	}
	fresh, cert := dialWSS(t, addr, secondRoots)
	if cert.Subject.CommonName != "second" {
		t.Fatalf("after reload the server presents %q, want second", cert.Subject.CommonName)
	}
	// The connection made before the reload still works both ways.
	fresh.MustAck(`{"op":"pub","ch":"rotate","data":"after reload","id":1}`)
	if m := old.ReadJSON(); m["op"] != "msg" || m["data"] != "after reload" {
		t.Fatalf("old connection got %v", m)
	}
	old.MustAck(`{"op":"pub","ch":"elsewhere","data":"old still sends","id":2}`)

	// A broken file fails the reload and keeps the current certificate.
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("not a pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.tls.reload(testLogger(t)); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("reload of a broken file: %v, want an error naming --tls-cert", err)
	}
	if _, cert := dialWSS(t, addr, secondRoots); cert.Subject.CommonName != "second" {
		t.Fatalf("after a failed reload the server presents %q", cert.Subject.CommonName)
	}
}

func TestTLSFlagErrors(t *testing.T) {
	for _, bad := range [][]string{
		{"--tls-cert", "c.pem"},
		{"--tls-key", "k.pem"},
		{"--peer-tls-cert", "c.pem", "--peer-tls-key", "k.pem"},
	} {
		if _, err := parseConfig(bad, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	cfg := testNodeConfig(t)
	cfg.tls.cert, cfg.tls.key = filepath.Join(t.TempDir(), "missing.pem"), "missing-key.pem"
	if _, err := startNode(cfg, testLogger(t), nodeOptions{}); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("missing certificate: %v, want an error naming --tls-cert", err)
	}
}

// TestSIGHUPReloadsCertificate runs the binary: SIGHUP swaps the
// certificate for new connections and keeps the open ones.
func TestSIGHUPReloadsCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	firstRoots := certFiles(t, dir, "first")
	bin := filepath.Join(t.TempDir(), "meshcast")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := startProc(t, bin, "--tls-cert", filepath.Join(dir, "cert.pem"), "--tls-key", filepath.Join(dir, "key.pem"))
	// startProc cut "http://" off the logged "https://host:port".
	addr := strings.TrimPrefix(p.httpAddr, "/")
	old, cert := dialWSS(t, addr, firstRoots)
	if cert.Subject.CommonName != "first" {
		t.Fatalf("server certificate %q", cert.Subject.CommonName)
	}
	old.MustAck(`{"op":"sub","ch":"hup","id":1}`)

	secondRoots := certFiles(t, dir, "second")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, 10*time.Second, "reload logged", func() bool { return strings.Contains(p.log(), "certificate reloaded") })
	fresh, cert := dialWSS(t, addr, secondRoots)
	if cert.Subject.CommonName != "second" {
		t.Fatalf("after SIGHUP the server presents %q, want second", cert.Subject.CommonName)
	}
	fresh.MustAck(`{"op":"pub","ch":"hup","data":"after hup","id":1}`)
	if m := old.ReadJSON(); m["op"] != "msg" || m["data"] != "after hup" {
		t.Fatalf("connection from before SIGHUP got %v", m)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := old.ExpectClose(); code != 1001 {
		t.Fatalf("close %d, want 1001", code)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Fatalf("exit %v after SIGTERM; log:\n%s", err, p.log())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
	for _, l := range strings.Split(p.log(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["level"] == "ERROR" {
			t.Errorf("error logged: %s", l)
		}
	}
}

// peerTLSFiles writes ca.pem and, for each node, <node>.pem and
// <node>-key.pem signed by that CA, usable as TLS server and client.
func peerTLSFiles(t testing.TB, dir string, nodes ...string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshcast test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)
	for i, name := range nodes {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
		writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kder)
	}
}

func TestPeerTLSFlags(t *testing.T) {
	dir := t.TempDir()
	peerTLSFiles(t, dir, "node-0", "node-1")
	var nodes []*node
	for i := range 2 {
		cfg := testNodeConfig(t)
		cfg.name = "node-" + strconv.Itoa(i)
		cfg.tls.peerCert = filepath.Join(dir, cfg.name+".pem")
		cfg.tls.peerKey = filepath.Join(dir, cfg.name+"-key.pem")
		cfg.tls.peerCA = filepath.Join(dir, "ca.pem")
		if i > 0 {
			cfg.join = "127.0.0.1:" + strconv.Itoa(nodes[0].cluster.GossipPort())
		}
		nodes = append(nodes, startTestNode(t, cfg, nodeOptions{memberlist: fastGossip}))
	}
	wstest.WaitFor(t, 20*time.Second, "peer links over TLS", func() bool {
		return upLinks(nodes[0]) == 1 && upLinks(nodes[1]) == 1
	})
	sub := wstest.Dial(t, nodes[1].wsURL())
	sub.MustAck(`{"op":"sub","ch":"mtls","id":1}`)
	pub := wstest.Dial(t, nodes[0].wsURL())
	pub.MustAck(`{"op":"pub","ch":"mtls","data":"across","id":1}`)
	if m := sub.ReadJSON(); m["op"] != "msg" || m["data"] != "across" {
		t.Fatalf("subscriber on node-1 got %v", m)
	}
	for _, n := range nodes {
		if f := n.cluster.Stats().HandshakeFailures; f != 0 {
			t.Fatalf("%d handshake failures", f)
		}
	}

	// A CA file without a certificate is refused at start, naming the flag.
	cfg := testNodeConfig(t)
	cfg.tls.peerCert, cfg.tls.peerKey = filepath.Join(dir, "node-0.pem"), filepath.Join(dir, "node-0-key.pem")
	cfg.tls.peerCA = filepath.Join(dir, "node-0-key.pem")
	if _, err := startNode(cfg, testLogger(t), nodeOptions{}); err == nil || !strings.Contains(err.Error(), "--peer-tls-ca") {
		t.Fatalf("bad CA file: %v, want an error naming --peer-tls-ca", err)
	}
}
