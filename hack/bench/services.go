package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The service proxy's figures (issue 12): a client pod connects to a
// server pod straight and through a ClusterIP, then the cluster gets
// many Services and one more.
const (
	svcNS        = "svcbench"
	svcConnPort  = 7000
	svcIperfPort = 5201
	// svcControlPort: a listener on the client pod's loopback, the
	// control of the connect figures (its path never meets the table).
	svcControlPort = 7001
	// svcConnRounds × one connection to each target per phase.
	svcConnRounds = 2000
)

// serviceResult are the service proxy's figures.
type serviceResult struct {
	// Connect latencies (TCP handshake, a new connection each time, so
	// every one is a first packet through the table) to the pod IP and
	// to the ClusterIP, with few and with many Services programmed. Each
	// phase takes one connection to each target in turn, so all see the
	// same moment of the machine. The few phase runs twice, before the
	// many Services are created and after they are deleted (Again), so
	// the many phase is bracketed by it: a drift of the machine over the
	// run shows as a difference between the two.
	ConnectPod, ConnectCIPFew, ConnectCIPMany        []time.Duration
	ConnectPodMany, ConnectPodAgain, ConnectCIPAgain []time.Duration
	// Control: connects to the client pod's own loopback in the same
	// turns; their path does not cross the proxy's table, so a change
	// between phases is the machine's, not the table's.
	ControlFew, ControlMany, ControlAgain []time.Duration
	// ServerCPU is the peapod server's CPU use (cores) during each of
	// the three connect phases: what else the machine was doing.
	ServerCPU [3]float64
	Few, Many int
	// iperf3 throughput to the pod IP and to the ClusterIP.
	GbpsPod, GbpsCIP float64
	// AllProgrammed: the last of Many Services created → every one of
	// them in the table.
	AllProgrammed time.Duration
	Endpoints     int
	// OneMore: one more Service (and its slice) created → in the table;
	// OneMoreCreate the create call alone (the API server's part), and
	// OneMoreProgram the rest (create returned → in the table).
	OneMore, OneMoreCreate, OneMoreProgram []time.Duration
	// OneMoreServerCPU: the peapod server's CPU time per one more
	// Service (slice and Service, everything the server did for them).
	OneMoreServerCPU time.Duration
}

// tableMonitor follows `nft monitor` and records when each element of
// the proxy's service-ips map (a Service port with endpoints) first
// appears: programming is timed by the kernel's own notifications, with
// no polling competing with the proxy for the CPU.
type tableMonitor struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	seen map[string]time.Time // "ip:port" → first added
	more chan struct{}        // closed and replaced on every new element
}

func startTableMonitor(ctx context.Context) (*tableMonitor, error) {
	m := &tableMonitor{seen: map[string]time.Time{}, more: make(chan struct{})}
	m.cmd = exec.CommandContext(ctx, "nft", "monitor", "new", "elements")
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("nft monitor: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			// add element ip peapod service-ips { 10.96.3.4 . tcp . 80 : goto service-… }
			line := sc.Text()
			_, rest, ok := strings.Cut(line, "add element ip peapod service-ips { ")
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 5 {
				continue
			}
			key := net.JoinHostPort(f[0], f[4])
			now := time.Now()
			m.mu.Lock()
			if _, dup := m.seen[key]; !dup {
				m.seen[key] = now
				close(m.more)
				m.more = make(chan struct{})
			}
			m.mu.Unlock()
		}
	}()
	time.Sleep(200 * time.Millisecond) // subscribed
	return m, nil
}

func (m *tableMonitor) stop() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

// wait returns when each of keys ("ip:port") has been seen, and the
// latest time one was first seen.
func (m *tableMonitor) wait(keys []string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		m.mu.Lock()
		var latest time.Time
		missing := 0
		for _, k := range keys {
			t, ok := m.seen[k]
			if !ok {
				missing++
			} else if t.After(latest) {
				latest = t
			}
		}
		more := m.more
		m.mu.Unlock()
		if missing == 0 {
			return latest, nil
		}
		select {
		case <-more:
		case <-deadline:
			return latest, fmt.Errorf("%d of %d Service ports not in the proxy's table after %s", missing, len(keys), timeout)
		}
	}
}

