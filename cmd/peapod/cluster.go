package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/peapod/peapod/internal/cluster"
)

// clusterTarget is where a cluster command finds its cluster: --dir, or
// the default directory of --name.
type clusterTarget struct{ name, dir string }

func (t *clusterTarget) register(fs *pflag.FlagSet) {
	fs.StringVar(&t.name, "name", cluster.DefaultName, "the cluster's name (nodes are NAME-node1, NAME-node2, ...)")
	fs.StringVar(&t.dir, "dir", "", "directory holding the cluster's state and its nodes' data dirs (default /var/lib/peapod-clusters/NAME)")
}

func (t *clusterTarget) directory() string {
	if t.dir != "" {
		return t.dir
	}
	return cluster.DefaultDir(t.name)
}

// flagFor is how a printed command names this cluster: --name for the
// default place, else --dir.
func (t *clusterTarget) flagFor() string {
	if t.dir != "" {
		return "--dir " + t.dir
	}
	if t.name == cluster.DefaultName {
		return ""
	}
	return "--name " + t.name
}

func newClusterCommand() *cobra.Command {
	var target clusterTarget
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a many-node cluster on this machine, each node a network namespace (up, down, node operations)",
		Long: `cluster runs several peapod nodes on one machine, as kind does with
containers: each node is a network namespace with its own address on an
underlay bridge, its own data dir, pod bridge and cgroup parent. Node 1
runs 'peapod server', the others 'peapod agent', joined with a join token.

  peapod cluster up --nodes 3 --image bin/images/busybox.tar
  export KUBECONFIG=<the kubeconfig it prints>
  kubectl get nodes -o wide
  peapod cluster down

With no single point of failure: two servers on a three-member etcd, the
agents failing over between the servers:

  peapod cluster up --nodes 3 --servers 2 --external-etcd 3 --image bin/images/busybox.tar
  kubectl -n kube-system get leases kube-scheduler kube-controller-manager
  peapod cluster node stop peapod-etcd2 --signal KILL     # one member down: still works
  peapod cluster node stop peapod-node1 --signal KILL     # the other server takes over`,
	}
	target.register(cmd.PersistentFlags())
	cmd.AddCommand(newClusterUpCommand(&target), newClusterDownCommand(&target), newClusterStatusCommand(&target),
		newClusterExecCommand(&target), newClusterNodeCommand(&target))
	return cmd
}

// clusterFeatures reads, from this binary's own commands, which flags its
// server and agent have, so `cluster up` passes only flags they take.
func clusterFeatures() cluster.Features {
	server, agent := newServerCommand().Flags(), newAgentCommand().Flags()
	return cluster.Features{
		NetworkBackend:          server.Lookup("network-backend") != nil,
		ServerAllocatesPodCIDRs: server.Lookup("node-cidr-mask-size") != nil,
		NodeIP:                  agent.Lookup("node-ip") != nil && server.Lookup("node-ip") != nil,
	}
}

