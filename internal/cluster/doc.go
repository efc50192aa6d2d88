// Package cluster runs a many-node peapod cluster on one machine, for
// learners and for end-to-end tests: each node is a network namespace with
// its own address on an underlay bridge, as kind uses containers.
//
// What Up builds, in order (Down undoes it in reverse, and Up undoes it
// itself when a step fails):
//
//  1. The underlay: a Linux bridge in the host namespace (ppu-<name>) with
//     the first address of the underlay range (by default the first free
//     172.31.X.0/24), and host FORWARD rules that accept traffic bridged
//     between the nodes even where the host's FORWARD policy is DROP.
//  2. Per node i: a network namespace pinned at /run/netns/pp-<node> (the
//     pp- prefix keeps it apart from pods' peapod-<sandbox> namespaces), a
//     veth pair from the bridge (ppv-<name>-<i>) to the node's eth0 with the
//     node's address, a default route via the bridge address, and lo up.
//  3. Node 1 runs `peapod server` (the API on its underlay address, and its
//     own node); nodes 2..N run `peapod agent`, joined with a join token.
//     Each process is started from an OS thread that has entered the node's
//     network namespace and nothing else, so it shares the host's mount
//     namespace: the pods' netns pins, mounts and cgroups stay visible to
//     `ip netns`, `findmnt` and the leak checks. Each node has its own data
//     dir (<dir>/<node>), cgroup parent (peapod-cluster/<name>/<node>), pod
//     bridge (ppbr<i>), log (<dir>/<node>/node.log) and pid. The processes
//     run in their own session and outlive the command that started them.
//  4. Every step is recorded in <dir>/cluster.json before it is made, so
//     Down can take apart whatever exists, also after a half-failed Up.
//
// A cluster's name is machine-wide (its bridge, namespaces and veths are
// named after it): Up refuses a name another running cluster has, before
// it makes anything.
//
// Down stops every node process (SIGTERM, then SIGKILL after a grace),
// runs `peapod reset` for each node inside that node's namespace (its
// pods, pod bridge and rules go), then removes the namespaces, veths,
// bridge, host rules, cgroups and the directory. It is idempotent.
//
// Node-level operations for tests and experiments (StopNode, StartNode,
// Disconnect, Connect, AddNode, RemoveNode, Exec) work on a Cluster from
// Open; each holds the cluster directory's lock while it runs.
package cluster