// services measures the service proxy on a running cluster.
func services(ctx context.Context, c *cluster, many, endpoints, oneMore int) (serviceResult, error) {
	r := serviceResult{Many: many, Endpoints: endpoints}
	mon, err := startTableMonitor(ctx)
	if err != nil {
		return r, err
	}
	defer mon.stop()
	if err := c.namespace(ctx, svcNS); err != nil {
		return r, err
	}
	if _, err := startOneByOne(ctx, c.client, svcNS, "svc", 2); err != nil {
		return r, err
	}
	sbs, err := c.sandboxes(ctx)
	if err != nil {
		return r, err
	}
	var pair []sandbox
	for _, sb := range sbs {
		if sb.PodNamespace == svcNS && len(sb.IPs) > 0 && len(pair) < 2 {
			pair = append(pair, sb)
		}
	}
	if len(pair) < 2 {
		return r, errors.New("fewer than two pods with an IP")
	}
	client, server := pair[0], pair[1]
	for _, l := range []struct{ netns, addr string }{
		{server.NetNSPath, fmt.Sprintf(":%d", svcConnPort)},
		{client.NetNSPath, fmt.Sprintf("127.0.0.1:%d", svcControlPort)},
	} {
		ln, err := listenIn(l.netns, l.addr)
		if err != nil {
			return r, err
		}
		defer ln.Close()
		go acceptAndClose(ln)
	}
	// The Service in front of the server pod, and a few more so the
	// "few" case is a realistic small cluster.
	cip, err := createBenchService(ctx, c, "server", []string{server.IPs[0]}, []int32{svcConnPort, svcIperfPort})
	if err != nil {
		return r, err
	}
	keys := []string{net.JoinHostPort(cip, fmt.Sprint(svcConnPort)), net.JoinHostPort(cip, fmt.Sprint(svcIperfPort))}
	for i := range 8 {
		ip, err := createBenchService(ctx, c, fmt.Sprintf("few-%d", i), fakeEndpoints(100000+i*endpoints, endpoints), []int32{80})
		if err != nil {
			return r, err
		}
		keys = append(keys, net.JoinHostPort(ip, "80"))
	}
	r.Few = len(keys)
	if _, err := mon.wait(keys, 30*time.Second); err != nil {
		return r, err
	}
	targets := []string{
		net.JoinHostPort(server.IPs[0], fmt.Sprint(svcConnPort)),
		net.JoinHostPort(cip, fmt.Sprint(svcConnPort)),
		net.JoinHostPort("127.0.0.1", fmt.Sprint(svcControlPort)),
	}
	took, err := connectPhase(c, client.NetNSPath, targets, &r.ServerCPU[0])
	if err != nil {
		return r, err
	}
	r.ConnectPod, r.ConnectCIPFew, r.ControlFew = took[0], took[1], took[2]
	few, err := serviceIPsCount(ctx)
	if err != nil {
		return r, err
	}
	if r.GbpsPod, err = iperf(ctx, client.NetNSPath, server.NetNSPath, server.IPs[0], server.IPs[0]); err != nil {
		return r, err
	}
	if r.GbpsCIP, err = iperf(ctx, client.NetNSPath, server.NetNSPath, server.IPs[0], cip); err != nil {
		return r, err
	}

	// Many Services, each with its endpoints, created as fast as the API
	// takes them; then the time from the last change until the table
	// holds all of them.
	logf("peapod: %d Services × %d endpoints", many, endpoints)
	last, ips, err := createManyServices(ctx, c, many, endpoints)
	if err != nil {
		return r, err
	}
	keys = keys[:0]
	for _, ip := range ips {
		keys = append(keys, net.JoinHostPort(ip, "80"))
	}
	programmed, err := mon.wait(keys, 2*time.Minute)
	if err != nil {
		return r, err
	}
	r.AllProgrammed = max(programmed.Sub(last), 0)
	logf("peapod: one more Service, %d times", oneMore)
	cpu0, err := cpuTime(c.pid())
	if err != nil {
		return r, err
	}
	for i := range oneMore {
		eps := fakeEndpoints(200000+i*endpoints, endpoints)
		name := fmt.Sprintf("more-%d", i)
		if err := createBenchSlice(ctx, c, name, eps, []int32{80}); err != nil {
			return r, err
		}
		start := time.Now()
		svc, err := c.client.CoreV1().Services(svcNS).Create(ctx, benchService(svcNS, name, []int32{80}), metav1.CreateOptions{})
		if err != nil {
			return r, err
		}
		created := time.Now()
		seen, err := mon.wait([]string{net.JoinHostPort(svc.Spec.ClusterIP, "80")}, 30*time.Second)
		if err != nil {
			return r, err
		}
		r.OneMore = append(r.OneMore, seen.Sub(start))
		r.OneMoreCreate = append(r.OneMoreCreate, created.Sub(start))
		r.OneMoreProgram = append(r.OneMoreProgram, max(seen.Sub(created), 0))
		time.Sleep(100 * time.Millisecond)
	}
	cpu1, err := cpuTime(c.pid())
	if err != nil {
		return r, err
	}
	if oneMore > 0 {
		r.OneMoreServerCPU = (cpu1 - cpu0) / time.Duration(oneMore)
	}
	if took, err = connectPhase(c, client.NetNSPath, targets, &r.ServerCPU[1]); err != nil {
		return r, err
	}
	r.ConnectPodMany, r.ConnectCIPMany, r.ControlMany = took[0], took[1], took[2]

	// Back to few: the many Services deleted and gone from the table,
	// the few phase again.
	logf("peapod: deleting the %d Services", many+oneMore)
	var names []string
	for i := range many {
		names = append(names, fmt.Sprintf("s%04d", i))
	}
	for i := range oneMore {
		names = append(names, fmt.Sprintf("more-%d", i))
	}
	if err := deleteBenchServices(ctx, c, names); err != nil {
		return r, err
	}
	if err := waitServiceIPsCount(ctx, few, 2*time.Minute); err != nil {
		return r, err
	}
	if took, err = connectPhase(c, client.NetNSPath, targets, &r.ServerCPU[2]); err != nil {
		return r, err
	}
	r.ConnectPodAgain, r.ConnectCIPAgain, r.ControlAgain = took[0], took[1], took[2]
	return r, nil
}

