package apiserver

import (
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// startServer runs a real server (embedded etcd, HTTPS) on 127.0.0.1:0.
func startServer(t *testing.T, dir string) (*Server, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Config{DataDir: dir, Listen: "127.0.0.1:0", BookmarkInterval: time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("server not ready")
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	return s, stop
}

func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func kubectl(t *testing.T, kubeconfig string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+os.TempDir()+"/pp-kubectl-home")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustKubectl(t *testing.T, kubeconfig, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectl(t, kubeconfig, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return out
}

const twoContainerPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: nginx
    image: nginx:1.25
    ports: [{containerPort: 80, name: http}]
    volumeMounts: [{name: shared, mountPath: /usr/share/nginx/html}]
  - name: writer
    image: busybox
    command: ["sh", "-c", "while true; do date > /data/index.html; sleep 1; done"]
    volumeMounts: [{name: shared, mountPath: /data}]
`

// testEndToEndKubectl is the suite's core: apply, get, describe, patch,
// get -w, graceful delete, run, invalid manifests.
func testEndToEndKubectl(t *testing.T, start serverStarter) {
	s, stop := start(t)
	t.Cleanup(stop)
	kc := s.Kubeconfig()

	// Unauthenticated requests are refused with a Status.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := insecure.Get("https://" + s.Addr() + "/api/v1/pods")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", resp.StatusCode)
	}
	if out, _ := exec.Command("curl", "-sk", "https://"+s.Addr()+"/api/v1/namespaces").CombinedOutput(); !strings.Contains(string(out), `"code": 401`) && !strings.Contains(string(out), `"code":401`) {
		t.Fatalf("curl anonymous: %s", out)
	}

	out := mustKubectl(t, kc, twoContainerPod, "apply", "-f", "-")
	if !strings.Contains(out, "pod/web created") {
		t.Fatalf("apply: %s", out)
	}
	rv1 := mustKubectl(t, kc, "", "get", "pod", "web", "-o", "jsonpath={.metadata.resourceVersion}")
	out = mustKubectl(t, kc, twoContainerPod, "apply", "-f", "-")
	if !strings.Contains(out, "unchanged") {
		t.Fatalf("apply twice: %s", out)
	}
	if rv2 := mustKubectl(t, kc, "", "get", "pod", "web", "-o", "jsonpath={.metadata.resourceVersion}"); rv2 != rv1 {
		t.Fatalf("apply twice changed RV %s -> %s", rv1, rv2)
	}
	out = mustKubectl(t, kc, "", "get", "pods")
	t.Logf("get pods:\n%s", out)
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "READY") || !strings.Contains(out, "web") || !strings.Contains(out, "0/2") || !strings.Contains(out, "Pending") {
		t.Fatalf("get pods: %s", out)
	}
	out = mustKubectl(t, kc, "", "get", "pods", "-o", "wide")
	if !strings.Contains(out, "NOMINATED NODE") || !strings.Contains(out, "READINESS GATES") {
		t.Fatalf("get pods -o wide: %s", out)
	}
	out = mustKubectl(t, kc, "", "get", "pod", "web", "-o", "yaml")
	for _, want := range []string{"restartPolicy: Always", "imagePullPolicy: IfNotPresent", "imagePullPolicy: Always", "terminationGracePeriodSeconds: 30", "node.kubernetes.io/not-ready", "uid:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("get -o yaml lacks %q:\n%s", want, out)
		}
	}
	if out = mustKubectl(t, kc, "", "get", "pod", "web", "-o", "jsonpath={.spec.containers[*].name}"); out != "nginx writer" {
		t.Fatalf("jsonpath: %q", out)
	}
	out = mustKubectl(t, kc, "", "describe", "pod", "web")
	if !strings.Contains(out, "Name:") || !strings.Contains(out, "nginx:1.25") {
		t.Fatalf("describe: %s", out)
	}
	out = mustKubectl(t, kc, "", "patch", "pod", "web", "-p", `{"metadata":{"labels":{"tier":"front"}}}`)
	if !strings.Contains(out, "patched") {
		t.Fatalf("patch: %s", out)
	}
	out = mustKubectl(t, kc, "", "patch", "pod", "web", "--type=json", "-p", `[{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]`)
	if !strings.Contains(out, "patched") {
		t.Fatalf("json patch: %s", out)
	}
	if out = mustKubectl(t, kc, "", "get", "pods", "-l", "tier=front", "-o", "name"); strings.TrimSpace(out) != "pod/web" {
		t.Fatalf("label selector: %q", out)
	}

	// get -w sees a status change made through client-go.
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	watchCmd := exec.CommandContext(wctx, "kubectl", "--kubeconfig", kc, "get", "pods", "-w")
	var watchOut strings.Builder
	watchCmd.Stdout, watchCmd.Stderr = &watchOut, &watchOut
	if err := watchCmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	pod, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "10.88.0.5"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.88.0.5"}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}})
	}
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(watchOut.String(), "Running") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	wcancel()
	watchCmd.Wait()
	if !strings.Contains(watchOut.String(), "Running") || !strings.Contains(watchOut.String(), "2/2") {
		t.Fatalf("get -w did not see the status change:\n%s", watchOut.String())
	}
	t.Logf("get -w:\n%s", watchOut.String())

	// Bind to a node so deletion is graceful.
	if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out = mustKubectl(t, kc, "", "get", "pods", "-o", "wide")
	if !strings.Contains(out, "10.88.0.5") || !strings.Contains(out, "node1") {
		t.Fatalf("wide after bind: %s", out)
	}
	// kubectl delete waits for the object to go: play the agent.
	go func() {
		for i := 0; i < 100; i++ {
			p, err := cs.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
			if err == nil && p.DeletionTimestamp != nil {
				zero := int64(0)
				cs.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: &zero})
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	out = mustKubectl(t, kc, "", "delete", "pod", "web", "--timeout=20s")
	if !strings.Contains(out, `pod "web" deleted`) {
		t.Fatalf("delete: %s", out)
	}

	out = mustKubectl(t, kc, "", "run", "x", "--image=busybox")
	if !strings.Contains(out, "pod/x created") {
		t.Fatalf("run: %s", out)
	}
	out = mustKubectl(t, kc, "", "get", "ns")
	for _, ns := range []string{"default", "kube-system", "kube-public", "Active"} {
		if !strings.Contains(out, ns) {
			t.Fatalf("get ns lacks %s: %s", ns, out)
		}
	}
	out = mustKubectl(t, kc, "", "api-resources")
	for _, want := range []string{"pods", "po", "leases", "runtimeclasses", "configmaps"} {
		if !strings.Contains(out, want) {
			t.Fatalf("api-resources lacks %s: %s", want, out)
		}
	}
	out = mustKubectl(t, kc, "", "get", "sa,cm", "-n", "kube-system")
	if !strings.Contains(out, "default") || !strings.Contains(out, "kube-root-ca.crt") {
		t.Fatalf("seeded objects: %s", out)
	}

	// Invalid manifests: 422 naming every field; malformed: 400.
	bad := `apiVersion: v1
kind: Pod
metadata: {name: Bad_Name}
spec:
  containers:
  - name: a
    image: busybox
    volumeMounts: [{name: nope, mountPath: /x}]
  - name: a
`
	out, err = kubectl(t, kc, bad, "apply", "-f", "-")
	if err == nil {
		t.Fatalf("invalid pod accepted: %s", out)
	}
	for _, want := range []string{"metadata.name", "spec.containers[1].name", "spec.containers[1].image", "spec.containers[0].volumeMounts[0].name"} {
		if !strings.Contains(out, want) {
			t.Fatalf("422 lacks %s: %s", want, out)
		}
	}
	out, err = kubectl(t, kc, "apiVersion: v1\nkind: Pod\nmetadata: {name: x2}\nspec: {containers: [{name: a, image: b, bogus: 1}]}\n", "create", "-f", "-")
	if err == nil || !strings.Contains(out, "bogus") {
		t.Fatalf("unknown field accepted: %v %s", err, out)
	}
}