func newClusterUpCommand(target *clusterTarget) *cobra.Command {
	var o cluster.Options
	cmd := &cobra.Command{
		Use:   "up --nodes N",
		Short: "Start an N-node cluster and wait until every node is Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Name, o.Dir = target.name, target.directory()
			o.BackendSet = cmd.Flags().Changed("network-backend")
			o.Features = clusterFeatures()
			o.Out = cmd.OutOrStdout()
			st, err := cluster.Up(cmd.Context(), o)
			if err != nil {
				return err
			}
			printUp(cmd.OutOrStdout(), st, target)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", 3, "how many nodes (node 1 runs the server)")
	f.IntVar(&o.Servers, "servers", 1, "how many of the nodes (the first ones) run 'peapod server'; more than 1 needs --external-etcd, and every agent is given every server")
	f.IntVar(&o.EtcdMembers, "external-etcd", 0, "run an etcd cluster of this many members (each in a namespace of its own, TLS with client certificates) for the servers, instead of node 1's embedded etcd; 3 keeps working with one member down")
	f.StringVar(&o.Backend, "network-backend", cluster.DefaultBackend, "pod network between nodes: "+strings.Join(cluster.Backends(), ", "))
	f.StringVar(&o.UnderlayCIDR, "underlay-cidr", "", "the nodes' network (default: the first free 172.31.X.0/24); the host takes its first address, node i the next ones")
	f.StringVar(&o.ClusterCIDR, "cluster-cidr", cluster.DefaultClusterCIDR, "the pod network of the whole cluster")
	f.StringArrayVar(&o.Images, "image", nil, "image tarball every node imports at start (repeatable), e.g. bin/images/busybox.tar")
	f.StringArrayVar(&o.ServerArgs, "server-arg", nil, "extra flag for 'peapod server' on node 1 (repeatable), e.g. --server-arg=--node-monitor-grace-period=10s")
	f.StringArrayVar(&o.AgentArgs, "agent-arg", nil, "extra flag for every 'peapod agent' (repeatable)")
	f.DurationVar(&o.Wait, "wait", 2*time.Minute, "how long to wait for the API and for every node to be Ready")
	return cmd
}

func printUp(out io.Writer, st *cluster.State, target *clusterTarget) {
	fmt.Fprintf(out, "\ncluster %q is up: %d nodes, all Ready, on underlay %s (%s; the host is %s)\n\n", st.Name, len(st.Nodes), st.Bridge, st.Underlay, st.HostAddress)
	printNodes(out, st)
	flag := target.flagFor()
	if flag != "" {
		flag = " " + flag
	}
	fmt.Fprintf(out, `
Use it with kubectl:
  export KUBECONFIG=%s
  kubectl get nodes -o wide
`, st.Kubeconfig())
	if servers := st.ServerNodes(); len(servers) > 1 {
		fmt.Fprintln(out, "Each server has its own admin kubeconfig, naming its own API:")
		for _, n := range servers {
			fmt.Fprintf(out, "  %s  %s\n", n.Name, n.Kubeconfig())
		}
		fmt.Fprintln(out, "See which server runs the scheduler and the controllers:\n  kubectl -n kube-system get leases kube-scheduler kube-controller-manager")
	}
	fmt.Fprintf(out, `Run a command on a node (in its network namespace):
  peapod cluster exec%s %s -- ip addr
Take it down:
  peapod cluster down%s
`, flag, st.Nodes[len(st.Nodes)-1].Name, flag)
}

func printNodes(out io.Writer, st *cluster.State) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tROLE\tADDRESS\tNETNS\tPID\tLOG")
	for _, n := range append(append([]cluster.Node(nil), st.Nodes...), st.Etcd...) {
		pid := "-"
		if n.PID > 0 {
			pid = fmt.Sprint(n.PID)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, n.Address, n.NetNS, pid, n.Log)
	}
	_ = w.Flush()
}

func newClusterDownCommand(target *clusterTarget) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop and remove the cluster: processes, pods, namespaces, links, rules, cgroups, its directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cluster.Down(cmd.Context(), target.directory(), grace, cmd.OutOrStdout())
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL for each node process")
	return cmd
}

func newClusterStatusCommand(target *clusterTarget) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List the cluster's nodes with their addresses, namespaces, processes and logs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cluster.Open(target.directory())
			if err != nil {
				return err
			}
			defer c.Close()
			st := c.State
			servers := st.Server
			if len(st.Servers) > 1 {
				servers = strings.Join(st.Servers, ",")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %q: underlay %s (%s), API %s, kubeconfig %s\n", st.Name, st.Bridge, st.Underlay, servers, st.Kubeconfig())
			if len(st.Etcd) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "etcd: %s\n", strings.Join(st.EtcdEndpoints(), ","))
			}
			fmt.Fprintln(cmd.OutOrStdout())
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NODE\tROLE\tADDRESS\tNETNS\tPROCESS\tLINK")
			for _, n := range append(append([]cluster.Node(nil), st.Nodes...), st.Etcd...) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, n.Address, n.NetNS, n.ProcessState(), n.LinkState())
			}
			return w.Flush()
		},
	}
}

