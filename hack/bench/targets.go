package main

import (
	"fmt"
	"time"
)

// targets judges this run's figures against the goals of issues 2–6, 10
// and 12. The remedies say what the profile shows and what would close a
// miss.
func (b *bench) targets() {
	t := func(issue int, goal, got string, known, met bool, remedy string) {
		b.r.Targets = append(b.r.Targets, target{Issue: issue, Goal: goal, Got: got, Known: known, Met: met, Remedy: remedy})
	}
	const startRemedy = "timeline of one start (runc, warm sandbox), from the agent's and client's clocks: create and scheduler bind ≈ 6 ms; " +
		"taking a warm sandbox (the pod's volumes, with a token request; hostname; /etc files) ≈ 6 ms; rootfs and bundle ≈ 3 ms; " +
		"`runc run -d` through pause ≈ 33 ms, ≈ 10 ms of it runc compiling the default seccomp profile with libseccomp (crun caches " +
		"the compiled filter: ≈ 20 ms); status write ≈ 5 ms (an etcd fsync); watch ≈ 1 ms. The node is CPU-bound: a start costs ≈ 110 ms " +
		"of CPU on 2 cores (the server ≈ 50 ms: TLS, etcd, encoding, GC; the OCI runtime ≈ 25 ms; CNI plugins ≈ 10 ms when the pool refills). " +
		"Fixed in this round: the warm sandbox pool, favordynmods on cgroup2 (each cgroup move waited a 15 ms RCU grace period), no " +
		"client-certificate re-verification per request, no namespace-wide pod scan per ConfigMap read. What would close the rest: " +
		"runc's own cost is outside peapod (its floor row); fewer writes per start (four events, the binding and the status, each an etcd " +
		"fsync and a watch fan-out); ES256 instead of RS256 service account tokens."

	p50 := percentile(b.seqRunc, .5)
	// Issue 2's own pod-start target is the runtime's (BenchmarkPodStart in
	// internal/runtime); this is issue 6's, through the API.
	t(6, "pod start through the API p50 ≤ 80 ms with runc", fmt.Sprintf("%s ms", num(p50)), len(b.seqRunc) > 0, p50 <= 80, startRemedy)
	c50 := percentile(b.seqCrun, .5)
	t(6, "pod start through the API p50 ≤ 50 ms with crun", fmt.Sprintf("%s ms", num(c50)), len(b.seqCrun) > 0, c50 <= 50, startRemedy)
	pm := percentile(b.podSeqRunc, .5)
	t(6, "pod start ≥ 5× faster than podman (p50, runc)", fmt.Sprintf("%.1f× (podman %s ms)", pm/p50, num(pm)),
		len(b.seqRunc) > 0 && len(b.podSeqRunc) > 0, pm/p50 >= 5, startRemedy)
	t(4, "burst of 100 pods all Running ≤ 5 s", fmt.Sprintf("%s ms", num(ms(b.burstAll))), b.burstAll > 0, b.burstAll <= 5e9,
		"with 2 cores the burst is CPU-bound: 100 × (CNI plugin execs + OCI runtime + pause) compete with the API server and etcd. "+
			"What would close it: fewer processes per pod (CNI plugins as a library call instead of four plugin execs per ADD, "+
			"crun instead of runc: see the optional table), and batching status writes.")
	t(4, "`kubectl apply` → Running p50 ≤ 100 ms", fmt.Sprintf("%s ms", num(percentile(b.apply, .5))), len(b.apply) > 0,
		percentile(b.apply, .5) <= 100,
		"kubectl takes ≈ 60–70 ms from exec to its POST (40 ms of it is its own process start: `kubectl version --client` alone takes 40 ms here; "+
			"then /openapi/v3 for field validation, a GET and the POST), leaving ≈ 30–40 ms for the pod start, less than `runc run -d` of the pod "+
			"alone (≈ 33 ms) plus the API path. With runc, the default runtime issue 2 asks for, it is out of reach on this 2-core machine; "+
			"the pod-start remedies above narrow it.")
	t(4, "server CPU with 100 idle pods ≤ 2 % of a core", fmt.Sprintf("%s %%", num(b.cpuPct)), b.have["cpu"], b.cpuPct <= 2,
		"idle cost comes from per-pod periodic work (status polling of each container, lease renewal, etcd compaction). "+
			"What would close it: event-driven container exits (pidfd / pause socket) instead of polling, and writing status only when it changed.")
	mib := b.perPodKiB / 1024
	t(2, "memory kept per pod ≤ 1 MiB RSS", fmt.Sprintf("%s MiB (podman %s MiB)", num(mib), num(b.podmanPerPodKiB/1024)), b.have["density"], mib <= 1,
		"the per-pod figure is pause RSS plus the whole server's RSS growth; the growth includes etcd's and the API's caches of 200 pod objects, "+
			"events and status history, not only what the agent keeps. What would close it: a smaller in-memory footprint per pod in the agent "+
			"(no full Pod copies per worker), and GOGC tuning of the server.")
	thr := b.pod.Gbps / b.floor.Gbps
	t(6, "pod-to-pod throughput ≥ 95 % of veth + bridge", fmt.Sprintf("%.0f %% (%s vs %s Gbit/s)", 100*thr, num(b.pod.Gbps), num(b.floor.Gbps)),
		b.have["net"], thr >= 0.95,
		"the pod path adds br_netfilter and peapod's iptables rules (masquerade for traffic leaving the pod network, portmap chains) to every packet crossing the bridge. "+
			"What would close it: match pod-to-pod traffic early (ACCEPT on the bridge for the cluster CIDR before the portmap/masquerade chains); "+
			"on a 2-core machine shared with other work, a 10 s iperf3 also varies by several percent run to run.")
	rtt := percentile(b.pod.RTT, .5) / percentile(b.floor.RTT, .5)
	t(6, "pod-to-pod RTT within 10 % of veth + bridge", fmt.Sprintf("%+.0f %%", 100*(rtt-1)), b.have["net"], rtt <= 1.10,
		"same path as throughput: each ping crosses br_netfilter and the iptables chains twice. What would close it: the same early ACCEPT.")
	t(6, "100 pods torn down, every resource released, ≤ 5 s", fmt.Sprintf("%s ms", num(ms(b.teardown))), b.have["teardown"], b.teardown <= 5e9,
		"teardown is serialized on CNI DEL (host-local takes a file lock per DEL) and on runtime delete per container. "+
			"What would close it: skipping the SIGTERM grace machinery when grace is 0, and running CNI DEL and cgroup removal in parallel across pods.")
	kg := percentile(b.cp.KubectlGet, .5)
	t(3, "`kubectl get pods` on 1,000 pods ≤ 300 ms", fmt.Sprintf("%s ms", num(kg)), b.have["cp"], kg <= 300,
		"most of the time is kubectl's own start-up and Table printing; the server's list is read from etcd and converted to a Table. "+
			"What would close it: serve lists from a watch cache instead of etcd.")
	w50 := percentile(b.cp.Watch, .5)
	t(3, "watch event reaches a client ≤ 10 ms after the write (p50)", fmt.Sprintf("%s ms (p99 %s)", num(w50), num(percentile(b.cp.Watch, .99))),
		b.have["cp"], w50 <= 10, "the event waits on etcd's fsync of the write; what would close it is a faster disk or batching of writes in etcd.")
	t(3, "≥ 500 pod creates per second through client-go", fmt.Sprintf("%.0f /s", b.cp.CreatesPerSec), b.have["cp"], b.cp.CreatesPerSec >= 500,
		"creates are bound by etcd's fsync per write and the admission chain; what would close it: batch etcd writes (etcd does so under concurrency) and cheaper admission.")
	q, p99 := b.dns.QPS, percentile(b.dns.Lat, .99)
	t(12, "DNS from a pod: ≥ 20,000 queries/s for a Service name, p99 ≤ 2 ms", fmt.Sprintf("%.0f /s, p99 %s ms", q, num(p99)),
		b.have["dns"], q >= 20000 && p99 <= 2,
		"the client and the server share the machine's 2 cores (and with everything else running), so the figure is the pair's; "+
			"the server's answer is a map lookup under a read lock and one packed message (BenchmarkHandlerUDP in internal/dns). "+
			"What would close a miss: several UDP sockets with SO_REUSEPORT, one reader each, instead of one reader handing each packet to a goroutine.")
	prop := percentile(b.dns.Propagation, .99)
	t(12, "a new Service resolvable ≤ 1 s after its create", fmt.Sprintf("p99 %s ms", num(prop)), b.have["dns"], prop <= 1000,
		"the zone follows a watch; the time is the API's write and its watch fan-out.")
	sv := b.svc
	cr := percentile(sv.ConnectCIPFew, .5) / percentile(sv.ConnectPod, .5)
	t(12, "TCP connect through a ClusterIP within +5 % of the pod IP (p50)", fmt.Sprintf("%+.0f %% (%s vs %s ms)", 100*(cr-1),
		num(percentile(sv.ConnectCIPFew, .5)), num(percentile(sv.ConnectPod, .5))), b.have["svc"], cr <= 1.05,
		"a new connection through a ClusterIP costs one verdict-map lookup, one numgen, one DNAT and a conntrack entry with NAT in the first packet; "+
			"the rest is the pod path's. What would close a miss: nothing in the table's shape (one lookup); the noise of a shared 2-core machine is of the same order.")
	tr := sv.GbpsCIP / sv.GbpsPod
	t(12, "TCP throughput through a ClusterIP within 5 % of the pod IP", fmt.Sprintf("%.0f %% (%s vs %s Gbit/s)", 100*tr, num(sv.GbpsCIP), num(sv.GbpsPod)),
		b.have["svc"], tr >= 0.95, "after the first packet, conntrack translates each packet of the connection; the table is not consulted again.")
	t(12, "1,000 Services × 10 endpoints all programmed ≤ 1 s after the last change", fmt.Sprintf("%s ms", num(ms(sv.AllProgrammed))),
		b.have["svc"] && sv.Many >= 1000, sv.AllProgrammed <= time.Second,
		"changes arriving while a sync runs are written by the next one, in one nft transaction of only the changed Services.")
	om := percentile(sv.OneMore, .99)
	t(12, "one more Service programmed ≤ 50 ms (p99)", fmt.Sprintf("%s ms (p50 %s; create call p50 %s p99 %s, then to the table p50 %s p99 %s)", num(om), num(percentile(sv.OneMore, .5)),
		num(percentile(sv.OneMoreCreate, .5)), num(percentile(sv.OneMoreCreate, .99)), num(percentile(sv.OneMoreProgram, .5)), num(percentile(sv.OneMoreProgram, .99))), b.have["svc"], om <= 50,
		"the path is the API's create (two etcd writes: the ClusterIP allocation and the Service) → watch → render of that one Service → one nft transaction of "+
			"its chain and elements (an exec of nft, which reads the table's chains and sets first: ~10 ms at 1,000 Services on an idle machine). "+
			"The tail is CPU contention (every step waits for a core); what would close a miss: the incremental transaction over netlink in-process (no exec, no table read).")
	fewCIP := append(append([]time.Duration(nil), sv.ConnectCIPFew...), sv.ConnectCIPAgain...)
	fewControl := append(append([]time.Duration(nil), sv.ControlFew...), sv.ControlAgain...)
	fm := percentile(sv.ConnectCIPMany, .5) / percentile(fewCIP, .5)
	fc := percentile(sv.ControlMany, .5) / percentile(fewControl, .5)
	fr := fm / fc
	t(12, "first-packet latency the same at 10 and at 1,000 Services (p50 within 5 %)", fmt.Sprintf("%+.0f %% against the control (raw %+.0f %%, control %+.0f %%)", 100*(fr-1), 100*(fm-1), 100*(fc-1)),
		b.have["svc"], fr <= 1.05,
		"one verdict-map lookup per packet whatever the number of Services (TestPacketPathIsTheSameAtAnyNumberOfServices). The 10-Service figures are taken "+
			"before the 1,000 Services are created and again after they are deleted, each phase one connection to each target in turn. The control, "+
			"connections to the client pod's own loopback taken in the same turns, never meets the table: the ratio is judged against it, as the "+
			"shared machine moves every path by ±10 % between phases (raw ratios of -8 % to +10 % in four runs, the control moving with them).")
	t(5, "Deployment 0 → 100 replicas all Ready ≤ 10 s; scheduler ≥ 200 binds/s", "see `go test -bench . ./internal/scheduler ./internal/controller/replicaset`",
		false, false, "")
	b.multiNodeTargets(t)
}

