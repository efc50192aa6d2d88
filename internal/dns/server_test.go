package dns

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// serveOn starts h on a loopback UDP and TCP port and returns the address;
// the servers stop when the test ends.
func serveOn(t *testing.T, h mdns.Handler) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, h, pc, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return addr
}

// fakeUpstream answers www.example.com (A 192.0.2.1, TTL 60) and
// big.example.com (TXT records filling 3 KB); everything else NXDOMAIN.
// It counts the queries it gets.
func fakeUpstream(t *testing.T) (string, *atomic.Int32) {
	var n atomic.Int32
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		n.Add(1)
		q := req.Question[0]
		m := new(mdns.Msg)
		m.SetReply(req)
		switch {
		case strings.EqualFold(q.Name, "www.example.com.") && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		case strings.EqualFold(q.Name, "big.example.com."):
			for i := range 30 {
				m.Answer = append(m.Answer, &mdns.TXT{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 60},
					Txt: []string{fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 90))}})
			}
		default:
			m.Rcode = mdns.RcodeNameError
			m.Ns = []mdns.RR{&mdns.SOA{Hdr: mdns.RR_Header{Name: "example.com.", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: 60},
				Ns: "ns.example.com.", Mbox: "h.example.com.", Minttl: 60}}
		}
		if !isTCP(w) {
			m.Truncate(udpLimit(req))
		}
		_ = w.WriteMsg(m)
	})
	return serveOn(t, h), &n
}

func exchange(t *testing.T, netw, addr string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: netw, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s exchange %s: %v", netw, m.Question[0].Name, err)
	}
	return resp
}

