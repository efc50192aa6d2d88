package dns

import (
	"context"
	"errors"
	"fmt"
	"time"

	mdns "github.com/miekg/dns"
)

// upstreamTimeout bounds one exchange with one upstream; the next is
// tried after it (CoreDNS's forward plugin gives up on an upstream after
// 2 s too).
const upstreamTimeout = 2 * time.Second

// forwarder sends questions outside the cluster domain to the node's
// upstream resolvers, in order, over the client's own transport (a
// truncated UDP answer goes back truncated, and the client retries over
// TCP), keeping answers in a cache.
type forwarder struct {
	upstreams []string // host:port
	cache     *answerCache
	udp, tcp  *mdns.Client
}

func newForwarder(upstreams []string, now func() time.Time) *forwarder {
	return &forwarder{
		upstreams: upstreams,
		cache:     newAnswerCache(now),
		udp:       &mdns.Client{Net: "udp", Timeout: upstreamTimeout, UDPSize: mdns.MaxMsgSize},
		tcp:       &mdns.Client{Net: "tcp", Timeout: upstreamTimeout},
	}
}

// errNoUpstream: the node has no resolver to forward to.
var errNoUpstream = errors.New("no upstream resolver (none in the node's resolv.conf, and no --cluster-dns-upstream)")

// exchange answers req from the cache or the first upstream that answers.
// req is not modified; the answer carries req's ID.
func (f *forwarder) exchange(ctx context.Context, req *mdns.Msg, tcp bool) (*mdns.Msg, error) {
	if m := f.cache.get(req); m != nil {
		return m, nil
	}
	if len(f.upstreams) == 0 {
		return nil, errNoUpstream
	}
	client := f.udp
	if tcp {
		client = f.tcp
	}
	up := req.Copy()
	up.Id = mdns.Id() // our own ID towards the upstream: a client's predictable one would help spoofing
	up.RecursionDesired = true
	var errs []error
	for _, addr := range f.upstreams {
		resp, _, err := client.ExchangeContext(ctx, up, addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		resp.Id = req.Id
		resp.Compress = true
		f.cache.put(req, resp)
		return resp, nil
	}
	return nil, fmt.Errorf("forward %s: %w", req.Question[0].Name, errors.Join(errs...))
}
