package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/network/netns"
)

// Options configure Up.
type Options struct {
	// Name names the cluster (DefaultName if empty); see ValidateName.
	Name string
	// Dir holds the cluster's state and its nodes' data dirs
	// (DefaultDir(Name) if empty). It must not exist or be empty.
	Dir string
	// Nodes is how many nodes to run, 1 to MaxNodes.
	Nodes int
	// Servers is how many of the nodes (the first ones) run `peapod
	// server`, 1 by default; more than one needs EtcdMembers. The servers
	// share the first one's PKI, and every agent is given all of them.
	Servers int
	// EtcdMembers, when not 0, runs an external etcd cluster of that many
	// members (each in a namespace of its own on the underlay, TLS with
	// client certificates) that every server uses; 0 leaves node 1's
	// server with its embedded etcd.
	EtcdMembers int
	// Backend is the pod network between nodes (vxlan, host-gw, none),
	// passed to the server when the binary has --network-backend.
	// BackendSet says the user chose it, which is refused when the
	// binary cannot honour it.
	Backend    string
	BackendSet bool
	// UnderlayCIDR is the underlay range; empty picks the first free
	// 172.31.X.0/24.
	UnderlayCIDR string
	// ClusterCIDR is the pod network of the whole cluster (DefaultClusterCIDR if empty).
	ClusterCIDR string
	// Images are image tarballs every node imports at start (linked into
	// each node's <data-dir>/images).
	Images []string
	// ServerArgs and AgentArgs are extra flags for `peapod server` (node 1)
	// and `peapod agent` (the others), appended last so they win.
	ServerArgs, AgentArgs []string
	// Binary is the peapod binary the nodes run.
	Binary string
	// Features are the binary's flags (see Features).
	Features Features
	// Wait bounds the wait for the API and for every node to be Ready
	// (2 minutes if 0).
	Wait time.Duration
	// Out receives progress lines (io.Discard if nil).
	Out io.Writer
}

