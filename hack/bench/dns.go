package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The load the DNS benchmark puts on the cluster DNS: a closed loop of
// dnsWorkers sockets, one query in flight each, for a bounded time and
// count (it stops by itself), from a pod's network namespace to an
// address on this machine.
const (
	dnsWorkers    = 4
	dnsMaxQueries = 2_000_000
	dnsWarmup     = 500 * time.Millisecond
)

// dnsResult is the DNS benchmark's figures.
type dnsResult struct {
	// Path says where the queries went: kube-dns's ClusterIP when the
	// service proxy leads it to the server, else the DNS endpoint.
	Path   string
	QPS    float64
	Lat    []time.Duration
	Failed int
	// Propagation is, per new Service, the time from its create to the
	// first answer with its ClusterIP, asked every millisecond.
	Propagation []time.Duration
}

// measureDNS runs a pod in ns, then loads the cluster DNS from its
// network namespace with A queries for a Service name, and times how soon
// new Services resolve.
func measureDNS(ctx context.Context, c *cluster, ns string, window time.Duration, services int) (dnsResult, error) {
	var r dnsResult
	svcs := c.client.CoreV1().Services(ns)
	bench, err := svcs.Create(ctx, benchService(ns, "bench", []int32{80}), metav1.CreateOptions{})
	if err != nil {
		return r, err
	}
	if _, err := startOneByOne(ctx, c.client, ns, "dnsclient", 1); err != nil {
		return r, err
	}
	sbs, err := c.sandboxes(ctx)
	if err != nil {
		return r, err
	}
	var nsPath string
	for _, sb := range sbs {
		if sb.PodNamespace == ns && sb.NetNSPath != "" {
			nsPath = sb.NetNSPath
		}
	}
	if nsPath == "" {
		return r, errors.New("no sandbox of the DNS client pod")
	}
	server, path, err := dnsServer(ctx, c, nsPath)
	if err != nil {
		return r, err
	}
	r.Path = path
	name := "bench." + ns + ".svc.cluster.local."
	// The answer must be right before it is fast.
	if ip, err := resolveOnce(nsPath, server, name, time.Second); err != nil || ip != bench.Spec.ClusterIP {
		return r, fmt.Errorf("DNS answer for %s: %q, %v (want %s)", name, ip, err, bench.Spec.ClusterIP)
	}
	n, lat, failed, err := dnsLoad(ctx, nsPath, server, name, window)
	if err != nil {
		return r, err
	}
	r.QPS, r.Lat, r.Failed = float64(n)/window.Seconds(), lat, failed
	for i := range services {
		took, err := propagation(ctx, c, ns, fmt.Sprintf("prop-%d", i), nsPath, server)
		if err != nil {
			return r, err
		}
		r.Propagation = append(r.Propagation, took)
	}
	return r, nil
}

// dnsServer is where the pod's queries go: kube-dns's ClusterIP if it
// answers from the pod (the service proxy DNATs it), else the DNS
// endpoint the kube-dns EndpointSlice lists.
func dnsServer(ctx context.Context, c *cluster, nsPath string) (string, string, error) {
	svc, err := c.client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("kube-dns Service: %w", err)
	}
	clusterIP := net.JoinHostPort(svc.Spec.ClusterIP, "53")
	if _, err := resolveOnce(nsPath, clusterIP, "kubernetes.default.svc.cluster.local.", 500*time.Millisecond); err == nil {
		return clusterIP, "through kube-dns's ClusterIP", nil
	}
	es, err := c.client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		return "", "", fmt.Errorf("kube-dns EndpointSlice: %w", err)
	}
	if len(es.Endpoints) == 0 || len(es.Ports) == 0 || es.Ports[0].Port == nil {
		return "", "", errors.New("kube-dns has no endpoint")
	}
	return net.JoinHostPort(es.Endpoints[0].Addresses[0], fmt.Sprint(*es.Ports[0].Port)),
		"to the DNS endpoint (the ClusterIP path needs the service proxy)", nil
}

// dialIn opens a UDP socket to server inside the network namespace at
// path (the socket stays there).
func dialIn(path, server string) (net.Conn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, err
	}
	conn, derr := net.Dial("udp", server)
	if err := netns.Set(orig); err != nil {
		runtime.LockOSThread() // the thread is in the pod's namespace: let it die locked
		return nil, err
	}
	return conn, derr
}

// resolveOnce asks server for name's A record from the namespace.
func resolveOnce(nsPath, server, name string, timeout time.Duration) (string, error) {
	conn, err := dialIn(nsPath, server)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	c := &mdns.Conn{Conn: conn}
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if err := c.WriteMsg(m); err != nil {
		return "", err
	}
	resp, err := c.ReadMsg()
	if err != nil {
		return "", err
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*mdns.A); ok {
			return a.A.String(), nil
		}
	}
	return "", fmt.Errorf("%s", mdns.RcodeToString[resp.Rcode])
}

