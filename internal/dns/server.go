package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	mdns "github.com/miekg/dns"
)

// maxChase bounds a chain of CNAMEs the server follows for one answer.
const maxChase = 8

// ednsSize is the UDP payload size the server advertises to EDNS clients
// (the DNS flag day 2020 figure, which avoids IP fragmentation).
const ednsSize = 1232

// Handler answers DNS messages: the cluster domain from the Zone,
// everything else through the upstream resolvers. It implements
// mdns.Handler; one Handler serves UDP and TCP alike.
type Handler struct {
	zone *Zone
	fwd  *forwarder
	log  *slog.Logger
}

var _ mdns.Handler = (*Handler)(nil)

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	// Upstreams are host:port resolvers for names outside the zone.
	Upstreams []string
	// Now is the cache's clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// NewHandler returns a Handler answering from zone.
func NewHandler(zone *Zone, opts HandlerOptions) *Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{zone: zone, fwd: newForwarder(opts.Upstreams, opts.Now), log: opts.Logger}
}

// ServeDNS answers one message. The server has already refused messages
// that are not one question of opcode QUERY (FORMERR, NOTIMP).
func (h *Handler) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	tcp := isTCP(w)
	m := h.answer(req, tcp)
	if !tcp {
		m.Truncate(udpLimit(req))
	}
	if err := w.WriteMsg(m); err != nil {
		h.log.Debug("write DNS answer", "client", w.RemoteAddr(), "err", err)
	}
}

func isTCP(w mdns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// udpLimit is the largest UDP answer the client takes: 512 bytes, or the
// size its EDNS record announces.
func udpLimit(req *mdns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return max(mdns.MinMsgSize, int(opt.UDPSize()))
	}
	return mdns.MinMsgSize
}

// upstreamContext bounds the upstream exchanges of one answer: every
// upstream tried once, with room for a CNAME target after the name.
func (h *Handler) upstreamContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*upstreamTimeout*time.Duration(max(1, len(h.fwd.upstreams))))
}

// answer builds the reply to req. Answers from the zone take no context
// (no timer per query): they never wait.
func (h *Handler) answer(req *mdns.Msg, tcp bool) *mdns.Msg {
	q := req.Question[0]
	if q.Qclass != mdns.ClassINET {
		return reply(req, mdns.RcodeRefused)
	}
	r := h.zone.Lookup(q)
	if r.Forward {
		ctx, cancel := h.upstreamContext()
		defer cancel()
		resp, err := h.fwd.exchange(ctx, req, tcp)
		if err != nil {
			h.log.Debug("forward", "name", q.Name, "err", err)
			return reply(req, mdns.RcodeServerFailure)
		}
		return resp
	}
	m := reply(req, r.Rcode)
	m.Authoritative = true
	m.Answer, m.Ns = r.Answer, r.Ns
	m.Extra = append(r.Extra, m.Extra...) // the OPT record last, as it is customary
	if r.Chase != "" {
		ctx, cancel := h.upstreamContext()
		defer cancel()
		answers, rcode := h.chase(ctx, r.Chase, q.Qtype, tcp, 1)
		m.Answer = append(m.Answer, answers...)
		if rcode == mdns.RcodeNameError {
			m.Rcode = rcode // RFC 6604: the rcode is the last name's
		}
	}
	return m
}

// chase resolves target (a CNAME's) for qtype: inside the zone from the
// zone, outside through the forwarder.
func (h *Handler) chase(ctx context.Context, target string, qtype uint16, tcp bool, depth int) ([]mdns.RR, int) {
	if depth > maxChase {
		return nil, mdns.RcodeServerFailure
	}
	q := mdns.Question{Name: target, Qtype: qtype, Qclass: mdns.ClassINET}
	r := h.zone.Lookup(q)
	if !r.Forward {
		answers := r.Answer
		rcode := r.Rcode
		if r.Chase != "" {
			more, rc := h.chase(ctx, r.Chase, qtype, tcp, depth+1)
			answers, rcode = append(answers, more...), rc
		}
		return answers, rcode
	}
	req := new(mdns.Msg)
	req.SetQuestion(target, qtype)
	req.SetEdns0(ednsSize, false)
	resp, err := h.fwd.exchange(ctx, req, tcp)
	if err != nil {
		h.log.Debug("resolve CNAME target", "name", target, "err", err)
		return nil, mdns.RcodeServerFailure
	}
	return resp.Answer, resp.Rcode
}

// reply is an empty answer to req with rcode; an EDNS request gets EDNS
// back.
func reply(req *mdns.Msg, rcode int) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	m.Compress = true
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(ednsSize, opt.Do())
	}
	return m
}

// Serve answers on pc (UDP) and ln (TCP) with h until ctx ends, then
// stops both servers and closes pc and ln. It returns an error if a server
// fails.
func Serve(ctx context.Context, h mdns.Handler, pc net.PacketConn, ln net.Listener) error {
	started := make(chan struct{})
	tcp := &mdns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { close(started) },
		ReadTimeout: 10 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	errc := make(chan error, 2)
	go func() { errc <- tcp.ActivateAndServe() }()
	go func() { errc <- serveUDP(h, pc) }()
	var err error
	// Shutdown needs a started server: wait for it (or a failure).
	select {
	case <-started:
	case e := <-errc:
		err = fmt.Errorf("DNS server: %w", e)
	}
	if err == nil {
		select {
		case <-ctx.Done():
		case e := <-errc:
			err = fmt.Errorf("DNS server stopped: %w", e)
		}
	}
	_ = pc.Close() // ends the UDP workers
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tcp.ShutdownContext(sctx)
	_ = ln.Close()
	if errors.Is(err, net.ErrClosed) && ctx.Err() != nil {
		return nil
	}
	return err
}