func (o *Options) validate() error {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if err := ValidateName(o.Name); err != nil {
		return err
	}
	if o.Nodes < 1 || o.Nodes > MaxNodes {
		return fmt.Errorf("--nodes %d: want 1 to %d", o.Nodes, MaxNodes)
	}
	if o.Servers == 0 {
		o.Servers = 1
	}
	if o.Servers < 1 || o.Servers > o.Nodes {
		return fmt.Errorf("--servers %d: want 1 to --nodes (%d)", o.Servers, o.Nodes)
	}
	if o.EtcdMembers < 0 || o.EtcdMembers > MaxEtcdMembers {
		return fmt.Errorf("--external-etcd %d: want 0 (the server's embedded etcd) to %d members", o.EtcdMembers, MaxEtcdMembers)
	}
	if o.Servers > 1 && o.EtcdMembers == 0 {
		return fmt.Errorf("--servers %d needs --external-etcd (3, say): an embedded etcd belongs to one server, and several servers share one store", o.Servers)
	}
	if o.EtcdMembers > 0 {
		if _, err := os.Stat(EtcdBinary); err != nil {
			return fmt.Errorf("--external-etcd: %s is missing (Debian's etcd-server; make setup installs it): %w", EtcdBinary, err)
		}
	}
	if o.Backend == "" {
		o.Backend = DefaultBackend
	}
	if !slices.Contains(Backends(), o.Backend) {
		return fmt.Errorf("--network-backend %q: want one of %v", o.Backend, Backends())
	}
	if o.BackendSet && !o.Features.NetworkBackend {
		return fmt.Errorf("--network-backend %q: this peapod's server has no --network-backend flag yet", o.Backend)
	}
	if o.UnderlayCIDR != "" {
		if _, err := parseUnderlay(o.UnderlayCIDR, o.Nodes); err != nil {
			return err
		}
		if o.EtcdMembers > 0 {
			if _, err := parseUnderlay(o.UnderlayCIDR, etcdAddrIndex(o.EtcdMembers)); err != nil {
				return fmt.Errorf("--underlay-cidr %q: too small for the etcd members, whose addresses follow the %d nodes' (a /24 fits)", o.UnderlayCIDR, MaxNodes)
			}
		}
	}
	if o.ClusterCIDR == "" {
		o.ClusterCIDR = DefaultClusterCIDR
	}
	if _, err := parseClusterCIDR(o.ClusterCIDR, o.Nodes); err != nil {
		return err
	}
	for i, img := range o.Images {
		abs, err := filepath.Abs(img)
		if err != nil {
			return fmt.Errorf("--image %q: %w", img, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("--image %q: %w", img, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("--image %q: not a regular file (want an image tarball)", img)
		}
		o.Images[i] = abs
	}
	if o.Binary == "" {
		bin, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the peapod binary: %w", err)
		}
		o.Binary = bin
	}
	if o.Dir == "" {
		o.Dir = DefaultDir(o.Name)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("--dir %q: %w", o.Dir, err)
	}
	o.Dir = dir
	if o.Wait == 0 {
		o.Wait = 2 * time.Minute
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return nil
}

// Up starts a cluster as Options say and returns its state once every
// node is Ready. When a step fails, what was made is taken apart before
// Up returns (the error says if that failed too; `Down` finishes it).
func Up(ctx context.Context, o Options) (_ *State, retErr error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := prepareDir(o.Dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	defer lock.unlock()
	if _, err := os.Stat(statePath(o.Dir)); err == nil {
		return nil, fmt.Errorf("--dir %s: a cluster is already there (peapod cluster down --dir %s)", o.Dir, o.Dir)
	}
	// Bridge stays empty until makeUnderlay has checked that no other
	// cluster of this name runs: teardown must never touch another's.
	st := &State{
		Name: o.Name, Dir: o.Dir, Binary: o.Binary,
		ClusterCIDR: o.ClusterCIDR, Backend: o.Backend, Features: o.Features, AgentArgs: o.AgentArgs,
	}
	if err := st.save(); err != nil {
		return nil, err
	}
	defer func() {
		if retErr == nil {
			return
		}
		fmt.Fprintf(o.Out, "start failed; taking apart what was made\n")
		// The caller's context may be what failed: clean up on a fresh one.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		if err := teardown(cctx, st, 10*time.Second, o.Out); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("clean up after failed start (finish with: peapod cluster down --dir %s): %w", o.Dir, err))
		}
	}()

	if err := makeUnderlay(ctx, st, o.UnderlayCIDR, o.Nodes, o.EtcdMembers); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "underlay: bridge %s, %s (the host is %s)\n", st.Bridge, st.Underlay, st.HostAddress)
	for i := 1; i <= o.Nodes; i++ {
		role := roleAgent
		if i <= o.Servers {
			role = roleServer
		}
		if _, err := st.makeNode(i, role, o.Images); err != nil {
			return nil, err
		}
	}
	for _, n := range st.ServerNodes() {
		st.Servers = append(st.Servers, "https://"+net.JoinHostPort(n.Address, fmt.Sprint(apiPort)))
	}
	st.Server = st.Servers[0]

	waitCtx, cancel := context.WithTimeout(ctx, o.Wait)
	defer cancel()
	if o.EtcdMembers > 0 {
		for j := 1; j <= o.EtcdMembers; j++ {
			if _, err := st.makeEtcdMember(j); err != nil {
				return nil, err
			}
		}
		st.EtcdPKI = filepath.Join(st.Dir, etcdPKIDirName)
		if err := st.save(); err != nil {
			return nil, err
		}
		if err := writeEtcdPKI(st.EtcdPKI, st.Etcd); err != nil {
			return nil, err
		}
		if err := startEtcd(waitCtx, st); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Out, "etcd: %d members, %s\n", len(st.Etcd), strings.Join(st.EtcdEndpoints(), ","))
	}

	started := time.Now()
	var client kubernetes.Interface
	for i, server := range st.ServerNodes() {
		if i > 0 {
			// Every server has the first one's PKI (kubeadm's manual
			// certificate distribution): one cluster CA, one
			// service-account key, one encryption key.
			if err := apiserver.CopySharedPKI(filepath.Join(st.Nodes[0].DataDir, "pki"), filepath.Join(server.DataDir, "pki")); err != nil {
				return nil, fmt.Errorf("node %s: %w", server.Name, err)
			}
		}
		server.Args = serverArgs(st, server, o.ServerArgs)
		if err := st.startNode(server); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Out, "%s: peapod server started (pid %d), API %s\n", server.Name, server.PID, st.Servers[i])
		c, err := waitAPI(waitCtx, server)
		if err != nil {
			return nil, err
		}
		if client == nil {
			client = c
		}
	}
	if st.Token, err = apiserver.CreateJoinTokenFromKubeconfig(waitCtx, st.Kubeconfig(), 24*time.Hour); err != nil {
		return nil, fmt.Errorf("create join token: %w", err)
	}
	if err := st.save(); err != nil {
		return nil, err
	}
	for i := o.Servers; i < len(st.Nodes); i++ {
		n := &st.Nodes[i]
		n.Args = agentArgs(st, n)
		if err := st.startNode(n); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Out, "%s: peapod agent started (pid %d)\n", n.Name, n.PID)
	}
	if err := waitNodesReady(waitCtx, client, st, st.Nodes, started); err != nil {
		return nil, err
	}
	return st, nil
}

