package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	etcd "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// randomValue returns a value that appears nowhere by chance.
func randomValue(t *testing.T, what string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return what + "-" + hex.EncodeToString(b)
}

// grepTree returns the files under root that contain needle.
func grepTree(t *testing.T, root string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("grep %s: %v", root, err)
	}
	return hits
}

// assertEtcdHides greps the data dir's etcd for each secret value (raw and
// base64) and for a control value that must be found, proving the grep
// reads what etcd wrote.
func assertEtcdHides(t *testing.T, dataDir, control string, secrets ...string) {
	t.Helper()
	root := filepath.Join(dataDir, "etcd")
	if hits := grepTree(t, root, []byte(control)); len(hits) == 0 {
		t.Fatalf("the control value %q is nowhere under %s: the grep proves nothing", control, root)
	}
	for _, s := range secrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			if hits := grepTree(t, root, []byte(form)); len(hits) > 0 {
				t.Fatalf("a Secret's value (%q) is readable in %v", form, hits)
			}
		}
	}
}

// etcdClient connects to the server's embedded etcd as the API server
// does: over the socket, with the etcd CA's client certificate.
func etcdClient(t *testing.T, dataDir string) *etcd.Client {
	t.Helper()
	pki := filepath.Join(dataDir, "pki")
	cfg, err := transport.TLSInfo{TrustedCAFile: filepath.Join(pki, "etcd", "ca.crt"),
		CertFile: filepath.Join(pki, "apiserver-etcd-client.crt"), KeyFile: filepath.Join(pki, "apiserver-etcd-client.key")}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcd.New(etcd.Config{Endpoints: []string{"unixs://" + filepath.Join(dataDir, "etcd", "etcd.sock")}, TLS: cfg,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// storedSecrets returns every Secret's value as etcd holds it.
func storedSecrets(t *testing.T, cli *etcd.Client) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/registry/secrets/", etcd.WithPrefix())
	if err != nil {
		t.Fatalf("read Secrets from etcd: %v", err)
	}
	out := map[string][]byte{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out
}

const secretPod = `apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "cat /s/password; echo; exec sleep 3600"]
    volumeMounts: [{name: s, mountPath: /s}]
  volumes:
  - name: s
    secret: {secretName: door}
`

// TestNoOpenDoorToState (issue 17): a Secret's value is found nowhere under
// the data dir's etcd, yet kubectl and a pod's secret volume read it; the
// embedded etcd answers only a client holding the etcd CA's certificate,
// on a socket; and of every TCP port the server process listens on, none
// answers without a client credential except the API's /healthz, /livez,
// /readyz, /version (and /cacerts, the public CA certificate joining nodes
// check), and the node agent's port demands the server's certificate.
func TestNoOpenDoorToState(t *testing.T) {
	c := startCluster(t)
	secret, control := randomValue(t, "secret"), randomValue(t, "control")
	c.must("create", "secret", "generic", "door", "--from-literal=password="+secret)
	c.must("create", "configmap", "control", "--from-literal=k="+control)

	// Authorised users read it decrypted.
	got, err := base64.StdEncoding.DecodeString(c.must("get", "secret", "door", "-o", "jsonpath={.data.password}"))
	if err != nil || string(got) != secret {
		t.Fatalf("kubectl get secret: %q %v", got, err)
	}
	// So does the node, for the pod's secret volume.
	c.apply(secretPod)
	c.waitPod("default", "reader", 120*time.Second, "Running", running)
	c.eventually(30*time.Second, func() error {
		if out, _ := c.kubectl("logs", "reader"); !strings.Contains(out, secret) {
			return fmt.Errorf("the pod's secret volume does not hold the value; log: %q", out)
		}
		return nil
	})

	assertEtcdHides(t, c.dir, control, secret)
	stored := storedSecrets(t, etcdClient(t, c.dir))["/registry/secrets/default/door"]
	if !bytes.HasPrefix(stored, []byte("k8s:enc:secretbox:v1:key1:")) {
		t.Fatalf("the Secret is stored as %q", stored[:min(len(stored), 40)])
	}

	t.Run("ports", func(t *testing.T) { testPortsNeedCredentials(t, c.with(t), secret) })
	t.Run("etcd socket", func(t *testing.T) { testEtcdSocket(t, c.with(t)) })

	// Stopped, etcd has flushed everything to its files: still nothing.
	c.kill(syscall.SIGTERM)
	assertEtcdHides(t, c.dir, control, secret)
	// Started again, the same key opens it.
	c.start()
	got, err = base64.StdEncoding.DecodeString(c.must("get", "secret", "door", "-o", "jsonpath={.data.password}"))
	if err != nil || string(got) != secret {
		t.Fatalf("kubectl get secret after a restart: %q %v", got, err)
	}
}

// listeningPorts returns the TCP ports pid listens on: the LISTEN sockets
// of its network namespace (/proc/<pid>/net/tcp, tcp6) whose inodes are
// among the process's open sockets (/proc/<pid>/fd).
func listeningPorts(t *testing.T, pid int) map[int]string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	ports := map[int]string{}
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			local := fields[1]
			port, err := strconv.ParseInt(local[strings.LastIndex(local, ":")+1:], 16, 32)
			if err != nil {
				t.Fatalf("parse %s line %q: %v", table, sc.Text(), err)
			}
			ports[int(port)] = table + " " + local
		}
		f.Close()
	}
	return ports
}