// multiNodeTargets judges issue 10's figures (multinode.go).
func (b *bench) multiNodeTargets(t func(issue int, goal, got string, known, met bool, remedy string)) {
	r := b.mn
	const overlayPath = "the pod path crosses, on each node, a veth and the pod bridge and one IP forward (with the FORWARD chains: a jump, two counters, " +
		"two `ct state new` checks) that the floor (node namespace to node namespace) does not; on one machine every hop of a stream runs in the " +
		"sending CPU's softirq, and iperf3's two ends share the 2 cores with the rest of the run. "
	const vxlanRemedy = overlayPath + "What would close it: GRO on the VXLAN device."
	hostGWRemedy := overlayPath + fmt.Sprintf("What br_netfilter costs, in the same alternating rounds: with bridge-nf-call-iptables=0 in both "+
		"node namespaces pod → pod gave %s Gbit/s (%.0f %% of the underlay) against %s with it on. peapod keeps it on: off, every Service whose "+
		"client and endpoint share a node's bridge breaks (the endpoint's reply is bridged, and only br_netfilter shows it to conntrack to be "+
		"translated back to the ClusterIP). Closing the gap safely needs that reply shown to conntrack without br_netfilter on all traffic "+
		"(e.g. a bridge-family nftables table, with nf_conntrack_bridge, sending replies of DNATed connections up the routed path), and fewer "+
		"hops (pods on /32 routes without a bridge, as Calico does, or veth XDP redirects); each changes the CNI or proxy set-up.",
		num(r.HostGWNoBridgeNF.Gbps), 100*r.HostGWNoBridgeNF.Gbps/r.Underlay.Gbps, num(r.HostGW.Gbps))
	vx := r.VXLAN.Gbps / r.VXLANFloor.Gbps
	t(10, "vxlan pod → pod throughput ≥ 90 % of a hand-built VXLAN pair", fmt.Sprintf("%.0f %% (%s vs %s Gbit/s)", 100*vx, num(r.VXLAN.Gbps), num(r.VXLANFloor.Gbps)),
		b.have["mn-vxlan"], vx >= 0.90, vxlanRemedy)
	gw := r.HostGW.Gbps / r.Underlay.Gbps
	t(10, "host-gw pod → pod throughput ≥ 95 % of the bare underlay", fmt.Sprintf("%.0f %% (%s vs %s Gbit/s)", 100*gw, num(r.HostGW.Gbps), num(r.Underlay.Gbps)),
		b.have["mn-hostgw"], gw >= 0.95, hostGWRemedy)
	join := percentile(r.Join, .99)
	t(10, "node join → Ready ≤ 3 s", fmt.Sprintf("%s ms (worst of %d)", num(join), len(r.Join)), b.have["mn-join"], join <= 3000,
		"a joining agent makes its TLS join, registers, waits for the server's podCIDR, sets up the overlay and its runtime (bridge, "+
			"image import) before its first status; what would close it: report Ready before the warm sandbox pool fills.")
	conv := max(percentile(r.JoinRoutes, .99), percentile(r.LeaveRoutes, .99))
	t(10, "routes converged on every node ≤ 1 s after a Node joins or leaves", fmt.Sprintf("%s ms (worst of joins and leaves)", num(conv)),
		b.have["mn-join"], conv <= 1000, "each node's controller reacts to the Node watch event with one netlink reconciliation; the time is the API's watch fan-out under load.")
	p3, p1 := percentile(r.PodStart, .5), percentile(b.seqRunc, .5)
	t(10, "pod start p50 on a 3-node cluster no slower than on one node", fmt.Sprintf("%s ms vs %s ms", num(p3), num(p1)),
		b.have["mn-podstart"] && len(b.seqRunc) > 0, p3 <= p1,
		"three nodes on one 2-core machine share its CPUs with the server: each start costs the same work on whichever node runs it, "+
			"plus the API round trips between node namespaces over the underlay; the one-node figure runs its agent inside the server process.")
	rss := float64(r.AgentRSSKiB) / 1024
	t(10, "`peapod agent` alone with 10 pods ≤ 40 MiB RSS", fmt.Sprintf("%s MiB (%s MiB anonymous)", num(rss), num(float64(r.AgentAnonKiB)/1024)), b.have["mn-rss"], rss <= 40,
		"most of it is the binary's own pages, not the agent's heap (the anonymous part: a ~5 MiB live heap at GOGC 25, stacks, runtime): "+
			"the kernel maps the 131 MB binary's file pages a 64 KiB fault-around window or a large folio at a time, the agent drops what its start-up "+
			"(every package's init) mapped once its node runs, and starting pods maps back the text, type data and function tables their code uses; "+
			"what would close it: less code on the pod start path, or that code laid out together in the binary (Go's linker orders functions by package).")
}