// connectPhase is one connect phase (connectInterleaved); cpu is set to
// the server's CPU use meanwhile, in cores.
func connectPhase(c *cluster, netns string, targets []string, cpu *float64) ([][]time.Duration, error) {
	start := time.Now()
	before, err := cpuTime(c.pid())
	if err != nil {
		return nil, err
	}
	took, err := connectInterleaved(netns, targets, svcConnRounds)
	if err != nil {
		return nil, err
	}
	after, err := cpuTime(c.pid())
	if err != nil {
		return nil, err
	}
	*cpu = float64(after-before) / float64(time.Since(start))
	return took, nil
}

func acceptAndClose(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		conn.Close()
	}
}

// serviceIPsCount is the number of elements in the proxy's service-ips
// map (Service ports with endpoints).
func serviceIPsCount(ctx context.Context) (int, error) {
	out, err := exec.CommandContext(ctx, "nft", "list", "map", "ip", "peapod", "service-ips").Output()
	if err != nil {
		return 0, fmt.Errorf("nft list map ip peapod service-ips: %w", err)
	}
	return strings.Count(string(out), " : goto "), nil
}

// waitServiceIPsCount waits until the service-ips map has n elements.
func waitServiceIPsCount(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := serviceIPsCount(ctx)
		if err != nil {
			return err
		}
		if got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy's service-ips map has %d elements after %s, want %d", got, timeout, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// deleteBenchServices deletes the Services named and their slices, 16
// at a time.
func deleteBenchServices(ctx context.Context, c *cluster, names []string) error {
	var mu sync.Mutex
	var firstErr error
	work := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				err := c.client.CoreV1().Services(svcNS).Delete(ctx, name, metav1.DeleteOptions{})
				if err == nil {
					err = c.client.DiscoveryV1().EndpointSlices(svcNS).Delete(ctx, name, metav1.DeleteOptions{})
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("delete Service %s/%s: %w", svcNS, name, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	return firstErr
}

// benchService is a ClusterIP Service in ns on ports, each named p<port>.
func benchService(ns, name string, ports []int32) *corev1.Service {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", p), Port: p,
			Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(p)})
	}
	return svc
}

func createBenchSlice(ctx context.Context, c *cluster, name string, ips []string, ports []int32) error {
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: svcNS, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range ports {
		slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: ptr.To(fmt.Sprintf("p%d", p)), Port: ptr.To(p), Protocol: ptr.To(corev1.ProtocolTCP)})
	}
	for _, ip := range ips {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(benchNode),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	_, err := c.client.DiscoveryV1().EndpointSlices(svcNS).Create(ctx, slice, metav1.CreateOptions{})
	return err
}