func newClusterExecCommand(target *clusterTarget) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NODE -- COMMAND [ARG...]",
		Short: "Run a command in a node's network namespace (keeping the host's files, unlike ip netns exec)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cluster.Open(target.directory())
			if err != nil {
				return err
			}
			n, err := c.Node(args[0])
			c.Close() // a long command must not hold the cluster's lock
			if err != nil {
				return err
			}
			err = cluster.ExecIn(cmd.Context(), n.NetNS, args[1:], os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				os.Exit(exit.ExitCode())
			}
			return err
		},
	}
}

func newClusterNodeCommand(target *clusterTarget) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Stop, start, disconnect, connect, add or remove one node of the cluster (stop, start, disconnect and connect also take an etcd member's name)",
	}
	// open runs op on the opened cluster and closes it.
	open := func(op func(c *cluster.Cluster) error) error {
		c, err := cluster.Open(target.directory())
		if err != nil {
			return err
		}
		defer c.Close()
		return op(c)
	}
	var signal string
	var grace, wait time.Duration
	stop := &cobra.Command{
		Use:   "stop NODE",
		Short: "Stop a node's peapod process (its pods keep running), as a crash (--signal KILL) or a service stop would",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, err := parseSignal(signal)
			if err != nil {
				return err
			}
			return open(func(c *cluster.Cluster) error { return c.StopNode(cmd.Context(), args[0], sig, grace) })
		},
	}
	stop.Flags().StringVar(&signal, "signal", "TERM", "TERM (then KILL after --grace) or KILL")
	stop.Flags().DurationVar(&grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL")
	start := &cobra.Command{
		Use:   "start NODE",
		Short: "Start a stopped node's peapod process again and wait until it serves (Ready, Lease renewed, agent port open)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return open(func(c *cluster.Cluster) error {
				started, err := c.StartNode(args[0])
				if err != nil || wait == 0 {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), wait)
				defer cancel()
				return c.WaitReady(ctx, started, args[0])
			})
		},
	}
	start.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the node to be Ready (0: do not wait)")
	disconnect := &cobra.Command{
		Use:   "disconnect NODE",
		Short: "Cut a node off the underlay (its veth goes down); its process and pods keep running",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return open(func(c *cluster.Cluster) error { return c.Disconnect(args[0]) })
		},
	}
	connect := &cobra.Command{
		Use:   "connect NODE",
		Short: "Put a disconnected node back on the underlay",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return open(func(c *cluster.Cluster) error { return c.Connect(args[0]) })
		},
	}
	var images []string
	var addWait time.Duration
	add := &cobra.Command{
		Use:   "add",
		Short: "Add an agent node to the running cluster and wait until it is Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return open(func(c *cluster.Cluster) error {
				n, err := c.AddNode(cmd.Context(), images, addWait)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s added (address %s, pid %d)\n", n.Name, n.Address, n.PID)
				return nil
			})
		},
	}
	add.Flags().StringArrayVar(&images, "image", nil, "image tarball the node imports at start (repeatable)")
	add.Flags().DurationVar(&addWait, "wait", 2*time.Minute, "how long to wait for the node to be Ready")
	var rmGrace time.Duration
	rm := &cobra.Command{
		Use:     "rm NODE",
		Aliases: []string{"remove"},
		Short:   "Remove an agent node: stop it, delete its Node, reset its pods, remove its namespace and data",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return open(func(c *cluster.Cluster) error { return c.RemoveNode(cmd.Context(), args[0], rmGrace) })
		},
	}
	rm.Flags().DurationVar(&rmGrace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL")
	cmd.AddCommand(stop, start, disconnect, connect, add, rm)
	return cmd
}

func parseSignal(s string) (syscall.Signal, error) {
	switch strings.TrimPrefix(strings.ToUpper(s), "SIG") {
	case "TERM", "15":
		return syscall.SIGTERM, nil
	case "KILL", "9":
		return syscall.SIGKILL, nil
	}
	return 0, fmt.Errorf("--signal %q: want TERM or KILL", s)
}
