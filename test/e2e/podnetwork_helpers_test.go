package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	peapodcluster "github.com/peapod/peapod/internal/cluster"
	"github.com/peapod/peapod/internal/clusternetwork"
	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/nodenet"
	"github.com/peapod/peapod/internal/nodenet/nodenettest"
)

// Helpers of the pod network tests (podnetwork_test.go): the pods' own
// namespaces as `peapod ps` reports them, the kernel state of the pod
// network between nodes in each node's namespace, and a traffic loop that
// measures the longest time without an answer.

// echoPort is where every echo pod's httpd listens, on every node.
const echoPort = 8080

// peerCGIConfigMap holds the CGI script the echo pods serve at
// /cgi-bin/peer: "<the client's address as the server saw it> <the
// server's hostname>", the proof there is no NAT on the way.
func peerCGIConfigMap(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: peer-cgi, namespace: %s}
data:
  peer: |
    #!/bin/sh
    echo "Content-Type: text/plain"
    echo
    echo "$REMOTE_ADDR $(hostname)"
`, ns)
}

// echoPodSpec is the spec of a pod serving /cgi-bin/peer and / ("ok") on
// echoPort; extra is indented YAML added to the spec (nodeName, tolerations).
func echoPodSpec(extra string) string {
	return fmt.Sprintf(`terminationGracePeriodSeconds: 0
%s
volumes: [{name: cgi, configMap: {name: peer-cgi, defaultMode: 493}}]
containers:
- name: web
  image: busybox
  command: [sh, -c, "echo ok > /www/index.html && exec httpd -f -p %d -h /www"]
  volumeMounts: [{name: cgi, mountPath: /www/cgi-bin}]
  readinessProbe: {tcpSocket: {port: %d}, periodSeconds: 1}
`, extra, echoPort, echoPort)
}

// indent indents every line of s by n spaces.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// echoPod is a pod on node serving echoPort.
func echoPod(ns, name, node string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s, labels: {app: echo}}\nspec:\n%s",
		name, ns, indent(echoPodSpec("nodeName: "+node), 2))
}

// peerURL is the echo pods' CGI at ip.
func peerURL(ip string) string { return fmt.Sprintf("http://%s:%d/cgi-bin/peer", ip, echoPort) }

// askPeer parses an answer of /cgi-bin/peer: the source the server saw
// and the server's hostname.
func askPeer(answer string) (source, host string, err error) {
	f := strings.Fields(answer)
	if len(f) != 2 {
		return "", "", fmt.Errorf("answer %q is not \"<source> <hostname>\"", answer)
	}
	return clientAddr(f[0]), f[1], nil
}

// clientAddr is the client address the echo server reports (its CGI's
// REMOTE_ADDR) as a plain IPv4 address: busybox httpd listens on [::]
// when the kernel has IPv6, and then reports an IPv4 client as
// "[::ffff:10.42.0.4]", which is the same address, not a translated one.
func clientAddr(remote string) string {
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(remote, "["), "]"))
	if err != nil {
		return remote
	}
	return a.Unmap().String()
}

// sweepScript is a shell loop asking every ip's /cgi-bin/peer once, one
// line per ip: "<ip> <source> <hostname>" or "<ip> FAIL"; wget is busybox's.
func sweepScript(wget string, ips []string) string {
	return fmt.Sprintf(`for ip in %s; do a=$(timeout 5 %s -qO- http://$ip:%d/cgi-bin/peer 2>/dev/null) || a=FAIL; echo "$ip $a"; done`,
		strings.Join(ips, " "), wget, echoPort)
}

// wgetArgv fetches url with busybox wget, given 5 s: busybox 1.35's own
// -T crashes (Debian's busybox-static), so timeout(1) bounds it instead;
// wget is the command that runs it: "wget" in a pod, "/bin/busybox wget"
// on a node.
func wgetArgv(wget, url string) []string {
	return append(append([]string{"timeout", "5"}, strings.Fields(wget)...), "-qO-", url)
}

// checkSweep checks a sweepScript's output: every ip answered with its
// pod's name (names[ip]) and saw a source for which sourceOK holds.
func checkSweep(t *testing.T, who, out string, names map[string]string, sourceOK func(string) bool) {
	t.Helper()
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Errorf("%s: %q: no answer", who, line)
			continue
		}
		ip, source, host := f[0], clientAddr(f[1]), f[2]
		seen[ip] = true
		if host != names[ip] {
			t.Errorf("%s: %s answered as %q, want %s", who, ip, host, names[ip])
		}
		if !sourceOK(source) {
			t.Errorf("%s: %s (%s) saw the request come from %s (NAT on the way?)", who, ip, names[ip], source)
		}
	}
	for ip, name := range names {
		if !seen[ip] {
			t.Errorf("%s: no answer line for %s (%s):\n%s", who, ip, name, out)
		}
	}
}

// psSandbox is what the tests read of `peapod ps -o json`.
type psSandbox struct {
	ID           string
	PodName      string
	PodNamespace string
	PodUID       string
	NetNSPath    string
	IPs          []string
	Warm         bool
}

