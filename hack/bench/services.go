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
)

// serviceResult are the service proxy's figures.
type serviceResult struct {
	// Connect latencies (TCP handshake, a new connection each time, so
	// every one is a first packet through the table) to the pod IP and
	// to the ClusterIP, with few and with many Services programmed.
	ConnectPod, ConnectCIPFew, ConnectCIPMany []time.Duration
	Few, Many                                 int
	// iperf3 throughput to the pod IP and to the ClusterIP.
	GbpsPod, GbpsCIP float64
	// AllProgrammed: the last of Many Services created → every one of
	// them in the table.
	AllProgrammed time.Duration
	Endpoints     int
	// OneMore: one more Service (and its slice) created → in the table.
	OneMore []time.Duration
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
	ln, err := listenIn(server.NetNSPath, fmt.Sprintf(":%d", svcConnPort))
	if err != nil {
		return r, err
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
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
	podAddr := net.JoinHostPort(server.IPs[0], fmt.Sprint(svcConnPort))
	cipAddr := net.JoinHostPort(cip, fmt.Sprint(svcConnPort))
	// Interleaved, so both see the same load.
	for range 10 {
		a, err := connectLatencies(client.NetNSPath, podAddr, 50)
		if err != nil {
			return r, err
		}
		b, err := connectLatencies(client.NetNSPath, cipAddr, 50)
		if err != nil {
			return r, err
		}
		r.ConnectPod, r.ConnectCIPFew = append(r.ConnectPod, a...), append(r.ConnectCIPFew, b...)
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
		seen, err := mon.wait([]string{net.JoinHostPort(svc.Spec.ClusterIP, "80")}, 30*time.Second)
		if err != nil {
			return r, err
		}
		r.OneMore = append(r.OneMore, seen.Sub(start))
		time.Sleep(100 * time.Millisecond)
	}
	for range 10 {
		b, err := connectLatencies(client.NetNSPath, cipAddr, 50)
		if err != nil {
			return r, err
		}
		r.ConnectCIPMany = append(r.ConnectCIPMany, b...)
	}
	return r, nil
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

// connectLatencies makes n TCP connections to addr from the namespace
// at netns and returns the time each handshake took.
func connectLatencies(netns, addr string, n int) ([]time.Duration, error) {
	var took []time.Duration
	err := inNetns(netns, func() error {
		for range n {
			start := time.Now()
			conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return fmt.Errorf("connect %s: %w", addr, err)
			}
			took = append(took, time.Since(start))
			conn.Close()
		}
		return nil
	})
	return took, err
}

// serviceRows are the report's rows of r.
func serviceRows(r serviceResult) []row {
	return []row{
		{Section: "services", What: fmt.Sprintf("TCP connect through a ClusterIP, %d Service ports programmed, n=%d", r.Few, len(r.ConnectCIPFew)), Unit: "ms",
			P50: percentile(r.ConnectCIPFew, .5), P99: percentile(r.ConnectCIPFew, .99), Anchor: "straight to the pod IP, same pods",
			AP50: percentile(r.ConnectPod, .5), AP99: percentile(r.ConnectPod, .99)},
		{Section: "services", What: "TCP throughput through a ClusterIP (iperf3, 10 s, 1 stream)", Unit: "Gbit/s",
			P50: r.GbpsCIP, P99: nan(), Anchor: "straight to the pod IP, same pods", AP50: r.GbpsPod, AP99: nan()},
		{Section: "services", What: fmt.Sprintf("first packet (TCP connect) through a ClusterIP, %d Service ports programmed, n=%d", r.Few+r.Many+len(r.OneMore), len(r.ConnectCIPMany)), Unit: "ms",
			P50: percentile(r.ConnectCIPMany, .5), P99: percentile(r.ConnectCIPMany, .99), Anchor: fmt.Sprintf("the same with %d", r.Few),
			AP50: percentile(r.ConnectCIPFew, .5), AP99: percentile(r.ConnectCIPFew, .99)},
		{Section: "services", What: fmt.Sprintf("%d Services × %d endpoints created (16 clients): last change → all in the table", r.Many, r.Endpoints), Unit: "ms",
			P50: ms(r.AllProgrammed), P99: nan(), Anchor: "target (issue 12)", AP50: 1000, AP99: nan()},
		{Section: "services", What: fmt.Sprintf("one more Service (slice first) created → in the table, n=%d", len(r.OneMore)), Unit: "ms",
			P50: percentile(r.OneMore, .5), P99: percentile(r.OneMore, .99), Anchor: "target (issue 12)", AP50: 50, AP99: nan()},
	}
}
