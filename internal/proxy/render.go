package proxy

import (
	"fmt"
	"strings"
)

// Names of the table's fixed objects (see doc.go for the layout).
const (
	chainServices      = "services"
	chainMasquerading  = "masquerading"
	chainMarkMasq      = "mark-for-masquerade"
	chainEndpointCheck = "endpoints-check"
	chainClusterIPs    = "cluster-ips-check"
	chainReject        = "reject-chain"

	mapServiceIPs        = "service-ips"
	mapServiceNodePorts  = "service-nodeports"
	mapNoEndpointSvcs    = "no-endpoint-services"
	mapNoEndpointNodePts = "no-endpoint-nodeports"
	setClusterIPs        = "cluster-ips"
	setHairpin           = "hairpin"
)

// masqueradeMark is the packet mark bit asking the postrouting chain to
// masquerade (kube-proxy's default bit 14).
const masqueradeMark = "0x00004000"

// ConnMark is the conntrack mark bit set on every connection this proxy
// translates to an endpoint: "ours", for `peapod reset` and the tests'
// leak checks to find and remove.
const ConnMark uint32 = 0x00100000

var connMarkHex = fmt.Sprintf("0x%08x", ConnMark)

// noLocalhost keeps NodePorts off loopback addresses: a packet from
// 127.0.0.1 cannot be routed to a pod.
const noLocalhost = "ip daddr != 127.0.0.0/8"

// part is what one Service programs: its chains with their rules, its
// elements in the shared maps and sets, and its affinity sets. Parts of
// different Services never share a chain or set; two Services' elements
// may share a key only across a sync that moves a ClusterIP from one to
// the other. Pure data.
type part struct {
	chains map[string][]string
	// elements maps a map or set name to its elements (key → value, ""
	// in a set). Keys and values are nft syntax, concatenations joined
	// by " . ".
	elements map[string]map[string]string
	// affinity maps an affinity set to its timeout in seconds.
	affinity map[string]int32
	// hairpin lists the endpoint addresses in use (repeated when two
	// ports share one); the hairpin set holds "ip . ip" for every address
	// some Service uses, counted across Services.
	hairpin []string
	// udp lists the port's frontends and endpoints for conntrack
	// cleanup (UDP ports only).
	udp []udpFrontend
}

// udpFrontend is where a UDP service port is reached and which
// endpoints may answer there.
type udpFrontend struct {
	ips       []string // ClusterIP and external IPs
	port      int32
	nodePort  int32
	endpoints map[string]bool // "ip:port" of the endpoints in use
}

func newPart() *part {
	return &part{chains: map[string][]string{}, elements: map[string]map[string]string{}, affinity: map[string]int32{}}
}

func (p *part) element(container, key, value string) {
	if p.elements[container] == nil {
		p.elements[container] = map[string]string{}
	}
	p.elements[container][key] = value
}

// renderService is the part of one Service's ports (nil when it has
// none to program). clusterCIDR is the pod network ("" when unknown: no
// local-traffic detection). Pure.
func renderService(ports []*servicePort, clusterCIDR string) *part {
	if len(ports) == 0 {
		return nil
	}
	p := newPart()
	for _, sp := range ports {
		renderPort(p, sp, clusterCIDR)
	}
	return p
}