// sandboxes lists node n's sandboxes (the warm ones left out) as `peapod
// ps -o json` reports them from its data dir.
func (m *multiNode) sandboxes(n peapodcluster.Node) []psSandbox {
	m.t.Helper()
	out, err := exec.Command(peapodBinary(m.t), "ps", "-o", "json", "--data-dir", n.DataDir, "--bridge", n.PodBridge,
		"--node-name", n.Name, "--cgroup-parent", n.CgroupParent).Output()
	if err != nil {
		m.t.Fatalf("peapod ps on %s: %v", n.Name, err)
	}
	var all, pods []psSandbox
	if err := json.Unmarshal(out, &all); err != nil {
		m.t.Fatalf("peapod ps on %s: %v\n%s", n.Name, err, out)
	}
	for _, sb := range all {
		if !sb.Warm {
			pods = append(pods, sb)
		}
	}
	return pods
}

// nodeNamed returns the cluster's node called name.
func (m *multiNode) nodeNamed(name string) peapodcluster.Node {
	m.t.Helper()
	for _, n := range m.state(m.t).Nodes {
		if n.Name == name {
			return n
		}
	}
	m.t.Fatalf("cluster %s has no node %s", m.name, name)
	return peapodcluster.Node{}
}

// podEndpoint is p's own network namespace (found with `peapod ps` on its
// node) and its IP: where traffic a pod sends starts.
func (m *multiNode) podEndpoint(p *corev1.Pod) nodenettest.Endpoint {
	m.t.Helper()
	for _, sb := range m.sandboxes(m.nodeNamed(p.Spec.NodeName)) {
		if sb.PodUID == string(p.UID) {
			return nodenettest.Endpoint{NetNS: sb.NetNSPath, IP: netip.MustParseAddr(p.Status.PodIP)}
		}
	}
	m.t.Fatalf("pod %s/%s (uid %s) has no sandbox on %s", p.Namespace, p.Name, p.UID, p.Spec.NodeName)
	return nodenettest.Endpoint{}
}

// overlayState is what a node's kernel holds of the pod network between
// nodes, as comparable strings: routes of nodenet's protocol, and the FDB
// and permanent neighbour entries on its VXLAN device.
type overlayState struct {
	Routes, FDB, Neighs []string
}

func (s overlayState) String() string {
	return fmt.Sprintf("routes %q, FDB %q, neighbours %q", s.Routes, s.FDB, s.Neighs)
}

// mentions reports whether any entry holds one of words.
func (s overlayState) mentions(words ...string) bool {
	for _, e := range slices.Concat(s.Routes, s.FDB, s.Neighs) {
		for _, w := range words {
			if strings.Contains(e, w) {
				return true
			}
		}
	}
	return false
}

// equal compares as multisets: a duplicate entry is a difference.
func (s overlayState) equal(o overlayState) bool {
	eq := func(a, b []string) bool {
		a, b = slices.Clone(a), slices.Clone(b)
		slices.Sort(a)
		slices.Sort(b)
		return slices.Equal(a, b)
	}
	return eq(s.Routes, o.Routes) && eq(s.FDB, o.FDB) && eq(s.Neighs, o.Neighs)
}

// readOverlay reads the overlay state of the network namespace at nsPath.
func readOverlay(nsPath string) (overlayState, error) {
	var st overlayState
	ns, err := vnetns.GetFromPath(nsPath)
	if err != nil {
		return st, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return st, err
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: nodenet.RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return st, fmt.Errorf("list routes in %s: %w", nsPath, err)
	}
	for _, r := range routes {
		dev := fmt.Sprintf("if%d", r.LinkIndex)
		if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
			dev = l.Attrs().Name
		}
		s := fmt.Sprintf("%s via %s dev %s", r.Dst, r.Gw, dev)
		if r.Flags&unix.RTNH_F_ONLINK != 0 {
			s += " onlink"
		}
		st.Routes = append(st.Routes, s)
	}
	dev, err := h.LinkByName(nodenet.DefaultDevice)
	if err != nil {
		return st, nil // no VXLAN device: no FDB, no neighbours
	}
	neighs, err := h.NeighList(dev.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return st, fmt.Errorf("list neighbours in %s: %w", nsPath, err)
	}
	for _, n := range neighs {
		if n.State&netlink.NUD_PERMANENT != 0 {
			st.Neighs = append(st.Neighs, fmt.Sprintf("%s lladdr %s", n.IP, n.HardwareAddr))
		}
	}
	fdb, err := h.NeighList(dev.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return st, fmt.Errorf("list FDB in %s: %w", nsPath, err)
	}
	for _, f := range fdb {
		st.FDB = append(st.FDB, fmt.Sprintf("%s dst %s", f.HardwareAddr, f.IP))
	}
	return st, nil
}