// createBenchService creates a selector-less Service and its
// EndpointSlice and returns its ClusterIP.
func createBenchService(ctx context.Context, c *cluster, name string, ips []string, ports []int32) (string, error) {
	if err := createBenchSlice(ctx, c, name, ips, ports); err != nil {
		return "", err
	}
	svc, err := c.client.CoreV1().Services(svcNS).Create(ctx, benchService(svcNS, name, ports), metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return svc.Spec.ClusterIP, nil
}

// fakeEndpoints are n addresses in the far end of the bench pod CIDR
// (10.218.0.0/16), numbered from first; no pod has them.
func fakeEndpoints(first, n int) []string {
	out := make([]string, n)
	for i := range n {
		k := first + i
		out[i] = fmt.Sprintf("10.218.%d.%d", 128+(k/250)%120, k%250+2)
	}
	return out
}

// createManyServices creates n Services with endpoints endpoints each,
// 16 at a time; it returns when the last create returned, and their
// ClusterIPs.
func createManyServices(ctx context.Context, c *cluster, n, endpoints int) (time.Time, []string, error) {
	var mu sync.Mutex
	var last time.Time
	var ips []string
	var firstErr error
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ip, err := createBenchService(ctx, c, fmt.Sprintf("s%04d", i), fakeEndpoints(i*endpoints, endpoints), []int32{80})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					ips = append(ips, ip)
				}
				if now := time.Now(); now.After(last) {
					last = now
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return last, ips, firstErr
}

// inNetns runs f on a thread in the network namespace at path; sockets f
// opens stay in that namespace.
func inNetns(path string, f func() error) error {
	ns, err := os.Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter %s: %w", path, err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so the runtime retires it.
		return fmt.Errorf("leave %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func listenIn(netns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(netns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// connectInterleaved makes rounds × one TCP connection to each of addrs
// in turn from the namespace at netns and returns, per address, the time
// each handshake took: taken in turn, every address sees the same
// moments of the machine.
func connectInterleaved(netns string, addrs []string, rounds int) ([][]time.Duration, error) {
	took := make([][]time.Duration, len(addrs))
	err := inNetns(netns, func() error {
		for range rounds {
			for i, addr := range addrs {
				start := time.Now()
				conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					return fmt.Errorf("connect %s: %w", addr, err)
				}
				took[i] = append(took[i], time.Since(start))
				conn.Close()
			}
		}
		return nil
	})
	return took, err
}

// serviceRows are the report's rows of r.
func serviceRows(r serviceResult) []row {
	fewCIP := append(append([]time.Duration(nil), r.ConnectCIPFew...), r.ConnectCIPAgain...)
	fewControl := append(append([]time.Duration(nil), r.ControlFew...), r.ControlAgain...)
	return []row{
		{Section: "services", What: fmt.Sprintf("TCP connect through a ClusterIP, %d Service ports programmed, n=%d", r.Few, len(r.ConnectCIPFew)), Unit: "ms",
			P50: percentile(r.ConnectCIPFew, .5), P99: percentile(r.ConnectCIPFew, .99), Anchor: "straight to the pod IP, same pods",
			AP50: percentile(r.ConnectPod, .5), AP99: percentile(r.ConnectPod, .99)},
		{Section: "services", What: "TCP throughput through a ClusterIP (iperf3, 10 s, 1 stream)", Unit: "Gbit/s",
			P50: r.GbpsCIP, P99: nan(), Anchor: "straight to the pod IP, same pods", AP50: r.GbpsPod, AP99: nan()},
		{Section: "services", What: fmt.Sprintf("first packet (TCP connect) through a ClusterIP, %d Service ports programmed, n=%d", r.Few+r.Many+len(r.OneMore), len(r.ConnectCIPMany)), Unit: "ms",
			P50: percentile(r.ConnectCIPMany, .5), P99: percentile(r.ConnectCIPMany, .99), Anchor: fmt.Sprintf("the same with %d, before and after, n=%d", r.Few, len(fewCIP)),
			AP50: percentile(fewCIP, .5), AP99: percentile(fewCIP, .99)},
		{Section: "services", What: fmt.Sprintf("control: TCP connect to the client pod's loopback (off the table), in turn with the above at %d", r.Few+r.Many+len(r.OneMore)), Unit: "ms",
			P50: percentile(r.ControlMany, .5), P99: percentile(r.ControlMany, .99), Anchor: fmt.Sprintf("the same at %d, before and after", r.Few),
			AP50: percentile(fewControl, .5), AP99: percentile(fewControl, .99)},
		{Section: "services", What: fmt.Sprintf("%d Services × %d endpoints created (16 clients): last change → all in the table", r.Many, r.Endpoints), Unit: "ms",
			P50: ms(r.AllProgrammed), P99: nan(), Anchor: "target (issue 12)", AP50: 1000, AP99: nan()},
		{Section: "services", What: fmt.Sprintf("one more Service (slice first) created → in the table, n=%d", len(r.OneMore)), Unit: "ms",
			P50: percentile(r.OneMore, .5), P99: percentile(r.OneMore, .99), Anchor: "target (issue 12)", AP50: 50, AP99: nan()},
		{Section: "services", What: "… of which the proxy's part: create returned → in the table", Unit: "ms",
			P50: percentile(r.OneMoreProgram, .5), P99: percentile(r.OneMoreProgram, .99), Anchor: "the create call (API server)",
			AP50: percentile(r.OneMoreCreate, .5), AP99: percentile(r.OneMoreCreate, .99)},
	}
}
