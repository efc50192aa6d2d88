package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// The API server's proxy subresources reach a pod's HTTP port, a
// Service's ready pod and the node agent, for kubectl get --raw and
// kubectl proxy users, with Kubernetes' authorization.
func TestProxySubresources(t *testing.T) {
	c := startCluster(t)
	c.apply(`
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www/sub && echo hello-from-web > /www/index.html && echo sub-page > /www/sub/index.html && exec httpd -f -p 80 -h /www"]
    ports: [{name: http, containerPort: 80}]
    readinessProbe:
      httpGet: {path: /, port: http}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: http}]
`)
	c.waitPod("default", "web", 60*time.Second, "Ready", ready)

	t.Run("kubectl get --raw through pods/proxy and services/proxy", func(t *testing.T) {
		c := c.with(t)
		for path, want := range map[string]string{
			"/api/v1/namespaces/default/pods/web:80/proxy/":            "hello-from-web",
			"/api/v1/namespaces/default/pods/web/proxy/":               "hello-from-web", // the first declared port
			"/api/v1/namespaces/default/pods/http:web:80/proxy/sub/":   "sub-page",
			"/api/v1/namespaces/default/services/web:8080/proxy/":      "hello-from-web",
			"/api/v1/namespaces/default/services/web:http/proxy/sub/":  "sub-page",
			"/api/v1/namespaces/default/services/http:web:http/proxy/": "hello-from-web",
		} {
			if got := c.must("get", "--raw", path); got != want {
				t.Errorf("get --raw %s: %q, want %q", path, got, want)
			}
		}
		if out, err := c.kubectl("get", "--raw", "/api/v1/namespaces/default/services/web:9999/proxy/"); err == nil || !strings.Contains(out, "ServiceUnavailable") && !strings.Contains(out, "no service port 9999") {
			t.Errorf("a port the Service lacks: %v %q", err, out)
		}
	})

	t.Run("redirects stay under the proxy path", func(t *testing.T) {
		rt, err := rest.TransportFor(c.with(t).restConfig())
		if err != nil {
			t.Fatal(err)
		}
		client := &http.Client{Transport: rt, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		// httpd redirects a directory without its slash.
		resp, err := client.Get("https://" + c.listen + "/api/v1/namespaces/default/pods/web:80/proxy/sub")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/api/v1/namespaces/default/pods/web:80/proxy/sub/" {
			t.Errorf("redirect: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// .../proxy itself redirects to .../proxy/.
		if resp, err = client.Get("https://" + c.listen + "/api/v1/namespaces/default/pods/web:80/proxy"); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/api/v1/namespaces/default/pods/web:80/proxy/" {
			t.Errorf("root: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	t.Run("kubectl proxy", func(t *testing.T) {
		c := c.with(t)
		port := strings.Split(freeAddr(t), ":")[1]
		cmd := exec.Command("kubectl", "--kubeconfig", c.kubeconfig, "proxy", "--port", port)
		out := &lockedWriter{b: &bytes.Buffer{}}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		})
		base := "http://127.0.0.1:" + port
		get := func(path string) (int, string, error) {
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(base + path)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return resp.StatusCode, strings.TrimSpace(string(b)), err
		}
		c.eventually(30*time.Second, func() error {
			select {
			case <-exited:
				t.Fatalf("kubectl proxy exited: %s", out.String())
			default:
			}
			if code, _, err := get("/version"); err != nil || code != 200 {
				return fmt.Errorf("kubectl proxy not serving yet: %d %v", code, err)
			}
			return nil
		})
		for path, want := range map[string]string{
			"/api/v1/namespaces/default/pods/web:80/proxy/":          "hello-from-web",
			"/api/v1/namespaces/default/services/web:8080/proxy/":    "hello-from-web",
			"/api/v1/namespaces/default/pods/web:80/proxy/sub":       "sub-page", // followed through the rewritten Location
			"/api/v1/namespaces/default/services/web:http/proxy/sub": "sub-page",
		} {
			if code, body, err := get(path); err != nil || code != 200 || body != want {
				t.Errorf("kubectl proxy %s: %d %q %v, want %q", path, code, body, err, want)
			}
		}
	})

	t.Run("nodes/proxy reaches the node agent", func(t *testing.T) {
		c := c.with(t)
		if got := c.must("get", "--raw", "/api/v1/nodes/e2e-node/proxy/healthz"); got != "ok" {
			t.Errorf("healthz: %q", got)
		}
		var pods corev1.PodList
		if err := json.Unmarshal([]byte(c.must("get", "--raw", "/api/v1/nodes/e2e-node/proxy/pods")), &pods); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, p := range pods.Items {
			found = found || (p.Namespace == "default" && p.Name == "web" && p.Status.PodIP != "")
		}
		if pods.Kind != "PodList" || !found {
			t.Errorf("the node's pods: kind %q, %d pods, web among them: %v", pods.Kind, len(pods.Items), found)
		}
		var configz struct {
			KubeletConfig struct {
				Kind    string `json:"kind"`
				PodCIDR string `json:"podCIDR"`
			} `json:"kubeletconfig"`
		}
		if err := json.Unmarshal([]byte(c.must("get", "--raw", "/api/v1/nodes/e2e-node/proxy/configz")), &configz); err != nil {
			t.Fatal(err)
		}
		node, err := c.client.CoreV1().Nodes().Get(context.Background(), "e2e-node", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if configz.KubeletConfig.Kind != "KubeletConfiguration" || configz.KubeletConfig.PodCIDR != node.Spec.PodCIDR {
			t.Errorf("configz: %+v", configz)
		}
		// The kubelet's own paths through the proxy: a container's log.
		if got := c.must("get", "--raw", "/api/v1/nodes/e2e-node/proxy/containerLogs/default/web/web"); got != "" {
			t.Errorf("web's log: %q", got)
		}
	})

	t.Run("403 without the proxy verbs", func(t *testing.T) {
		c := c.with(t)
		// The default service account may read pods in its namespace,
		// and nothing else.
		token := c.must("create", "token", "default")
		as := func(args ...string) (string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", "/dev/null", "--server", "https://" + c.listen,
				"--certificate-authority", filepath.Join(c.dir, "pki", "ca.crt"), "--token", token}, args...)...)
			out, err := cmd.CombinedOutput()
			return strings.TrimSpace(string(out)), err
		}
		if out, err := as("get", "pod", "web", "-o", "name"); err != nil || out != "pod/web" {
			t.Fatalf("the service account cannot read the pod: %v %q", err, out)
		}
		for path, resource := range map[string]string{
			"/api/v1/namespaces/default/pods/web:80/proxy/":       `cannot get resource "pods/proxy"`,
			"/api/v1/namespaces/default/services/web:8080/proxy/": `cannot get resource "services/proxy"`,
			"/api/v1/nodes/e2e-node/proxy/healthz":                `cannot get resource "nodes/proxy"`,
		} {
			out, err := as("get", "--raw", path)
			if err == nil || !strings.Contains(out, "Forbidden") || !strings.Contains(out, resource) {
				t.Errorf("%s as the service account: %v %q, want Forbidden on %s", path, err, out, resource)
			}
		}
	})
}