// dnsLoad keeps dnsWorkers queries for name in flight from the namespace
// for window (after a warm-up), and returns how many were answered with
// an address, their latencies, and how many failed or timed out.
func dnsLoad(ctx context.Context, nsPath, server, name string, window time.Duration) (int, []time.Duration, int, error) {
	q := new(mdns.Msg)
	q.SetQuestion(name, mdns.TypeA)
	wire, err := q.Pack()
	if err != nil {
		return 0, nil, 0, err
	}
	var conns []net.Conn
	for range dnsWorkers {
		conn, err := dialIn(nsPath, server)
		if err != nil {
			return 0, nil, 0, err
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	start := time.Now()
	measureFrom, end := start.Add(dnsWarmup), start.Add(dnsWarmup+window)
	type result struct {
		lat    []time.Duration
		failed int
	}
	results := make([]result, len(conns))
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			msg := append([]byte(nil), wire...)
			res := &results[i]
			for sent := 0; sent < dnsMaxQueries/dnsWorkers && ctx.Err() == nil; sent++ {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				id := uint16(sent*dnsWorkers + i)
				binary.BigEndian.PutUint16(msg, id)
				_ = conn.SetDeadline(t0.Add(time.Second))
				ok := false
				if _, err := conn.Write(msg); err == nil {
					for {
						n, err := conn.Read(buf)
						if err != nil {
							break
						}
						// Header: ID, flags (rcode in the low 4 bits of byte 3), answer count.
						if n >= 12 && binary.BigEndian.Uint16(buf) == id {
							ok = buf[3]&0x0f == mdns.RcodeSuccess && binary.BigEndian.Uint16(buf[6:]) > 0
							break
						}
					}
				}
				if t0.Before(measureFrom) {
					continue
				}
				if ok {
					res.lat = append(res.lat, time.Since(t0))
				} else {
					res.failed++
				}
			}
		}()
	}
	wg.Wait()
	var lat []time.Duration
	failed := 0
	for _, r := range results {
		lat = append(lat, r.lat...)
		failed += r.failed
	}
	return len(lat), lat, failed, ctx.Err()
}

// propagation creates Service name and asks for it every millisecond
// until the answer carries its ClusterIP; it returns the time from the
// create call to that answer, then deletes the Service.
func propagation(ctx context.Context, c *cluster, ns, name, nsPath, server string) (time.Duration, error) {
	conn, err := dialIn(nsPath, server)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	dc := &mdns.Conn{Conn: conn}
	q := new(mdns.Msg)
	q.SetQuestion(name+"."+ns+".svc.cluster.local.", mdns.TypeA)
	start := time.Now()
	svc, err := c.client.CoreV1().Services(ns).Create(ctx, benchService(ns, name, []int32{80}), metav1.CreateOptions{})
	if err != nil {
		return 0, err
	}
	defer func() {
		_ = c.client.CoreV1().Services(ns).Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{})
	}()
	for deadline := start.Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(time.Millisecond) {
		q.Id = mdns.Id()
		_ = conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if dc.WriteMsg(q) != nil {
			continue
		}
		resp, err := dc.ReadMsg()
		if err != nil {
			continue
		}
		for _, rr := range resp.Answer {
			if a, ok := rr.(*mdns.A); ok && a.A.String() == svc.Spec.ClusterIP {
				return time.Since(start), nil
			}
		}
	}
	return 0, fmt.Errorf("new Service %s/%s not resolvable 10 s after its create", ns, name)
}

// dnsRows adds the DNS figures to the report.
func (b *bench) dnsRows(add func(row)) {
	r := b.dns
	add(row{Section: "cluster DNS", What: fmt.Sprintf("A queries for a Service name from a pod, %s, %d in flight, %s (%d failed)",
		r.Path, dnsWorkers, b.sz.DNSWindow, r.Failed), Unit: "queries/s",
		P50: r.QPS, P99: nan(), Anchor: "target (issue 12)", AP50: 20000, AP99: nan()})
	add(row{Section: "cluster DNS", What: fmt.Sprintf("query latency under that load, n=%d", len(r.Lat)), Unit: "ms",
		P50: percentile(r.Lat, .5), P99: percentile(r.Lat, .99), Anchor: "target (issue 12)", AP50: nan(), AP99: 2})
	add(row{Section: "cluster DNS", What: fmt.Sprintf("a new Service: create → first answer with its ClusterIP, n=%d", len(r.Propagation)), Unit: "ms",
		P50: percentile(r.Propagation, .5), P99: percentile(r.Propagation, .99), Anchor: "target (issue 12)", AP50: nan(), AP99: 1000})
}