// publicPaths answer anonymous clients on the API port, as Kubernetes'
// system:public-info-viewer allows; /cacerts serves the cluster CA's
// certificate (public by nature) for joining nodes, as k3s's does.
var publicPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true, "/version": true, "/cacerts": true}

// probedPaths cover the API (resources, discovery, OpenAPI, metrics, the
// join endpoint, the proxy to node agents) and the node agent's paths.
var probedPaths = []string{
	"/", "/api", "/api/v1", "/apis", "/openapi/v2", "/openapi/v3", "/metrics", "/logs/", "/debug/pprof/",
	"/api/v1/secrets", "/api/v1/namespaces/default/secrets", "/api/v1/namespaces/default/secrets/door",
	"/api/v1/namespaces/kube-system/secrets", "/api/v1/configmaps", "/api/v1/pods", "/api/v1/nodes",
	"/api/v1/namespaces/default/pods/reader/log", "/api/v1/namespaces/default/pods/reader/exec?command=cat&command=/s/password&stdout=true",
	"/api/v1/nodes/e2e-node/proxy/healthz", "/apis/apps/v1/deployments", "/peapod/v1/join",
	"/healthz/etcd", "/readyz/etcd", "/containerLogs/default/reader/c", "/exec/default/reader/c?command=id", "/pods", "/stats/summary",
	"/healthz", "/livez", "/readyz", "/version", "/cacerts",
}

func testPortsNeedCredentials(t *testing.T, c *cluster, secret string) {
	ports := listeningPorts(t, c.cmd.Process.Pid)
	_, apiPort, _ := net.SplitHostPort(c.listen)
	if _, ok := ports[atoi(t, apiPort)]; !ok {
		t.Fatalf("the scan missed the API port %s: %v", apiPort, ports)
	}
	if _, ok := ports[atoi(t, c.agentPort)]; !ok {
		t.Fatalf("the scan missed the node agent port %s: %v", c.agentPort, ports)
	}
	t.Logf("the server listens on %v", ports)
	caPEM, err := os.ReadFile(filepath.Join(c.dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for port := range ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		t.Run(strconv.Itoa(port), func(t *testing.T) {
			// Plain HTTP gets nothing.
			for _, p := range []string{"/", "/api/v1/secrets", "/version"} {
				if code, body, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+p, nil); err == nil && code < 400 {
					t.Fatalf("plain HTTP %s answered %d: %.200s", p, code, body)
				}
			}
			anon := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			if _, _, err := get(anon, "https://"+addr+"/version", nil); err != nil {
				// The TLS handshake itself demands a client certificate.
				t.Logf("port %d: refused without a client certificate: %v", port, err)
				return
			}
			for _, p := range probedPaths {
				for _, header := range []http.Header{nil, {"Authorization": {"Bearer not-a-token"}}} {
					code, body, err := get(anon, "https://"+addr+p, header)
					if err != nil {
						t.Fatalf("GET %s: %v", p, err)
					}
					if strings.Contains(body, secret) || strings.Contains(body, base64.StdEncoding.EncodeToString([]byte(secret))) {
						t.Fatalf("GET %s without a credential shows the Secret: %.300s", p, body)
					}
					switch {
					case publicPaths[p] && header == nil:
						if code != http.StatusOK {
							t.Fatalf("public %s: %d %.200s", p, code, body)
						}
						if p == "/cacerts" && body != string(caPEM) {
							t.Fatalf("/cacerts serves more than the CA certificate: %.300s", body)
						}
					case publicPaths[p]:
						if code != http.StatusUnauthorized && code != http.StatusOK {
							t.Fatalf("public %s with a bad token: %d", p, code)
						}
					case code < 400:
						t.Fatalf("GET %s without a credential answered %d: %.300s", p, code, body)
					}
				}
			}
			// Writes too.
			req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/api/v1/namespaces/default/secrets", strings.NewReader(`{"metadata":{"name":"x"}}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := anon.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("anonymous create: %d", resp.StatusCode)
			}
		})
	}

	// The node agent's port: nothing without a certificate, nor with a
	// certificate from another CA; the server's own client certificate
	// gets an answer.
	agent := net.JoinHostPort("127.0.0.1", c.agentPort)
	if err := tlsHandshake(agent, nil); err == nil {
		t.Fatal("the node agent's port accepted a client without a certificate")
	}
	foreign := selfSignedClientCert(t)
	if err := tlsHandshake(agent, &foreign); err == nil {
		t.Fatal("the node agent's port accepted a certificate from another CA")
	}
	server, err := tls.LoadX509KeyPair(filepath.Join(c.dir, "pki", "apiserver-kubelet-client.crt"), filepath.Join(c.dir, "pki", "apiserver-kubelet-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{server}}}}
	if code, body, err := get(withCert, "https://"+agent+"/healthz", nil); err != nil || code != http.StatusOK {
		t.Fatalf("the node agent with the server's certificate: %d %q %v", code, body, err)
	}
	// And the API answers a credential: the probes above were not refused
	// for some other reason.
	admin, err := tls.LoadX509KeyPair(filepath.Join(c.dir, "pki", "admin.crt"), filepath.Join(c.dir, "pki", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	adminClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{admin}}}}
	if code, body, err := get(adminClient, "https://"+c.listen+"/api/v1/namespaces/default/secrets/door", nil); err != nil || code != http.StatusOK || !strings.Contains(body, base64.StdEncoding.EncodeToString([]byte(secret))) {
		t.Fatalf("the admin reading the Secret: %d %.200s %v", code, body, err)
	}
}

