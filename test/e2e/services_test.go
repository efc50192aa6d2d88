package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestServices runs issue 12's Service acceptance through kubectl against
// one real `peapod server` (API on every address, so pods reach it
// through the kubernetes Service): ClusterIPs over every replica, scaling
// to zero and back, a rolling update without a failed request, hairpin,
// session affinity, NodePorts with both traffic policies from a client
// outside the node, UDP across a backend replacement, the API from a pod,
// Service environment variables, refused bad input, and headless and
// ExternalName Services left to DNS. Each subtest has its own namespace;
// the helpers take only the cluster and addresses, so they run on a
// many-node cluster too.
func TestServices(t *testing.T) {
	probe := svcProbeDir(t)
	_, port, _ := net.SplitHostPort(freeAddr(t))
	c := startClusterWith(t, "--listen", "0.0.0.0:"+port)
	// Registered after the cluster's: runs first, so the teardown's pod
	// deletion is not undone by Deployments replacing their pods.
	t.Cleanup(func() {
		if out, err := c.kubectl("delete", "deployments", "--all", "--all-namespaces", "--wait=false"); err != nil {
			t.Errorf("delete the Deployments: %v %s", err, out)
		}
	})
	s := &svcTest{probe: probe}
	t.Run("ClusterIP reaches every replica", func(t *testing.T) { s.testClusterIP(t, c.with(t)) })
	t.Run("scaled to zero refuses at once, scaled up serves", func(t *testing.T) { s.testScale(t, c.with(t)) })
	t.Run("rolling update without a failed request", func(t *testing.T) { s.testRollingUpdate(t, c.with(t)) })
	t.Run("a pod reaches itself through its Service", func(t *testing.T) { s.testHairpin(t, c.with(t)) })
	t.Run("session affinity pins a client", func(t *testing.T) { s.testAffinity(t, c.with(t)) })
	t.Run("NodePort and externalTrafficPolicy", func(t *testing.T) { s.testNodePort(t, c.with(t)) })
	t.Run("UDP across a backend replacement", func(t *testing.T) { s.testUDP(t, c.with(t)) })
	t.Run("the kubernetes Service from a pod", func(t *testing.T) { s.testKubernetesService(t, c.with(t)) })
	t.Run("Service environment variables", func(t *testing.T) { s.testServiceEnv(t, c.with(t)) })
	t.Run("bad input is refused and programs nothing", func(t *testing.T) { s.testBadInput(t, c.with(t)) })
	t.Run("headless and ExternalName program nothing", func(t *testing.T) { s.testHeadless(t, c.with(t)) })
}

type svcTest struct {
	// probe is a host directory holding the svcprobe binary, mounted into
	// pods at /probe.
	probe string
}

// svcProbeDir builds testdata/svcprobe, statically, into a directory
// pods mount.
func svcProbeDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ppsvcprobe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "svcprobe"), "./testdata/svcprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build svcprobe: %v\n%s", err, out)
	}
	return dir
}

// probePodSpec is the tail of a pod spec mounting the probe at /probe for
// one container (its volumeMounts line is indented for a container).
func (s *svcTest) probeMount() string {
	return "volumeMounts: [{name: probe, mountPath: /probe, readOnly: true}]"
}

func (s *svcTest) probeVolume() string {
	return fmt.Sprintf("volumes: [{name: probe, hostPath: {path: %s, type: Directory}}]", s.probe)
}

// deployment is NAME in NS: replicas of `svcprobe serve 8080` answering
// "<hostname> <client ip>", Ready through an HTTP probe, rolled one new
// pod at a time (maxUnavailable 0), each serving 2 s more after SIGTERM.
func (s *svcTest) deployment(ns, name string, replicas int) string {
	return s.placedDeployment(ns, name, replicas, "")
}

