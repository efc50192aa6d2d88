package dns

import (
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func question(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func answerA(req *mdns.Msg, ttl uint32, ip string) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: req.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl}, A: net.ParseIP(ip)}}
	return m
}

func negative(req *mdns.Msg, rcode int, soaTTL, minTTL uint32) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetRcode(req, rcode)
	m.Ns = []mdns.RR{&mdns.SOA{Hdr: mdns.RR_Header{Name: "example.com.", Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: soaTTL},
		Ns: "ns.example.com.", Mbox: "h.example.com.", Minttl: minTTL}}
	return m
}

func TestAnswerCache(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := newAnswerCache(clock.now)
	req := question("www.example.com.", mdns.TypeA)
	c.put(req, answerA(req, 10, "192.0.2.1"))

	// Another ID and spelling get the same answer, TTL counted down.
	clock.t = clock.t.Add(4 * time.Second)
	again := question("WWW.Example.com.", mdns.TypeA)
	got := c.get(again)
	if got == nil {
		t.Fatal("no cached answer")
	}
	if got.Id != again.Id || got.Question[0].Name != "WWW.Example.com." {
		t.Errorf("cached answer keeps the old ID or question: id %d (want %d), %q", got.Id, again.Id, got.Question[0].Name)
	}
	if ttl := got.Answer[0].Header().Ttl; ttl != 6 {
		t.Errorf("TTL = %d, want 6", ttl)
	}
	// A copy: changing it leaves the cache alone.
	got.Answer[0].Header().Ttl = 999
	if ttl := c.get(again).Answer[0].Header().Ttl; ttl != 6 {
		t.Errorf("cache entry changed through a returned copy: TTL %d", ttl)
	}
	// Another type is another entry.
	if c.get(question("www.example.com.", mdns.TypeAAAA)) != nil {
		t.Error("AAAA answered from the A entry")
	}
	// Expired.
	clock.t = clock.t.Add(6 * time.Second)
	if c.get(again) != nil {
		t.Error("answer kept past its TTL")
	}

	// Long TTLs are capped at 30 s.
	c.put(req, answerA(req, 3600, "192.0.2.1"))
	clock.t = clock.t.Add(31 * time.Second)
	if c.get(req) != nil {
		t.Error("answer kept past the 30 s cap")
	}

	// NXDOMAIN is kept for the SOA's smaller of TTL and minimum.
	nx := question("nope.example.com.", mdns.TypeA)
	c.put(nx, negative(nx, mdns.RcodeNameError, 60, 3))
	clock.t = clock.t.Add(2 * time.Second)
	if m := c.get(nx); m == nil || m.Rcode != mdns.RcodeNameError {
		t.Errorf("NXDOMAIN not cached: %v", m)
	}
	clock.t = clock.t.Add(2 * time.Second)
	if c.get(nx) != nil {
		t.Error("NXDOMAIN kept past the SOA minimum")
	}

	// Not cached: SERVFAIL, truncated answers, TTL 0, negative answers without SOA.
	for name, m := range map[string]*mdns.Msg{
		"servfail.example.com.": negative(question("servfail.example.com.", mdns.TypeA), mdns.RcodeServerFailure, 60, 60),
		"tc.example.com.": func() *mdns.Msg {
			m := answerA(question("tc.example.com.", mdns.TypeA), 60, "192.0.2.1")
			m.Truncated = true
			return m
		}(),
		"zero.example.com.": answerA(question("zero.example.com.", mdns.TypeA), 0, "192.0.2.1"),
		"nosoa.example.com.": func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetRcode(question("nosoa.example.com.", mdns.TypeA), mdns.RcodeNameError)
			return m
		}(),
	} {
		q := question(name, mdns.TypeA)
		c.put(q, m)
		if c.get(q) != nil {
			t.Errorf("%s cached", name)
		}
	}
}

func TestAnswerCacheBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := newAnswerCache(clock.now)
	c.maxEntries = 3
	for _, name := range []string{"a.", "b.", "c.", "d.", "e."} {
		q := question(name, mdns.TypeA)
		c.put(q, answerA(q, 30, "192.0.2.1"))
	}
	if n := len(c.entries); n != 3 {
		t.Errorf("%d entries, want at most 3", n)
	}
	if c.get(question("e.", mdns.TypeA)) == nil {
		t.Error("the newest entry was evicted")
	}
}