// testEtcdSocket: the embedded etcd listens on a socket in a 0700
// directory, and turns away plain HTTP and TLS without the etcd CA's
// client certificate; the API server's certificate reads.
func testEtcdSocket(t *testing.T, c *cluster) {
	dir := filepath.Join(c.dir, "etcd")
	socket := filepath.Join(dir, "etcd.sock")
	st, err := os.Stat(socket)
	if err != nil || st.Mode().Type() != fs.ModeSocket {
		t.Fatalf("%s: %v %v", socket, st, err)
	}
	if dst, err := os.Stat(dir); err != nil || dst.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v", dir, dst.Mode(), err)
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial}}
	for _, p := range []string{"/version", "/health", "/metrics"} {
		if code, body, err := get(plain, "http://etcd"+p, nil); err == nil && code < 400 {
			t.Fatalf("etcd answered plain HTTP %s: %d %.200s", p, code, body)
		}
	}
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	client := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	client.SetDeadline(time.Now().Add(5 * time.Second))
	err = client.Handshake()
	if err == nil {
		fmt.Fprintf(client, "GET /version HTTP/1.1\r\nHost: etcd\r\n\r\n")
		_, err = client.Read(make([]byte, 1))
	}
	client.Close()
	if err == nil {
		t.Fatal("etcd answered TLS without a client certificate")
	}
	// The cluster CA's admin certificate is no etcd credential.
	pki := filepath.Join(c.dir, "pki")
	cfg, err := transport.TLSInfo{TrustedCAFile: filepath.Join(pki, "etcd", "ca.crt"),
		CertFile: filepath.Join(pki, "admin.crt"), KeyFile: filepath.Join(pki, "admin.key")}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := etcd.New(etcd.Config{Endpoints: []string{"unixs://" + socket}, TLS: cfg, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = cli.Get(ctx, "/registry/secrets/", etcd.WithPrefix(), etcd.WithKeysOnly())
	cancel()
	cli.Close()
	if err == nil {
		t.Fatal("etcd answered the admin's cluster-CA certificate")
	}
	if n := len(storedSecrets(t, etcdClient(t, c.dir))); n == 0 {
		t.Fatal("the API server's etcd certificate read no Secret")
	}
}

func get(client *http.Client, url string, header http.Header) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), nil
}

// tlsHandshake completes a handshake and one read, which is where a TLS
// 1.3 server's refusal of the client's certificate arrives.
func tlsHandshake(addr string, cert *tls.Certificate) error {
	cfg := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
	_, err = conn.Read(make([]byte, 1))
	return err
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// selfSignedClientCert makes a client certificate no peapod CA signed.
func selfSignedClientCert(t *testing.T) tls.Certificate {
	t.Helper()
	dir := t.TempDir()
	f := writeTestPKI(t, dir)
	cert, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParseCertificate(cert.Certificate[0]); err != nil {
		t.Fatal(err)
	}
	return cert
}