// placedDeployment is deployment with one more line of the pod spec,
// placement on a many-node cluster (a nodeSelector, topology spread
// constraints) in YAML's flow style.
func (s *svcTest) placedDeployment(ns, name string, replicas int, placement string) string {
	return fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: %[3]d
  selector: {matchLabels: {app: %[2]s}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: busybox
        command: [/probe/svcprobe, serve, "8080", "2s"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        %[4]s
      %[5]s
      %[6]s
`, ns, name, replicas, s.probeMount(), s.probeVolume(), placement)
}

// service is a Service NAME in NS selecting app=SELECT, port 80 to the
// named port http, with extra spec lines.
func service(ns, name, selectApp, extra string) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[3]s}
  ports: [{name: web, port: 80, targetPort: http}]
%[4]s
`, ns, name, selectApp, extra)
}

// client runs a pod NAME in NS that sleeps, with the probe mounted.
func (s *svcTest) client(c *cluster, ns, name string, extra string) {
	c.t.Helper()
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  terminationGracePeriodSeconds: 0
  %[5]s
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    %[3]s
  %[4]s
`, ns, name, s.probeMount(), s.probeVolume(), extra))
	c.waitPod(ns, name, 60*time.Second, "Running", running)
}

// probe runs svcprobe in a pod and returns what it printed. Its answer
// is the command's stdout alone: kubectl may log a line of its own to
// stderr (klog's "E1207 ..."), which is no part of the answer; that line
// goes to the test log, and on failure both streams are returned.
func probe(c *cluster, ns, pod string, args ...string) (string, error) {
	return c.kubectlStdout(append([]string{"exec", "-n", ns, pod, "--", "/probe/svcprobe"}, args...)...)
}

func (c *cluster) clusterIP(ns, name string) string {
	c.t.Helper()
	svc, err := c.client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// waitDeploymentReady waits until every replica of deployment NAME is
// Ready and the Service's EndpointSlices list them all as ready.
func (c *cluster) waitReadyEndpoints(ns, svc string, n int) []string {
	c.t.Helper()
	var ips []string
	c.eventually(90*time.Second, func() error {
		slices, err := c.client.DiscoveryV1().EndpointSlices(ns).List(context.Background(),
			metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return err
		}
		ips = nil
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					ips = append(ips, e.Addresses[0])
				}
			}
		}
		if len(ips) != n {
			return fmt.Errorf("Service %s/%s: %d ready endpoints %v, want %d", ns, svc, len(ips), ips, n)
		}
		return nil
	})
	return ips
}

// hostnameOf is the first word of a svcprobe serve answer.
func hostnameOf(answer string) string {
	f := strings.Fields(answer)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func (s *svcTest) testClusterIP(t *testing.T, c *cluster) {
	ns := c.namespace("svc-clusterip")
	c.apply(s.deployment(ns, "web", 3))
	c.apply(service(ns, "web", "web", ""))
	s.client(c, ns, "client", "")
	c.waitReadyEndpoints(ns, "web", 3)

	// The controllers' objects, as Kubernetes makes them.
	slices, err := c.client.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
	if err != nil || len(slices.Items) != 1 {
		t.Fatalf("slices of web: %v %v", slices, err)
	}
	sl := slices.Items[0]
	if sl.Labels[discoveryv1.LabelManagedBy] != "endpointslice-controller.k8s.io" || len(sl.OwnerReferences) != 1 ||
		sl.OwnerReferences[0].Kind != "Service" || *sl.Ports[0].Port != 8080 || *sl.Ports[0].Name != "web" ||
		sl.Endpoints[0].NodeName == nil || sl.Endpoints[0].TargetRef == nil {
		t.Errorf("EndpointSlice %s: labels %v owners %v ports %v endpoint %+v", sl.Name, sl.Labels, sl.OwnerReferences, sl.Ports, sl.Endpoints[0])
	}
	if out := c.must("get", "endpoints", "-n", ns, "web"); strings.Count(out, ":8080") != 3 {
		t.Errorf("kubectl get endpoints: %s", out)
	}

	cip := c.clusterIP(ns, "web")
	seen := map[string]int{}
	for range 60 {
		out, err := probe(c, ns, "client", "get", "http://"+cip+"/")
		if err != nil {
			t.Fatalf("GET through ClusterIP %s: %v %s", cip, err, out)
		}
		seen[hostnameOf(out)]++
	}
	if len(seen) != 3 {
		t.Errorf("60 requests reached %d replicas (%v), want all 3", len(seen), seen)
	}
	// No NAT between pods: the backend sees the client pod's own IP.
	clientIP := c.pod(ns, "client").Status.PodIP
	out, _ := probe(c, ns, "client", "get", "http://"+cip+"/")
	if f := strings.Fields(out); len(f) != 2 || f[1] != clientIP {
		t.Errorf("backend saw %q, want the client pod's IP %s", out, clientIP)
	}
}

func (s *svcTest) testScale(t *testing.T, c *cluster) {
	ns := c.namespace("svc-scale")
	c.apply(s.deployment(ns, "web", 1))
	c.apply(service(ns, "web", "web", ""))
	s.client(c, ns, "client", "")
	c.waitReadyEndpoints(ns, "web", 1)
	cip := c.clusterIP(ns, "web")

	c.must("scale", "-n", ns, "deployment/web", "--replicas=0")
	c.eventually(60*time.Second, func() error {
		pods, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 0 {
			return fmt.Errorf("web pods left: %d %v", len(pods.Items), err)
		}
		return nil
	})
	// No endpoint: the connection is refused by the node at once, not
	// left to time out.
	c.eventually(10*time.Second, func() error {
		out, _ := probe(c, ns, "client", "connect", cip+":80")
		if !strings.HasPrefix(out, "refused") {
			return fmt.Errorf("connect to %s:80 with no endpoint: %q, want refused", cip, out)
		}
		return nil
	})

	c.must("scale", "-n", ns, "deployment/web", "--replicas=1")
	var readyAt time.Time
	c.eventually(90*time.Second, func() error {
		pods, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) != 1 || !ready(&pods.Items[0]) {
			return fmt.Errorf("web not Ready yet")
		}
		for _, cond := range pods.Items[0].Status.Conditions {
			if cond.Type == corev1.PodReady {
				readyAt = cond.LastTransitionTime.Time
			}
		}
		return nil
	})
	c.eventually(10*time.Second, func() error {
		out, err := probe(c, ns, "client", "get", "http://"+cip+"/")
		if err != nil {
			return fmt.Errorf("GET after scaling up: %v %s", err, out)
		}
		return nil
	})
	t.Logf("served %s after the pod turned Ready (make bench measures it)", time.Since(readyAt).Round(10*time.Millisecond))
}

func (s *svcTest) testRollingUpdate(t *testing.T, c *cluster) {
	ns := c.namespace("svc-rollout")
	c.apply(s.deployment(ns, "web", 3))
	c.apply(service(ns, "web", "web", ""))
	s.client(c, ns, "client", "")
	c.waitReadyEndpoints(ns, "web", 3)
	cip := c.clusterIP(ns, "web")

	// A client requests all through the rollout, a fresh connection each
	// time, until told to stop.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	loop := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "exec", "-n", ns, "client", "--",
		"/probe/svcprobe", "loop", "http://"+cip+"/", "/tmp/stop")
	var out strings.Builder
	loop.Stdout, loop.Stderr = &out, &out
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // requests before the rollout too
	c.must("set", "env", "-n", ns, "deployment/web", "ROLL=2")
	c.must("rollout", "status", "-n", ns, "deployment/web", "--timeout=180s")
	c.waitReadyEndpoints(ns, "web", 3)
	c.must("exec", "-n", ns, "client", "--", "touch", "/tmp/stop")
	if err := loop.Wait(); err != nil {
		t.Fatalf("request loop: %v\n%s", err, out.String())
	}
	var ok, failed int
	if _, err := fmt.Sscanf(out.String(), "ok=%d failed=%d", &ok, &failed); err != nil {
		t.Fatalf("loop output %q: %v", out.String(), err)
	}
	t.Logf("rolling update: %d requests, %d failed", ok+failed, failed)
	if failed != 0 || ok < 50 {
		t.Errorf("rolling update: %d ok, %d failed, want many and none failed:\n%s", ok, failed, out.String())
	}
}

func (s *svcTest) testHairpin(t *testing.T, c *cluster) {
	ns := c.namespace("svc-hairpin")
	c.apply(s.deployment(ns, "self", 1))
	c.apply(service(ns, "self", "self", ""))
	c.waitReadyEndpoints(ns, "self", 1)
	pods, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=self"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("self pods: %v %v", pods, err)
	}
	pod := pods.Items[0]
	cip := c.clusterIP(ns, "self")
	c.eventually(10*time.Second, func() error {
		out, err := probe(c, ns, pod.Name, "get", "http://"+cip+"/")
		if err != nil || hostnameOf(out) != pod.Name {
			return fmt.Errorf("%s through its own Service: %v %q", pod.Name, err, out)
		}
		// The hairpin is masqueraded (as kube-proxy does), so the pod's
		// reply to itself comes back through the node.
		if f := strings.Fields(out); f[1] == pod.Status.PodIP {
			return fmt.Errorf("hairpin not masqueraded: the pod saw its own address %s", f[1])
		}
		return nil
	})
}

func (s *svcTest) testAffinity(t *testing.T, c *cluster) {
	ns := c.namespace("svc-affinity")
	c.apply(s.deployment(ns, "web", 3))
	c.apply(service(ns, "sticky", "web", "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}"))
	s.client(c, ns, "client", "")
	c.waitReadyEndpoints(ns, "sticky", 3)
	cip := c.clusterIP(ns, "sticky")
	seen := map[string]int{}
	for range 20 {
		out, err := probe(c, ns, "client", "get", "http://"+cip+"/")
		if err != nil {
			t.Fatalf("GET: %v %s", err, out)
		}
		seen[hostnameOf(out)]++
	}
	if len(seen) != 1 {
		t.Errorf("session affinity: 20 requests reached %v, want one replica", seen)
	}
}

// nodeIP is a node's InternalIP.
func (c *cluster) nodeIP(name string) string {
	c.t.Helper()
	n, err := c.client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	c.t.Fatalf("node %s has no InternalIP", name)
	return ""
}

// nodePortOf is the NodePort of Service NAME's first port.
func nodePortOf(c *cluster, ns, name string) string {
	c.t.Helper()
	svc, err := c.client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	if svc.Spec.Ports[0].NodePort == 0 {
		c.t.Fatalf("Service %s/%s has no NodePort", ns, name)
	}
	return fmt.Sprint(svc.Spec.Ports[0].NodePort)
}

// externalClient is a network namespace outside the cluster, joined to
// the host by a veth pair (host 192.168.251.1/30, client .2), from which
// requests reach NodePorts as a machine on the network would.
type externalClient struct {
	t     *testing.T
	netns string
	ip    string
	bin   string // the svcprobe binary
}

func newExternalClient(t *testing.T, probeDir string) *externalClient {
	t.Helper()
	e := &externalClient{t: t, netns: "ppsvc-client", ip: "192.168.251.2", bin: filepath.Join(probeDir, "svcprobe")}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", e.netns).Run() // a leftover of an aborted run
	run("netns", "add", e.netns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", "ppsvch0").Run()
		if out, err := exec.Command("ip", "netns", "del", e.netns).CombinedOutput(); err != nil {
			t.Errorf("remove netns %s: %v %s", e.netns, err, out)
		}
	})
	run("link", "add", "ppsvch0", "type", "veth", "peer", "name", "ppsvcc0", "netns", e.netns)
	run("addr", "add", "192.168.251.1/30", "dev", "ppsvch0")
	run("link", "set", "ppsvch0", "up")
	run("-n", e.netns, "addr", "add", e.ip+"/30", "dev", "ppsvcc0")
	run("-n", e.netns, "link", "set", "ppsvcc0", "up")
	run("-n", e.netns, "link", "set", "lo", "up")
	run("-n", e.netns, "route", "add", "default", "via", "192.168.251.1")
	return e
}

func (e *externalClient) probe(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", e.netns, e.bin}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (s *svcTest) testNodePort(t *testing.T, c *cluster) {
	ns := c.namespace("svc-nodeport")
	c.apply(s.deployment(ns, "web", 1))
	c.apply(service(ns, "np", "web", "  type: NodePort"))
	c.apply(service(ns, "np-local", "web", "  type: NodePort\n  externalTrafficPolicy: Local"))
	c.waitReadyEndpoints(ns, "np-local", 1)
	nodePort := func(name string) string { return nodePortOf(c, ns, name) }
	nodeIP := c.nodeIP("e2e-node")
	ext := newExternalClient(t, s.probe)

	// Policy Cluster: answered on the node IP, the client masqueraded
	// (the endpoint could be on another node).
	url := "http://" + net.JoinHostPort(nodeIP, nodePort("np")) + "/"
	c.eventually(10*time.Second, func() error {
		out, err := ext.probe("get", url)
		if err != nil {
			return fmt.Errorf("external client → %s: %v %s", url, err, out)
		}
		if f := strings.Fields(out); f[1] == ext.ip {
			return fmt.Errorf("policy Cluster kept the client address %s, want it masqueraded", f[1])
		}
		return nil
	})
	// From the node itself too.
	if out, err := ext.probe("get", url); err != nil {
		t.Errorf("again: %v %s", err, out)
	}
	if body, err := exec.Command(filepath.Join(s.probe, "svcprobe"), "get", url).CombinedOutput(); err != nil {
		t.Errorf("node → its own NodePort %s: %v %s", url, err, body)
	}

	// Policy Local: the backend sees the client's own address.
	url = "http://" + net.JoinHostPort(nodeIP, nodePort("np-local")) + "/"
	c.eventually(10*time.Second, func() error {
		out, err := ext.probe("get", url)
		if err != nil {
			return fmt.Errorf("external client → %s: %v %s", url, err, out)
		}
		if f := strings.Fields(out); f[1] != ext.ip {
			return fmt.Errorf("externalTrafficPolicy Local: the backend saw %s, want the client's %s", f[1], ext.ip)
		}
		return nil
	})

	// Policy Local and no endpoint on this node: this node does not
	// answer (the packet is dropped), while the ClusterIP still serves.
	// The endpoint is a real pod's, claimed to be on another node.
	pods, err := c.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("web pods: %v", err)
	}
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: remote, namespace: %[1]s}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  ports: [{name: web, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: remote-1
  namespace: %[1]s
  labels: {kubernetes.io/service-name: remote}
addressType: IPv4
ports: [{name: web, port: 8080, protocol: TCP}]
endpoints: [{addresses: ["%[2]s"], nodeName: another-node, conditions: {ready: true}}]
`, ns, pods.Items[0].Status.PodIP))
	s.client(c, ns, "client", "")
	cip := c.clusterIP(ns, "remote")
	c.eventually(10*time.Second, func() error {
		if out, err := probe(c, ns, "client", "get", "http://"+cip+"/"); err != nil {
			return fmt.Errorf("ClusterIP of a Service with only a remote endpoint: %v %s", err, out)
		}
		return nil
	})
	out, _ := ext.probe("connect", net.JoinHostPort(nodeIP, nodePort("remote")))
	if !strings.HasPrefix(out, "timeout") {
		t.Errorf("NodePort with policy Local and no local endpoint: %q, want no answer (timeout)", out)
	}
}

