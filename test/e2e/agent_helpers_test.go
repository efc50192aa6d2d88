package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// events lists the reasons of the events about one pod.
func (c *cluster) eventReasons(ns, pod string) []string {
	c.t.Helper()
	list, err := c.client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
	if err != nil {
		c.t.Fatalf("list events of %s/%s: %v", ns, pod, err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason)
	}
	return out
}

// waitEvent waits until the pod has an event with the reason.
func (c *cluster) waitEvent(ns, pod, reason string, timeout time.Duration) {
	c.t.Helper()
	c.eventually(timeout, func() error {
		for _, r := range c.eventReasons(ns, pod) {
			if r == reason {
				return nil
			}
		}
		return fmt.Errorf("pod %s/%s has no %s event; it has %v", ns, pod, reason, c.eventReasons(ns, pod))
	})
}

// startRegistry serves an in-process registry v2 on loopback holding the
// busybox test image as e2e/busybox:v1. It returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	host := l.Addr().String()
	img, err := tarball.ImageFromPath(busyboxTarball(t), nil)
	if err != nil {
		t.Fatalf("read busybox tarball: %v", err)
	}
	ref, err := name.ParseReference(host+"/e2e/busybox:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push busybox to the test registry: %v", err)
	}
	return host
}

// grpcHealthBinary builds testdata/grpchealth statically into a new
// directory, to be mounted into a busybox container by hostPath.
func grpcHealthBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ppgrpc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "grpchealth"), "./testdata/grpchealth")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build grpchealth: %v\n%s", err, out)
	}
	return dir
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	return strings.Split(freeAddr(t), ":")[1]
}

// sandboxOf reports whether a sandbox of the pod UID is on disk.
func (c *cluster) sandboxOf(uid string) bool {
	entries, _ := os.ReadDir(filepath.Join(c.dir, "pods"))
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(c.dir, "pods", e.Name(), "sandbox.json"))
		if err == nil && strings.Contains(string(data), uid) {
			return true
		}
	}
	return false
}

func containerStatus(statuses []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range statuses {
		if statuses[i].Name == name {
			return &statuses[i]
		}
	}
	return nil
}

func waitingReason(p *corev1.Pod, container string) string {
	cs := containerStatus(p.Status.ContainerStatuses, container)
	if cs == nil || cs.State.Waiting == nil {
		return ""
	}
	return cs.State.Waiting.Reason
}