func TestHandler(t *testing.T) {
	upstream, upstreamQueries := fakeUpstream(t)
	z := testZone(t)
	// A headless Service with more endpoints than 512 bytes hold.
	z.SetService(svc("default", "many", corev1.ClusterIPNone))
	var eps []ep
	for i := range 60 {
		eps = append(eps, ep{ip: fmt.Sprintf("10.2.0.%d", i+1), ready: ptr.To(true)})
	}
	z.SetEndpointSlice(endpointSlice("default", "many-abc", "many", eps))
	addr := serveOn(t, NewHandler(z, HandlerOptions{Upstreams: []string{upstream}}))

	t.Run("cluster name, authoritative", func(t *testing.T) {
		resp := exchange(t, "udp", addr, question("web.default.svc.cluster.local.", mdns.TypeA))
		if !resp.Authoritative || resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].(*mdns.A).A.String() != "10.96.0.20" {
			t.Errorf("answer: %v", resp)
		}
	})
	t.Run("NXDOMAIN with the SOA", func(t *testing.T) {
		resp := exchange(t, "udp", addr, question("nope.default.svc.cluster.local.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeNameError || len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != mdns.TypeSOA {
			t.Errorf("answer: %v", resp)
		}
	})
	t.Run("forwarded, then cached", func(t *testing.T) {
		before := upstreamQueries.Load()
		for range 3 {
			resp := exchange(t, "udp", addr, question("www.example.com.", mdns.TypeA))
			if resp.Authoritative || len(resp.Answer) != 1 || resp.Answer[0].(*mdns.A).A.String() != "192.0.2.1" {
				t.Fatalf("answer: %v", resp)
			}
		}
		if n := upstreamQueries.Load() - before; n != 1 {
			t.Errorf("upstream asked %d times for one name, want once", n)
		}
		resp := exchange(t, "udp", addr, question("nope.example.com.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeNameError {
			t.Errorf("upstream NXDOMAIN became %s", mdns.RcodeToString[resp.Rcode])
		}
	})
	t.Run("ExternalName: CNAME and the target's address", func(t *testing.T) {
		resp := exchange(t, "udp", addr, question("ext.default.svc.cluster.local.", mdns.TypeA))
		if got := rrs(resp.Answer); len(got) != 2 || got[0] != "ext.default.svc.cluster.local. CNAME www.example.com." || got[1] != "www.example.com. A 192.0.2.1" {
			t.Errorf("answer: %q", got)
		}
		resp = exchange(t, "udp", addr, question("chain.default.svc.cluster.local.", mdns.TypeA))
		if got := rrs(resp.Answer); len(got) != 2 || got[1] != "web.default.svc.cluster.local. A 10.96.0.20" {
			t.Errorf("CNAME into the zone: %q", got)
		}
	})
	t.Run("truncated over UDP, whole over TCP", func(t *testing.T) {
		resp := exchange(t, "udp", addr, question("many.default.svc.cluster.local.", mdns.TypeA))
		if !resp.Truncated || len(resp.Answer) >= 60 {
			t.Errorf("UDP without EDNS: truncated %v with %d answers", resp.Truncated, len(resp.Answer))
		}
		resp.Compress = true
		if n := resp.Len(); n > 512 {
			t.Errorf("UDP answer of %d bytes, over 512", n)
		}
		resp = exchange(t, "tcp", addr, question("many.default.svc.cluster.local.", mdns.TypeA))
		if resp.Truncated || len(resp.Answer) != 60 {
			t.Errorf("TCP: truncated %v with %d answers", resp.Truncated, len(resp.Answer))
		}
		q := question("many.default.svc.cluster.local.", mdns.TypeA)
		q.SetEdns0(4096, false)
		resp = exchange(t, "udp", addr, q)
		if resp.Truncated || len(resp.Answer) != 60 || resp.IsEdns0() == nil {
			t.Errorf("UDP with EDNS 4096: truncated %v with %d answers, EDNS %v", resp.Truncated, len(resp.Answer), resp.IsEdns0() != nil)
		}
	})
	t.Run("large upstream answer: truncated over UDP, whole over TCP", func(t *testing.T) {
		resp := exchange(t, "udp", addr, question("big.example.com.", mdns.TypeTXT))
		if !resp.Truncated {
			t.Errorf("UDP: not truncated, %d answers", len(resp.Answer))
		}
		resp = exchange(t, "tcp", addr, question("big.example.com.", mdns.TypeTXT))
		if resp.Truncated || len(resp.Answer) != 30 {
			t.Errorf("TCP: truncated %v with %d answers", resp.Truncated, len(resp.Answer))
		}
	})
	t.Run("class other than IN: REFUSED", func(t *testing.T) {
		q := question("version.bind.", mdns.TypeTXT)
		q.Question[0].Qclass = mdns.ClassCHAOS
		if resp := exchange(t, "udp", addr, q); resp.Rcode != mdns.RcodeRefused {
			t.Errorf("rcode %s", mdns.RcodeToString[resp.Rcode])
		}
	})
	t.Run("two questions: FORMERR", func(t *testing.T) {
		q := question("web.default.svc.cluster.local.", mdns.TypeA)
		q.Question = append(q.Question, q.Question[0])
		if resp := exchange(t, "udp", addr, q); resp.Rcode != mdns.RcodeFormatError {
			t.Errorf("rcode %s", mdns.RcodeToString[resp.Rcode])
		}
	})
}

func TestHandlerUpstreamDown(t *testing.T) {
	// A port nothing listens on: the upstream refuses at once.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	addr := serveOn(t, NewHandler(testZone(t), HandlerOptions{Upstreams: []string{dead}}))
	if resp := exchange(t, "udp", addr, question("www.example.com.", mdns.TypeA)); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	// The cluster's names do not depend on the upstream.
	if resp := exchange(t, "udp", addr, question("web.default.svc.cluster.local.", mdns.TypeA)); len(resp.Answer) != 1 {
		t.Errorf("cluster name with the upstream down: %v", resp)
	}
	// No upstream at all.
	addr = serveOn(t, NewHandler(testZone(t), HandlerOptions{}))
	if resp := exchange(t, "udp", addr, question("www.example.com.", mdns.TypeA)); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("no upstream: rcode %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
}

// BenchmarkHandlerUDP measures answers per second for a Service name over
// loopback UDP, with 16 clients in parallel.
func BenchmarkHandlerUDP(b *testing.B) {
	t := &testing.T{}
	z := testZone(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = Serve(ctx, NewHandler(z, HandlerOptions{}), pc, ln) }()
	addr := pc.LocalAddr().String()
	b.SetParallelism(16)
	b.RunParallel(func(p *testing.PB) {
		conn, err := mdns.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		q := question("web.default.svc.cluster.local.", mdns.TypeA)
		for p.Next() {
			q.Id = mdns.Id()
			if err := conn.WriteMsg(q); err != nil {
				b.Error(err)
				return
			}
			if _, err := conn.ReadMsg(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