func (s *svcTest) testUDP(t *testing.T, c *cluster) {
	ns := c.namespace("svc-udp")
	c.apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: dns, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: dns}}
  template:
    metadata: {labels: {app: dns}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: udp
        image: busybox
        command: [/probe/svcprobe, udp-serve, "5353"]
        ports: [{name: dns, containerPort: 5353, protocol: UDP}]
        %[2]s
      - name: tcp
        image: busybox
        command: [/probe/svcprobe, serve, "5353"]
        ports: [{name: dns-tcp, containerPort: 5353, protocol: TCP}]
        %[2]s
      %[3]s
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: %[1]s}
spec:
  selector: {app: dns}
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: dns}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: dns-tcp}
`, ns, s.probeMount(), s.probeVolume()))
	s.client(c, ns, "client", "")
	c.waitReadyEndpoints(ns, "dns", 1)
	cip := c.clusterIP(ns, "dns")
	// One port over both protocols.
	var first string
	c.eventually(10*time.Second, func() error {
		out, err := probe(c, ns, "client", "udp-ask", cip+":53", "40000")
		if err != nil {
			return fmt.Errorf("UDP %s:53: %v %s", cip, err, out)
		}
		first = strings.TrimSpace(out)
		return nil
	})
	if out, err := probe(c, ns, "client", "get", "http://"+cip+":53/"); err != nil || hostnameOf(out) != first {
		t.Errorf("TCP %s:53: %v %q, want %s", cip, err, out, first)
	}

	// Keep asking from the same source port (one conntrack entry) while
	// the backend is replaced: the stale entry must go, or the questions
	// keep going to the dead pod's address.
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	var last string
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := probe(c, ns, "client", "udp-ask", cip+":53", "40000")
			mu.Lock()
			if err == nil {
				last = strings.TrimSpace(out)
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	defer func() { close(stop); <-done }()
	c.must("delete", "pod", "-n", ns, first, "--grace-period=0")
	c.eventually(60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if last == "" || last == first {
			return fmt.Errorf("UDP answers still from %q (replaced pod %s)", last, first)
		}
		return nil
	})
}

func (s *svcTest) testKubernetesService(t *testing.T, c *cluster) {
	ns := c.namespace("svc-kubernetes")
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: incluster, namespace: %[1]s}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [/probe/svcprobe, incluster]
    %[2]s
  %[3]s
`, ns, s.probeMount(), s.probeVolume()))
	p := c.waitPod(ns, "incluster", 60*time.Second, "finished", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	logs := c.must("logs", "-n", ns, "incluster")
	if p.Status.Phase != corev1.PodSucceeded || !strings.Contains(logs, "host=https://10.96.0.1:443") || !strings.Contains(logs, "pods=1") {
		t.Errorf("in-cluster client-go through the kubernetes Service: %s\n%s", p.Status.Phase, logs)
	}
	eps := c.must("get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[0].addresses[0].ip}")
	if ip := net.ParseIP(eps); ip == nil || ip.IsLoopback() {
		t.Errorf("kubernetes Endpoints address %q, want the server's routable address", eps)
	}
}

