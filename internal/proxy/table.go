package proxy

import (
	"sigs.k8s.io/knftables"
)

// baseChain is one of the table's chains attached to a netfilter hook.
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
	rules    []string
}

// baseChains attach the table to the hooks. Filtering runs before DNAT
// (so it sees Service addresses), except the check for undefined ports of
// a ClusterIP, which must see what DNAT left untouched.
func baseChains() []baseChain {
	return []baseChain{
		{"filter-input", knftables.FilterType, knftables.InputHook, knftables.DNATPriority + "-10",
			[]string{"ct state new jump " + chainEndpointCheck}},
		{"filter-forward", knftables.FilterType, knftables.ForwardHook, knftables.DNATPriority + "-10",
			[]string{"ct state new jump " + chainEndpointCheck, "ct state new jump " + chainClusterIPs}},
		{"filter-output", knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10",
			[]string{"ct state new jump " + chainEndpointCheck}},
		{"filter-output-post-dnat", knftables.FilterType, knftables.OutputHook, knftables.FilterPriority,
			[]string{"ct state new jump " + chainClusterIPs}},
		{"nat-prerouting", knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority,
			[]string{"jump " + chainServices}},
		{"nat-output", knftables.NATType, knftables.OutputHook, knftables.DNATPriority,
			[]string{"jump " + chainServices}},
		{"nat-postrouting", knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority,
			[]string{"jump " + chainMasquerading}},
	}
}

// fixedChains are the table's regular chains that do not belong to one
// Service, with their rules. Each lookup is one verdict-map lookup keyed
// by destination address, protocol and port (or protocol and port for
// NodePorts on any local address but loopback).
func fixedChains() map[string][]string {
	return map[string][]string{
		chainServices: {
			"ip daddr . meta l4proto . th dport vmap @" + mapServiceIPs,
			"fib daddr type local " + noLocalhost + " meta l4proto . th dport vmap @" + mapServiceNodePorts,
		},
		chainEndpointCheck: {
			"ip daddr . meta l4proto . th dport vmap @" + mapNoEndpointSvcs,
			"fib daddr type local " + noLocalhost + " meta l4proto . th dport vmap @" + mapNoEndpointNodePts,
		},
		// A ClusterIP on a port no Service defines: refused, not routed
		// off the node.
		chainClusterIPs: {"ip daddr @" + setClusterIPs + " reject"},
		chainReject:     {"reject"},
		chainMarkMasq:   {"mark set mark or " + masqueradeMark},
		chainMasquerading: {
			// A pod that reached itself through a Service.
			"ct status dnat ip saddr . ip daddr @" + setHairpin + " masquerade fully-random",
			"mark and " + masqueradeMark + " == 0 return",
			"mark set mark xor " + masqueradeMark,
			"masquerade fully-random",
		},
	}
}

type container struct {
	name, typ string
	isMap     bool
}

// containers are the table's shared maps and sets.
func containers() []container {
	return []container{
		{mapServiceIPs, "ipv4_addr . inet_proto . inet_service : verdict", true},
		{mapServiceNodePorts, "inet_proto . inet_service : verdict", true},
		{mapNoEndpointSvcs, "ipv4_addr . inet_proto . inet_service : verdict", true},
		{mapNoEndpointNodePts, "inet_proto . inet_service : verdict", true},
		{setClusterIPs, "ipv4_addr", false},
		{setHairpin, "ipv4_addr . ipv4_addr", false},
	}
}

func isMap(name string) bool {
	for _, c := range containers() {
		if c.name == name {
			return c.isMap
		}
	}
	return false
}

// addFixed adds to tx the table and its fixed objects, rewritten: chains
// flushed and refilled, maps and sets emptied (the full sync refills
// them).
func addFixed(tx *knftables.Transaction) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("peapod service proxy: ClusterIPs, NodePorts and external IPs of Services")})
	for _, bc := range baseChains() {
		c := &knftables.Chain{Name: bc.name, Type: knftables.PtrTo(bc.typ), Hook: knftables.PtrTo(bc.hook), Priority: knftables.PtrTo(bc.priority)}
		tx.Add(c)
		tx.Flush(c)
	}
	fixed := fixedChains()
	for _, name := range sortedKeys(fixed) {
		tx.Add(&knftables.Chain{Name: name})
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, c := range containers() {
		if c.isMap {
			tx.Add(&knftables.Map{Name: c.name, Type: c.typ})
			tx.Flush(&knftables.Map{Name: c.name})
		} else {
			tx.Add(&knftables.Set{Name: c.name, Type: c.typ})
			tx.Flush(&knftables.Set{Name: c.name})
		}
	}
	// Rules after every chain and map they name exists.
	for _, name := range sortedKeys(fixed) {
		for _, r := range fixed[name] {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}
	for _, bc := range baseChains() {
		for _, r := range bc.rules {
			tx.Add(&knftables.Rule{Chain: bc.name, Rule: r})
		}
	}
}