// prepareDir creates dir, or accepts it if it is empty or holds a state
// file (Up then refuses, naming it): Down removes dir, so it must be ours.
func prepareDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--dir %s: %w", dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.Name() != stateFileName {
			return fmt.Errorf("--dir %s: exists and holds other files; give an empty or new directory", dir)
		}
	}
	return nil
}

// makeUnderlay picks the underlay range (under the host lock, so two
// clusters coming up at once never pick the same one), creates the bridge
// and adds the host rules, recording each in st.
func makeUnderlay(ctx context.Context, st *State, cidr string, nodes, etcdMembers int) error {
	hostLock, err := lockHost()
	if err != nil {
		return err
	}
	defer hostLock.unlock()
	if err := nameFree(st.Name, nodes, etcdMembers); err != nil {
		return err
	}
	st.Bridge = underlayBridge(st.Name)
	var underlay *net.IPNet
	if cidr != "" {
		if underlay, err = parseUnderlay(cidr, nodes); err != nil {
			return err
		}
	} else {
		inUse, err := hostRanges()
		if err != nil {
			return err
		}
		if underlay, err = pickUnderlay(defaultUnderlays(), inUse); err != nil {
			return err
		}
	}
	hostAddr, err := underlayAddr(underlay, 0)
	if err != nil {
		return err
	}
	st.Underlay, st.HostAddress = underlay.String(), hostAddr.IP.String()
	if err := st.save(); err != nil {
		return err
	}
	if err := ensureBridge(st.Bridge, hostAddr); err != nil {
		return err
	}
	for _, rule := range underlayForwardRules(st.Name, st.Bridge) {
		st.HostRules = append(st.HostRules, rule)
		if err := st.save(); err != nil {
			return err
		}
		if err := ensureHostRule(ctx, rule); err != nil {
			return err
		}
	}
	return nil
}

// nameFree checks that no cluster of this name runs on the machine: the
// names of its bridge and of its first nodes' namespaces and veths are
// machine-wide, and Up must not adopt, nor its cleanup remove, another
// cluster's.
func nameFree(name string, nodes, etcdMembers int) error {
	inUse := func(what string) error {
		return fmt.Errorf("a cluster named %q already runs on this machine (%s exists): take it down with peapod cluster down --dir <its dir>, or choose another --name", name, what)
	}
	if linkExists(underlayBridge(name)) {
		return inUse("bridge " + underlayBridge(name))
	}
	for i := 1; i <= nodes; i++ {
		if err := nodeNamesFree(name, i); err != nil {
			return inUse(err.Error())
		}
	}
	for j := 1; j <= etcdMembers; j++ {
		pin := filepath.Join(netns.DefaultDir, netnsName(EtcdMemberName(name, j)))
		if _, err := os.Lstat(pin); err == nil {
			return inUse("netns " + pin)
		}
		if linkExists(etcdHostVeth(name, j)) {
			return inUse("link " + etcdHostVeth(name, j))
		}
	}
	return nil
}

// nodeNamesFree checks that node i's namespace and veth names are unused.
func nodeNamesFree(name string, i int) error {
	pin := filepath.Join(netns.DefaultDir, netnsName(NodeName(name, i)))
	if _, err := os.Lstat(pin); err == nil {
		return fmt.Errorf("netns %s", pin)
	}
	if linkExists(hostVeth(name, i)) {
		return fmt.Errorf("link %s", hostVeth(name, i))
	}
	return nil
}