func (s *svcTest) testServiceEnv(t *testing.T, c *cluster) {
	ns := c.namespace("svc-env")
	c.apply(service(ns, "redis-primary", "nothing", "  ports: [{name: redis, port: 6379}]"))
	cip := c.clusterIP(ns, "redis-primary")
	s.client(c, ns, "linked", "")
	s.client(c, ns, "unlinked", "enableServiceLinks: false")
	env := c.must("exec", "-n", ns, "linked", "--", "env")
	for _, want := range []string{
		"REDIS_PRIMARY_SERVICE_HOST=" + cip, "REDIS_PRIMARY_SERVICE_PORT=6379", "REDIS_PRIMARY_SERVICE_PORT_REDIS=6379",
		"REDIS_PRIMARY_PORT=tcp://" + cip + ":6379", "REDIS_PRIMARY_PORT_6379_TCP_PROTO=tcp", "REDIS_PRIMARY_PORT_6379_TCP_ADDR=" + cip,
		"KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443",
	} {
		if !strings.Contains(env, want+"\n") && !strings.HasSuffix(env, want) {
			t.Errorf("linked pod's env lacks %s:\n%s", want, env)
		}
	}
	env = c.must("exec", "-n", ns, "unlinked", "--", "env")
	if strings.Contains(env, "REDIS_PRIMARY") || !strings.Contains(env, "KUBERNETES_SERVICE_HOST=10.96.0.1") {
		t.Errorf("enableServiceLinks: false: env\n%s\nwant the kubernetes Service's variables only", env)
	}
}