// renderPort adds one service port to p, as kube-proxy's nftables mode
// programs it.
func renderPort(p *part, sp *servicePort, clusterCIDR string) {
	cluster, local, reachable, hasAny := sp.categorize()
	clusterChain := prefixService + sp.chainBase
	localChain := prefixLocal + sp.chainBase
	extChain := prefixExternal + sp.chainBase
	usesClusterChain := len(cluster) > 0 && sp.usesClusterEndpoints()
	usesLocalChain := len(local) > 0 && sp.usesLocalEndpoints()

	internalChain, hasInternal := clusterChain, hasAny
	if sp.itpLocal {
		internalChain, hasInternal = localChain, len(local) > 0
	}
	externalPolicyChain, hasExternal := clusterChain, hasAny
	if sp.etpLocal {
		externalPolicyChain, hasExternal = localChain, len(local) > 0
	}
	usesExtChain := hasAny && sp.externallyAccessible()

	// Without endpoints anywhere, packets are rejected at once (the
	// client sees "connection refused"); with endpoints elsewhere only,
	// a Local policy drops them.
	internalVerdict, externalVerdict := "drop", "drop"
	if !hasAny {
		internalVerdict, externalVerdict = "goto "+chainReject, "goto "+chainReject
	}

	portKey := sp.protocol + " . " + itoa(sp.port)
	p.element(setClusterIPs, sp.clusterIP, "")
	if hasInternal {
		p.element(mapServiceIPs, sp.clusterIP+" . "+portKey, "goto "+internalChain)
	} else {
		p.element(mapNoEndpointSvcs, sp.clusterIP+" . "+portKey, internalVerdict)
	}
	for _, ip := range sp.externalIPs {
		if hasAny {
			p.element(mapServiceIPs, ip+" . "+portKey, "goto "+extChain)
		}
		if !hasExternal {
			p.element(mapNoEndpointSvcs, ip+" . "+portKey, externalVerdict)
		}
	}
	if sp.nodePort != 0 {
		npKey := sp.protocol + " . " + itoa(sp.nodePort)
		if hasAny {
			p.element(mapServiceNodePorts, npKey, "goto "+extChain)
		}
		if !hasExternal {
			p.element(mapNoEndpointNodePts, npKey, externalVerdict)
		}
	}

	// A pod reaching itself through the Service is masqueraded (its
	// reply must come back through this node): the masquerading chain
	// matches source . destination against the hairpin set.
	for _, e := range reachable {
		p.hairpin = append(p.hairpin, e.ip)
	}
	// Only Services with session affinity have a chain per endpoint (to
	// remember each client's endpoint); the others pick and translate in
	// one rule.
	if sp.affinitySeconds > 0 {
		for _, e := range reachable {
			base := endpointBase(sp, e)
			set := affinitySet(base, sp.affinitySeconds)
			p.affinity[set] = sp.affinitySeconds
			p.chains[prefixEndpoint+base] = []string{
				fmt.Sprintf("update @%s { ip saddr }", set),
				"ct mark set ct mark or " + connMarkHex,
				fmt.Sprintf("meta l4proto %s dnat to %s", sp.protocol, e),
			}
		}
	}
	if usesClusterChain {
		p.chains[clusterChain] = balance(sp, cluster)
	}
	if usesLocalChain {
		p.chains[localChain] = balance(sp, local)
	}
	// Traffic to the ClusterIP from outside the pod network (the node
	// itself, a routed client) is masqueraded so replies come back here.
	if hasInternal && clusterCIDR != "" {
		rule := fmt.Sprintf("ip daddr %s %s dport %d ip saddr != %s jump %s", sp.clusterIP, sp.protocol, sp.port, clusterCIDR, chainMarkMasq)
		p.chains[internalChain] = append([]string{rule}, p.chains[internalChain]...)
	}
	if usesExtChain {
		var rules []string
		if !sp.etpLocal {
			// Endpoints may be on other nodes: masquerade so replies
			// come back through this one.
			rules = append(rules, "jump "+chainMarkMasq)
		} else {
			// Local policy keeps the client's address. Pods' and the
			// node's own traffic to an external address is served by
			// any endpoint, as if it had gone out and come back.
			if clusterCIDR != "" {
				rules = append(rules, fmt.Sprintf("ip saddr %s goto %s", clusterCIDR, clusterChain))
			}
			rules = append(rules, "fib saddr type local jump "+chainMarkMasq, "fib saddr type local goto "+clusterChain)
		}
		if hasExternal {
			rules = append(rules, "goto "+externalPolicyChain)
		}
		p.chains[extChain] = rules
	}
	if sp.protocol == "udp" {
		f := udpFrontend{ips: append([]string{sp.clusterIP}, sp.externalIPs...), port: sp.port, nodePort: sp.nodePort,
			endpoints: map[string]bool{}}
		for _, e := range reachable {
			f.endpoints[e.String()] = true
		}
		p.udp = append(p.udp, f)
	}
}

// balance is a policy chain's rules: mark the connection ours, then
// pick an endpoint at random and translate to it (one map lookup). With
// session affinity, pinned clients go to their endpoint's chain first and
// the others to one picked at random (a verdict map).
func balance(sp *servicePort, eps []endpoint) []string {
	if sp.affinitySeconds == 0 {
		var m []string
		for i, e := range eps {
			m = append(m, fmt.Sprintf("%d : %s . %d", i, e.ip, e.port))
		}
		// Separate tokens around the commas, as nft prints them.
		return []string{
			"ct mark set ct mark or " + connMarkHex,
			fmt.Sprintf("meta l4proto %s dnat ip to numgen random mod %d map { %s }", sp.protocol, len(eps), strings.Join(m, " , ")),
		}
	}
	var rules []string
	for _, e := range eps {
		base := endpointBase(sp, e)
		rules = append(rules, fmt.Sprintf("ip saddr @%s goto %s", affinitySet(base, sp.affinitySeconds), prefixEndpoint+base))
	}
	var vmap []string
	for i, e := range eps {
		vmap = append(vmap, fmt.Sprintf("%d : goto %s", i, prefixEndpoint+endpointBase(sp, e)))
	}
	return append(rules, fmt.Sprintf("numgen random mod %d vmap { %s }", len(eps), strings.Join(vmap, " , ")))
}

// affinitySet names an endpoint's affinity set; the timeout is part of
// the name, as a set's timeout cannot change in place.
func affinitySet(endpointBase string, seconds int32) string {
	return prefixAffinity + endpointBase + "/t" + itoa(seconds)
}
