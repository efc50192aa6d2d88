package e2e

import (
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	peapodcluster "github.com/peapod/peapod/internal/cluster"
)

// TestServicesAcrossNodes is issue 12's acceptance on three nodes (the
// shared cluster), where TestServices proves it on one: a Deployment
// spread one replica a node answers a client pod on every node through
// its ClusterIP and through its DNS names (asked of kube-dns through its
// ClusterIP), every replica over many requests, each seeing the client
// pod's own IP; its NodePort answers on every node's IP from every node,
// spreading over all replicas; with externalTrafficPolicy Local only the
// node running the endpoint answers, and the backend sees the client's
// address; scaled to zero, every node refuses at once; scaled up, every
// node serves again.
func TestServicesAcrossNodes(t *testing.T) {
	s := &svcTest{probe: svcProbeDir(t)}
	mn := sharedMultiNode(t)
	st := mn.state(t)
	if len(st.Nodes) < 3 {
		t.Fatalf("the shared cluster has %d nodes, want 3", len(st.Nodes))
	}
	ns := mn.namespace("svc-nodes")
	// Runs before the probe directory is removed (a t.Cleanup): no pod
	// of the namespace is left using it, or on the shared cluster.
	defer func() {
		if out, err := mn.kubectl("delete", "namespace", ns, "--wait=false"); err != nil {
			t.Errorf("delete namespace %s: %v %s", ns, err, out)
		}
		mn.waitGone(ns, "", 0, 2*time.Minute)
	}()

	// web: one replica a node. edge: one replica on the second node
	// only, behind a NodePort of policy Local.
	mn.apply(s.placedDeployment(ns, "web", 3, "topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, "+
		"whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}]"))
	mn.apply(service(ns, "web", "web", ""))
	mn.apply(service(ns, "web-np", "web", "  type: NodePort"))
	edgeNode := st.Nodes[1]
	mn.apply(s.placedDeployment(ns, "edge", 1, "nodeSelector: {kubernetes.io/hostname: "+edgeNode.Name+"}"))
	mn.apply(service(ns, "edge-local", "edge", "  type: NodePort\n  externalTrafficPolicy: Local"))
	clients := map[string]*corev1.Pod{} // by node name
	for _, n := range st.Nodes {
		name := fmt.Sprintf("client%d", n.Index)
		s.client(mn.cluster, ns, name, "nodeName: "+n.Name)
		clients[n.Name] = mn.pod(ns, name)
	}
	replicas := mn.waitPods(ns, "app=web", 3, 3*time.Minute)
	var names []string
	perNode := map[string]string{}
	for _, p := range replicas {
		names = append(names, p.Name)
		if other, dup := perNode[p.Spec.NodeName]; dup {
			t.Fatalf("replicas %s and %s both on %s despite the spread constraint", other, p.Name, p.Spec.NodeName)
		}
		perNode[p.Spec.NodeName] = p.Name
	}
	mn.waitReadyEndpoints(ns, "web", 3)
	mn.waitReadyEndpoints(ns, "edge-local", 1)
	cip := mn.clusterIP(ns, "web")

	t.Run("from a pod on every node, the ClusterIP and the DNS names reach every replica", func(t *testing.T) {
		mn := mn.with(t)
		// ClusterFirst pods ask kube-dns through its ClusterIP, which
		// only the proxy leads to the DNS server on the first node.
		dnsIP := mn.clusterIP("kube-system", "kube-dns")
		for _, n := range st.Nodes {
			client := clients[n.Name]
			resolv := mn.must("exec", "-n", ns, client.Name, "--", "cat", "/etc/resolv.conf")
			if !strings.Contains(resolv, "nameserver "+dnsIP+"\n") && !strings.HasSuffix(resolv, "nameserver "+dnsIP) {
				t.Errorf("%s on %s: resolv.conf names no kube-dns ClusterIP %s:\n%s", client.Name, n.Name, dnsIP, resolv)
			}
			for _, target := range []string{cip, "web." + ns + ".svc.cluster.local", "web." + ns} {
				answers := askMany(mn.cluster, ns, client.Name, "http://"+target+"/")
				checkAnswers(t, fmt.Sprintf("%s on %s → %s", client.Name, n.Name, target), answers, names, client.Status.PodIP)
			}
		}
	})

	t.Run("NodePort answers on every node's IP from every node, over every replica", func(t *testing.T) {
		mn := mn.with(t)
		port := nodePortOf(mn.cluster, ns, "web-np")
		for _, from := range st.Nodes {
			for _, to := range st.Nodes {
				url := "http://" + net.JoinHostPort(to.Address, port) + "/"
				answers := nodeAskMany(mn, s, from, url)
				checkAnswers(t, fmt.Sprintf("node %s → %s", from.Name, url), answers, names, "")
			}
		}
	})

	t.Run("externalTrafficPolicy Local: only the endpoint's node answers, seeing the client's address", func(t *testing.T) {
		mn := mn.with(t)
		port := nodePortOf(mn.cluster, ns, "edge-local")
		edges := mn.readyPods(ns, "app=edge")
		if len(edges) != 1 || edges[0].Spec.NodeName != edgeNode.Name {
			t.Fatalf("edge pods %v, want one on %s", podNames(edges), edgeNode.Name)
		}
		for i, to := range st.Nodes {
			addr := net.JoinHostPort(to.Address, port)
			if to.Name == edgeNode.Name {
				// From both other nodes: a node's own traffic to its
				// NodePort is not external (kube-proxy sends it to any
				// endpoint).
				for _, from := range st.Nodes {
					if from.Name != to.Name {
						answers := nodeAskMany(mn, s, from, "http://"+addr+"/")
						checkAnswers(t, fmt.Sprintf("node %s → %s (Local, endpoint there)", from.Name, addr), answers, []string{edges[0].Name}, from.Address)
					}
				}
				continue
			}
			// No endpoint there: the packet is dropped, not refused
			// (refused would be a node that has not yet seen the
			// endpoint at all). Each try waits out svcprobe's 5 s, so
			// from one other node only.
			from := st.Nodes[(i+1)%len(st.Nodes)]
			mn.eventually(30*time.Second, func() error {
				out, _ := mn.nodeExec(from.Index, filepath.Join(s.probe, "svcprobe"), "connect", addr)
				if !strings.HasPrefix(out, "timeout") {
					return fmt.Errorf("node %s → %s (Local, no endpoint there): %q, want no answer (timeout)", from.Name, addr, out)
				}
				return nil
			})
		}
		// The policy is for traffic from outside: the ClusterIP serves
		// a pod on a node without the endpoint.
		client := clients[st.Nodes[0].Name]
		answers := askMany(mn.cluster, ns, client.Name, "http://"+mn.clusterIP(ns, "edge-local")+"/")
		checkAnswers(t, fmt.Sprintf("%s on %s → edge-local's ClusterIP", client.Name, st.Nodes[0].Name), answers, []string{edges[0].Name}, client.Status.PodIP)
	})

	t.Run("scaled to zero, every node refuses at once; scaled up, every node serves", func(t *testing.T) {
		mn := mn.with(t)
		mn.must("scale", "-n", ns, "deployment/web", "--replicas=0")
		mn.waitGone(ns, "app=web", 0, time.Minute)
		for _, n := range st.Nodes {
			client := clients[n.Name]
			mn.eventually(10*time.Second, func() error {
				out, _ := probe(mn.cluster, ns, client.Name, "connect", cip+":80")
				if !strings.HasPrefix(out, "refused") {
					return fmt.Errorf("%s on %s: connect to %s:80 with no endpoint: %q, want refused", client.Name, n.Name, cip, out)
				}
				return nil
			})
		}

		mn.must("scale", "-n", ns, "deployment/web", "--replicas=3")
		back := mn.waitPods(ns, "app=web", 3, 3*time.Minute)
		var readyAt time.Time
		for _, p := range back {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.LastTransitionTime.After(readyAt) {
					readyAt = cond.LastTransitionTime.Time
				}
			}
		}
		for _, n := range st.Nodes {
			client := clients[n.Name]
			mn.eventually(10*time.Second, func() error {
				if out, err := probe(mn.cluster, ns, client.Name, "get", "http://"+cip+"/"); err != nil {
					return fmt.Errorf("%s on %s: GET %s after scaling up: %v %s", client.Name, n.Name, cip, err, out)
				}
				return nil
			})
		}
		t.Logf("every node served %s after the last replica turned Ready (make bench measures it)", time.Since(readyAt).Round(10*time.Millisecond))
	})
}

