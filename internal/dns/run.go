package dns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Options configure the cluster DNS of one `peapod server`.
type Options struct {
	// Settings are completed Settings (see Settings.Complete).
	Settings Settings
	// Bind is the server's node address, where agents and pods reach it:
	// the DNS server listens there on Settings.Port, UDP and TCP, and
	// nowhere else (a host resolver on 127.0.0.53 or another address is
	// not in the way).
	Bind netip.Addr
	// Logger receives the component's logs.
	Logger *slog.Logger
}

// Run serves the cluster DNS until ctx ends:
//
//  1. the zone follows Services, EndpointSlices and Namespaces through
//     informers; Run waits for their first lists, so no answer comes from
//     an empty zone;
//  2. it listens on Bind:Port, UDP and TCP;
//  3. it lists Bind:Port as the kube-dns Service's endpoint, and keeps
//     the endpoints equal to the live API servers' addresses (the
//     kubernetes Service's endpoints, kept by the servers' leases) and its
//     own: every server answers DNS on the address it serves the API at,
//     so a server that dies leaves both Services together;
//  4. it answers until ctx ends, then takes its endpoint out again.
//
// The kube-dns Service itself is EnsureService's, called before.
func Run(ctx context.Context, client kubernetes.Interface, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := opts.Settings
	self := netip.AddrPortFrom(opts.Bind, uint16(s.Port))
	upstreams, source := s.Upstreams, "--cluster-dns-upstream"
	if len(upstreams) == 0 {
		var err error
		if upstreams, source, err = HostUpstreams(self); err != nil {
			log.Warn("cluster DNS: names outside the cluster will fail", "err", err)
		}
	}
	zone := NewZone(ZoneOptions{Domain: s.ClusterDomain, Nameservers: []netip.Addr{s.ClusterDNS}, Serial: uint32(time.Now().Unix())})
	live := make(chan []netip.Addr, 1)
	apiServers := func(addrs []netip.Addr) {
		select { // only the latest list matters
		case <-live:
		default:
		}
		live <- addrs
	}
	if err := syncZone(ctx, client, zone, apiServers); err != nil {
		return fmt.Errorf("cluster DNS: follow the API: %w", err)
	}
	pc, err := net.ListenPacket("udp", self.String())
	if err != nil {
		return fmt.Errorf("cluster DNS: %w (is another DNS server on this address? --cluster-dns-port moves ours)", err)
	}
	ln, err := net.Listen("tcp", self.String())
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("cluster DNS: %w (is another DNS server on this address? --cluster-dns-port moves ours)", err)
	}
	h := NewHandler(zone, HandlerOptions{Upstreams: upstreams, Logger: log})
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, h, pc, ln) }()
	if err := PublishEndpoint(ctx, client, opts.Bind, s.Port); err != nil && ctx.Err() == nil {
		log.Warn("cluster DNS: publish kube-dns endpoints", "err", err)
	}
	go followAPIServers(ctx, client, opts.Bind, s.Port, live, log)
	log.Info("cluster DNS serving", "address", self, "domain", s.ClusterDomain, "service", ServiceNamespace+"/"+ServiceName,
		"clusterIP", s.ClusterDNS, "upstreams", upstreams, "upstreamsFrom", source)
	err = <-served
	// A server that stops takes itself out of the Service, as API servers
	// take themselves out of the kubernetes Service.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if uerr := WithdrawEndpoint(uctx, client, opts.Bind, s.Port); uerr != nil {
		log.Debug("cluster DNS: remove kube-dns endpoints", "err", uerr)
	}
	return err
}

// followAPIServers writes the kube-dns endpoints as the addresses of each
// list of live API servers that arrives, with self always among them,
// until ctx ends. Every server writes the same list, so their writes
// agree.
func followAPIServers(ctx context.Context, client kubernetes.Interface, self netip.Addr, port int, live <-chan []netip.Addr, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case addrs := <-live:
			want := append(slices.Clone(addrs), self)
			err := updateEndpoints(ctx, client, port, func([]netip.Addr) []netip.Addr { return want })
			if err != nil && ctx.Err() == nil {
				log.Warn("cluster DNS: follow the API servers in kube-dns endpoints", "err", err)
			}
		}
	}
}
