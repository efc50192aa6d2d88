package dns

import (
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// Cache bounds, as kubeadm's Corefile sets CoreDNS's cache plugin
// ("cache 30": nothing is kept longer than 30 s) and about its default
// capacity.
const (
	cacheMaxTTL     = 30 * time.Second
	cacheMaxEntries = 10000
)

// answerCache keeps upstream answers (NOERROR, NODATA and NXDOMAIN) for
// the smaller of their TTL and cacheMaxTTL. Safe for concurrent use. When
// full, an arbitrary entry makes room, as CoreDNS's cache evicts.
type answerCache struct {
	now        func() time.Time
	maxEntries int

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

type cacheKey struct {
	name         string // lower case
	qtype, class uint16
	do           bool // DNSSEC OK: a different answer
}

type cacheEntry struct {
	msg     *mdns.Msg
	stored  time.Time
	expires time.Time
}

func newAnswerCache(now func() time.Time) *answerCache {
	return &answerCache{now: now, maxEntries: cacheMaxEntries, entries: map[cacheKey]cacheEntry{}}
}

func keyOf(req *mdns.Msg) cacheKey {
	q := req.Question[0]
	k := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, class: q.Qclass}
	if opt := req.IsEdns0(); opt != nil {
		k.do = opt.Do()
	}
	return k
}

// get returns a copy of the cached answer to req, its ID and question
// req's and its TTLs counted down, or nil.
func (c *answerCache) get(req *mdns.Msg) *mdns.Msg {
	k := keyOf(req)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !now.Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	m := e.msg.Copy()
	m.Id = req.Id
	m.Question = append([]mdns.Question(nil), req.Question...)
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, section := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if rr.Header().Rrtype == mdns.TypeOPT {
				continue
			}
			if rr.Header().Ttl > age {
				rr.Header().Ttl -= age
			} else {
				rr.Header().Ttl = 0
			}
		}
	}
	return m
}

// put keeps resp, the answer to req, if it may be cached: a complete
// (not truncated) NOERROR or NXDOMAIN answer whose TTL is not zero.
func (c *answerCache) put(req, resp *mdns.Msg) {
	if resp.Truncated || (resp.Rcode != mdns.RcodeSuccess && resp.Rcode != mdns.RcodeNameError) {
		return
	}
	ttl, ok := minTTL(resp)
	if !ok || ttl == 0 {
		return
	}
	now := c.now()
	e := cacheEntry{msg: resp.Copy(), stored: now, expires: now.Add(min(time.Duration(ttl)*time.Second, cacheMaxTTL))}
	k := keyOf(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.entries[k]; !exists && len(c.entries) >= c.maxEntries {
		for victim := range c.entries {
			delete(c.entries, victim)
			break
		}
	}
	c.entries[k] = e
}

// minTTL is how long resp stays true: its answers' smallest TTL, or for
// a negative answer its SOA's (the smaller of the record's TTL and its
// minimum, RFC 2308). ok is false when nothing says.
func minTTL(resp *mdns.Msg) (ttl uint32, ok bool) {
	if len(resp.Answer) > 0 {
		for _, rr := range resp.Answer {
			if !ok || rr.Header().Ttl < ttl {
				ttl, ok = rr.Header().Ttl, true
			}
		}
		return ttl, ok
	}
	for _, rr := range resp.Ns {
		if soa, isSOA := rr.(*mdns.SOA); isSOA {
			return min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	return 0, false
}