// manyRequests is how many requests a client makes to see every replica:
// with 3 picked at random, one is missed by 40 with probability 3·(2/3)^40,
// under 1 in 3 million.
const manyRequests = "40"

// askMany makes manyRequests GETs of url from pod, each on a fresh
// connection, and returns the answers; the first attempts may wait for
// the proxy (or the DNS) of the pod's node to catch up.
func askMany(c *cluster, ns, pod, url string) []string {
	c.t.Helper()
	var out string
	c.eventually(15*time.Second, func() error {
		var err error
		if out, err = probe(c, ns, pod, "repeat", manyRequests, url); err != nil {
			return fmt.Errorf("%s → %s: %v %s", pod, url, err, out)
		}
		return nil
	})
	return strings.Split(strings.TrimSpace(out), "\n")
}

// nodeAskMany is askMany from node n's own network namespace.
func nodeAskMany(mn *multiNode, s *svcTest, n peapodcluster.Node, url string) []string {
	mn.t.Helper()
	var out string
	mn.eventually(15*time.Second, func() error {
		var err error
		if out, err = mn.nodeExec(n.Index, filepath.Join(s.probe, "svcprobe"), "repeat", manyRequests, url); err != nil {
			return fmt.Errorf("node %s → %s: %v %s", n.Name, url, err, out)
		}
		return nil
	})
	return strings.Split(strings.TrimSpace(out), "\n")
}

// checkAnswers checks svcprobe serve's answers ("<hostname> <client
// ip>"): they came from exactly the pods named want, each seen at least
// once, and, unless source is "", every backend saw the client as source.
func checkAnswers(t *testing.T, what string, answers, want []string, source string) {
	t.Helper()
	seen := map[string]int{}
	for _, a := range answers {
		f := strings.Fields(a)
		if len(f) != 2 {
			t.Errorf("%s: answer %q, want \"<hostname> <client ip>\"", what, a)
			continue
		}
		seen[f[0]]++
		if source != "" && f[1] != source {
			t.Errorf("%s: %s saw the client as %s, want %s", what, f[0], f[1], source)
			return
		}
	}
	var got []string
	for name := range seen {
		got = append(got, name)
	}
	slices.Sort(got)
	wantSorted := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, wantSorted) {
		t.Errorf("%s: %d requests reached %v, want every one of %v", what, len(answers), seen, wantSorted)
	}
}