// nftTable is the service proxy's table as nft prints it.
func nftTable(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", "peapod").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table ip peapod: %v %s", err, out)
	}
	return string(out)
}

func (s *svcTest) testBadInput(t *testing.T, c *cluster) {
	ns := c.namespace("svc-bad")
	refused := func(what, want string, args ...string) {
		t.Helper()
		out, err := c.kubectl(append(args, "-n", ns)...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: %v %q, want an error with %q", what, err, out, want)
		}
	}
	refused("NodePort out of range", `spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767`,
		"create", "service", "nodeport", "low", "--tcp=80:80", "--node-port=80")
	c.must("create", "service", "nodeport", "first", "--tcp=80:80", "--node-port=31999", "-n", ns)
	refused("NodePort taken", `spec.ports[0].nodePort: Invalid value: 31999: provided port is already allocated`,
		"create", "service", "nodeport", "second", "--tcp=81:81", "--node-port=31999")
	refused("ClusterIP outside the range", `the provided IP (192.168.77.7) is not in the valid range. The range of valid IPs is 10.96.0.0/12`,
		"create", "service", "clusterip", "outside", "--tcp=80:80", "--clusterip=192.168.77.7")
	c.must("create", "service", "clusterip", "fixed", "--tcp=80:80", "--clusterip=10.96.77.7", "-n", ns)
	refused("ClusterIP taken", `failed to allocate IP 10.96.77.7: provided IP is already allocated`,
		"create", "service", "clusterip", "again", "--tcp=80:80", "--clusterip=10.96.77.7")
	for _, name := range []string{"low", "second", "outside", "again"} {
		if _, err := c.client.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
			t.Errorf("refused Service %s exists", name)
		}
	}
	// Nothing of the refused Services is programmed; the accepted ones
	// are (without endpoints: rejected).
	c.eventually(10*time.Second, func() error {
		table := nftTable(t)
		if !strings.Contains(table, "10.96.77.7 . tcp . 80 : goto reject-chain") || !strings.Contains(table, "tcp . 31999 : goto reject-chain") {
			return fmt.Errorf("accepted Services not programmed:\n%s", table)
		}
		if strings.Contains(table, "192.168.77.7") {
			return fmt.Errorf("table holds the refused ClusterIP:\n%s", table)
		}
		nodePorts, err := exec.Command("nft", "list", "map", "ip", "peapod", "no-endpoint-nodeports").CombinedOutput()
		if err != nil || strings.Contains(string(nodePorts), "tcp . 80 ") || !strings.Contains(string(nodePorts), "tcp . 31999 : goto reject-chain") {
			return fmt.Errorf("NodePorts without endpoints: want 31999 rejected and no port 80: %v\n%s", err, nodePorts)
		}
		return nil
	})

	// A targetPort name no pod defines: the pods are endpoints of no
	// port, so the Service has no endpoint on it and refuses.
	c.apply(s.deployment(ns, "web", 1))
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: noport, namespace: %s}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: nope}]
`, ns))
	s.client(c, ns, "client", "")
	c.waitReadyEndpoints(ns, "noport", 1) // the pod is an endpoint...
	slices, _ := c.client.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=noport"})
	for _, sl := range slices.Items {
		if len(sl.Ports) != 0 {
			t.Errorf("slice %s has ports %v; no pod defines the port named nope", sl.Name, sl.Ports)
		}
	}
	if out := c.must("get", "endpoints", "-n", ns, "noport", "-o", "jsonpath={.subsets}"); out != "" {
		t.Errorf("Endpoints of noport: %s, want no subsets", out)
	}
	cip := c.clusterIP(ns, "noport")
	c.eventually(10*time.Second, func() error { // ...of no port: refused
		if out, _ := probe(c, ns, "client", "connect", cip+":80"); !strings.HasPrefix(out, "refused") {
			return fmt.Errorf("connect %s:80: %q, want refused", cip, out)
		}
		return nil
	})
}

func (s *svcTest) testHeadless(t *testing.T, c *cluster) {
	ns := c.namespace("svc-headless")
	c.apply(s.deployment(ns, "web", 1))
	c.apply(service(ns, "headless", "web", "  clusterIP: None"))
	c.apply(fmt.Sprintf(`
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: %s}
spec: {type: ExternalName, externalName: example.com}
`, ns))
	ips := c.waitReadyEndpoints(ns, "headless", 1)
	var slices discoveryv1.EndpointSliceList
	if err := json.Unmarshal([]byte(c.must("get", "endpointslices", "-n", ns, "-o", "json")), &slices); err != nil {
		t.Fatal(err)
	}
	for _, sl := range slices.Items {
		if sl.Labels[discoveryv1.LabelServiceName] == "ext" {
			t.Errorf("ExternalName Service got EndpointSlice %s", sl.Name)
		}
		if sl.Labels[discoveryv1.LabelServiceName] == "headless" {
			if _, ok := sl.Labels[corev1.IsHeadlessService]; !ok {
				t.Errorf("headless slice lacks the %s label: %v", corev1.IsHeadlessService, sl.Labels)
			}
		}
	}
	table := nftTable(t)
	if strings.Contains(table, ns+"/") || strings.Contains(table, "dnat to "+ips[0]+":") {
		t.Errorf("headless or ExternalName Service programmed:\n%s", table)
	}
}