// makeNode adds node i to st: its namespace, underlay link and data dir
// (with the image tarballs linked in). Each step is recorded before it is
// made, so teardown finds it.
func (st *State) makeNode(i int, role string, images []string) (*Node, error) {
	_, underlay, err := net.ParseCIDR(st.Underlay)
	if err != nil {
		return nil, fmt.Errorf("cluster state: underlay %q: %w", st.Underlay, err)
	}
	addr, err := underlayAddr(underlay, i)
	if err != nil {
		return nil, err
	}
	name := NodeName(st.Name, i)
	st.Nodes = append(st.Nodes, Node{
		Index: i, Name: name, Role: role,
		NetNS:        filepath.Join(netns.DefaultDir, netnsName(name)),
		HostVeth:     hostVeth(st.Name, i),
		Address:      addr.IP.String(),
		DataDir:      filepath.Join(st.Dir, name),
		CgroupParent: cgroupParent(st.Name, name),
		PodBridge:    podBridge(i),
		Log:          filepath.Join(st.Dir, name, "node.log"),
	})
	st.LastIndex = max(st.LastIndex, i)
	n := &st.Nodes[len(st.Nodes)-1]
	if err := st.save(); err != nil {
		return nil, err
	}
	if _, err := netns.New(netns.DefaultDir, netnsName(name)); err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	if err := plugNode(n.NetNS, st.Bridge, n.HostVeth, addr, net.ParseIP(st.HostAddress)); err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	imagesDir := filepath.Join(n.DataDir, "images")
	if err := os.MkdirAll(imagesDir, 0o700); err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	for _, img := range images {
		if err := os.Symlink(img, filepath.Join(imagesDir, filepath.Base(img))); err != nil {
			return nil, fmt.Errorf("node %s: link image %s: %w", name, img, err)
		}
	}
	return n, nil
}

// commonNodeArgs are the flags of every node process and of its reset.
func commonNodeArgs(st *State, n *Node) []string {
	_, cluster, _ := net.ParseCIDR(st.ClusterCIDR)
	args := []string{"--data-dir", n.DataDir, "--node-name", n.Name, "--bridge", n.PodBridge, "--cgroup-parent", n.CgroupParent}
	ranges, podCIDR := podRangeFlags(st.Features, cluster, n.Index, n.Role == roleServer)
	n.PodCIDR = podCIDR
	args = append(args, ranges...)
	if st.Features.NodeIP {
		args = append(args, "--node-ip", n.Address)
	}
	return args
}

func serverArgs(st *State, n *Node, extra []string) []string {
	args := append([]string{"server"}, commonNodeArgs(st, n)...)
	args = append(args, "--listen", net.JoinHostPort(n.Address, fmt.Sprint(apiPort)))
	if st.Features.NetworkBackend {
		args = append(args, "--network-backend", st.Backend)
	}
	args = append(args, serverEtcdArgs(st)...)
	return append(args, extra...)
}

// agentArgs are node n's agent flags. It is given every server, starting
// from a different one per node (as k3s shuffles its agents' servers), so
// the agents' joins and connections spread over the servers.
func agentArgs(st *State, n *Node) []string {
	servers := st.Servers
	if len(servers) == 0 {
		servers = []string{st.Server}
	}
	first := n.Index % len(servers)
	servers = append(append([]string(nil), servers[first:]...), servers[:first]...)
	args := append([]string{"agent", "--server", strings.Join(servers, ","), "--token", st.Token}, commonNodeArgs(st, n)...)
	return append(args, st.AgentArgs...)
}

// startNode starts n's peapod process in its namespace and records it.
func (st *State) startNode(n *Node) error { return st.startProcess(n, st.Binary) }

// startProcess starts binary with n's arguments in n's namespace and
// records it.
func (st *State) startProcess(n *Node, binary string) error {
	pid, start, err := startInNetNS(n.NetNS, binary, n.Args, n.Log)
	if pid > 0 {
		n.PID, n.StartTime = pid, start
		if serr := st.save(); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	return nil
}