// wantOverlay is the state the contract asks of node self with the given
// Nodes: one route (and, for vxlan, one FDB entry and one neighbour) per
// other Node that has a podCIDR and its network annotations. The nodes of
// `peapod cluster` reach the underlay on eth0.
func wantOverlay(nodes []corev1.Node, self, backend string) overlayState {
	var st overlayState
	for _, n := range nodes {
		ann := n.Annotations
		if n.Name == self || n.Spec.PodCIDR == "" || ann[clusternetwork.AnnotationBackendType] != backend || ann[clusternetwork.AnnotationPublicIP] == "" {
			continue
		}
		cidr, err := netip.ParsePrefix(n.Spec.PodCIDR)
		if err != nil {
			continue
		}
		ip := ann[clusternetwork.AnnotationPublicIP]
		switch backend {
		case clusternetwork.BackendVXLAN:
			mac := ann[clusternetwork.AnnotationVTEPMAC]
			if mac == "" {
				continue
			}
			st.Routes = append(st.Routes, fmt.Sprintf("%s via %s dev %s onlink", cidr, cidr.Addr(), nodenet.DefaultDevice))
			st.FDB = append(st.FDB, fmt.Sprintf("%s dst %s", mac, ip))
			st.Neighs = append(st.Neighs, fmt.Sprintf("%s lladdr %s", cidr.Addr(), mac))
		case clusternetwork.BackendHostGW:
			st.Routes = append(st.Routes, fmt.Sprintf("%s via %s dev eth0", cidr, ip))
		}
	}
	return st
}

// checkOverlay waits until every node's kernel holds exactly what the
// Nodes say (nothing stale, nothing duplicated, nothing missing).
func (m *multiNode) checkOverlay(backend string, timeout time.Duration) {
	m.t.Helper()
	for _, n := range m.state(m.t).Nodes {
		m.eventually(timeout, func() error {
			nodes, err := m.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			if err != nil {
				return err
			}
			want := wantOverlay(nodes.Items, n.Name, backend)
			got, err := readOverlay(n.NetNS)
			if err != nil {
				return err
			}
			if !got.equal(want) {
				return fmt.Errorf("node %s's kernel holds\n  %s\nwant\n  %s", n.Name, got, want)
			}
			return nil
		})
	}
}

// nodeSources are the addresses a node's own traffic to pods may carry:
// its underlay address (host-gw), its pod bridge's gateway address (to its
// own pods) and its VXLAN device's address (vxlan, as flannel.1's).
func nodeSources(n *corev1.Node) map[string]bool {
	out := map[string]bool{internalIP(n): true}
	if cidr, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
		out[cidr.Addr().String()] = true
		out[cidr.Addr().Next().String()] = true
	}
	return out
}

// trafficLoop sends HTTP requests from a pod's namespace to a pod, one
// after another every interval, each on a new TCP connection given 300 ms
// (a lost SYN costs a new connection, not the kernel's 1 s retransmit),
// and records the longest time between two answered requests.
type trafficLoop struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	answered int
	failed   int
	last     time.Time
	maxGap   time.Duration
	gapEnd   time.Time
	lastErr  error
}

func startTraffic(from nodenettest.Endpoint, to netip.AddrPort, interval time.Duration) *trafficLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &trafficLoop{cancel: cancel, done: make(chan struct{}), last: time.Now()}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for ctx.Err() == nil {
			err := httpOnce(ctx, from.NetNS, to)
			now := time.Now()
			l.mu.Lock()
			if err == nil {
				if gap := now.Sub(l.last); gap > l.maxGap {
					l.maxGap, l.gapEnd = gap, now
				}
				l.last = now
				l.answered++
			} else if ctx.Err() == nil {
				l.failed++
				l.lastErr = err
			}
			l.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}()
	return l
}

// httpOnce asks to for / from the namespace at nsPath and wants a 200.
func httpOnce(ctx context.Context, nsPath string, to netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	var c net.Conn
	if err := netns.Do(nsPath, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp4", to.String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return err
	}
	status, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(status, " 200 ") {
		return fmt.Errorf("answer %q", strings.TrimSpace(status))
	}
	return nil
}

// measureFromNow forgets the gaps so far (the loop's warm-up) and counts
// from the next answer on.
func (l *trafficLoop) measureFromNow() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxGap, l.gapEnd, l.last = 0, time.Time{}, time.Now()
	l.answered, l.failed, l.lastErr = 0, 0, nil
}

// answeredSoFar is how many requests were answered.
func (l *trafficLoop) answeredSoFar() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answered
}

// waitAnswered waits until n more requests than now were answered, or
// fails the test after timeout.
func (l *trafficLoop) waitAnswered(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	want := l.answeredSoFar() + n
	for deadline := time.Now().Add(timeout); l.answeredSoFar() < want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("traffic loop: %d answered, want %d within %s (failed %d, last error %v)", l.answered, want, timeout, l.failed, l.lastErr)
		}
	}
}

// stop ends the loop and returns the longest gap between answers (the gap
// until now included), when it ended, and the counts.
func (l *trafficLoop) stop() (maxGap time.Duration, gapEnd time.Time, answered, failed int) {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if gap := time.Since(l.last); gap > l.maxGap {
		l.maxGap, l.gapEnd = gap, time.Now()
	}
	return l.maxGap, l.gapEnd, l.answered, l.failed
}
