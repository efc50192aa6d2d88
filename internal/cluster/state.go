package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// State is a cluster's record, <dir>/cluster.json: everything Down needs
// to take the cluster apart, written after every step that made something.
type State struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	// Binary is the peapod binary the nodes run (and reset runs).
	Binary string `json:"binary"`
	// Bridge is the underlay bridge in the host namespace; Underlay its
	// range and HostAddress its address ("" until assigned).
	Bridge      string `json:"bridge"`
	Underlay    string `json:"underlay"`
	HostAddress string `json:"hostAddress"`
	// ClusterCIDR is the pod network of the whole cluster; Backend the
	// network between nodes asked of the server.
	ClusterCIDR string `json:"clusterCIDR"`
	Backend     string `json:"backend"`
	// Features are the binary's flags, as found at Up.
	Features Features `json:"features"`
	// HostRules are the iptables rules Up added in the host namespace,
	// each as its table followed by an `iptables -A` rule spec.
	HostRules [][]string `json:"hostRules,omitempty"`
	// Token is the last join token made (by Up, or by AddNode for its node).
	Token string `json:"token,omitempty"`
	// Server is the first API server's URL, reachable from the host and
	// nodes; Servers every server's, in order (agents get them all).
	Server  string   `json:"server,omitempty"`
	Servers []string `json:"servers,omitempty"`
	// Etcd are the members of the external etcd (none: node 1's server
	// embeds its own), and EtcdPKI the directory of its CA and
	// certificates.
	Etcd    []Node `json:"etcd,omitempty"`
	EtcdPKI string `json:"etcdPKI,omitempty"`
	// AgentArgs are extra flags every agent gets (AddNode too).
	AgentArgs []string `json:"agentArgs,omitempty"`
	Nodes     []Node   `json:"nodes"`
	// LastIndex is the highest node number ever made in this cluster,
	// removed nodes' included: AddNode numbers past it, so a new node
	// never takes a removed one's name and underlay address, and nothing
	// that remembers the old Node by name (a watcher, a peer's record)
	// can take one for the other.
	LastIndex int `json:"lastIndex,omitempty"`
}

// nextIndex is the number of the next node AddNode makes: past every
// node there is and every one there ever was.
func (s *State) nextIndex() int {
	next := s.LastIndex + 1
	for _, n := range s.Nodes {
		next = max(next, n.Index+1)
	}
	return next
}

// Node is one node of a cluster.
type Node struct {
	// Index numbers the node from 1; nodes 1 to the number of servers run
	// `peapod server`. An etcd member is numbered among the members.
	Index int    `json:"index"`
	Name  string `json:"name"`
	// Role is "server", "agent" or (a member of the external etcd) "etcd".
	Role string `json:"role"`
	// NetNS is the pinned network namespace the node lives in.
	NetNS string `json:"netns"`
	// HostVeth is the bridge's end of the node's underlay veth.
	HostVeth string `json:"hostVeth"`
	// Address is the node's underlay address (its InternalIP).
	Address      string `json:"address"`
	DataDir      string `json:"dataDir"`
	CgroupParent string `json:"cgroupParent,omitempty"`
	PodBridge    string `json:"podBridge,omitempty"`
	// PodCIDR is the range given with --pod-cidr ("" when the server gives
	// ranges out).
	PodCIDR string `json:"podCIDR,omitempty"`
	Log     string `json:"log"`
	// Args are the node process's arguments after the binary, kept to
	// start it again.
	Args []string `json:"args,omitempty"`
	// PID and StartTime (clock ticks since boot, /proc/<pid>/stat field
	// 22) name the node's process; the start time guards against a reused
	// PID. Zero when not running.
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"startTime,omitempty"`
}

// Kubeconfig is the admin kubeconfig of the cluster (node 1's), whose
// server URL the host reaches.
func (s *State) Kubeconfig() string {
	if len(s.Nodes) == 0 {
		return ""
	}
	return s.Nodes[0].Kubeconfig()
}

// Kubeconfig is a server node's admin kubeconfig, naming its own API.
func (n *Node) Kubeconfig() string { return filepath.Join(n.DataDir, "admin.kubeconfig") }

// ServerNodes are the nodes that run `peapod server`, in order.
func (s *State) ServerNodes() []*Node {
	var out []*Node
	for i := range s.Nodes {
		if s.Nodes[i].Role == roleServer {
			out = append(out, &s.Nodes[i])
		}
	}
	return out
}

func statePath(dir string) string { return filepath.Join(dir, stateFileName) }

// ErrNoCluster is returned by Open when dir holds no cluster.
var ErrNoCluster = errors.New("no cluster")

// loadState reads dir's state; ErrNoCluster if there is none.
func loadState(dir string) (*State, error) {
	data, err := os.ReadFile(statePath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoCluster)
	}
	if err != nil {
		return nil, fmt.Errorf("read cluster state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read cluster state %s: %w", statePath(dir), err)
	}
	return &s, nil
}

// save writes the state atomically (a crash leaves the old or the new
// record, never half of one); 0600, as it holds the join token.
func (s *State) save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster state: %w", err)
	}
	tmp := statePath(s.Dir) + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	if err := os.Rename(tmp, statePath(s.Dir)); err != nil {
		return fmt.Errorf("write cluster state: %w", err)
	}
	return nil
}

// dirLock is an exclusive flock on a cluster directory, held while an
// operation reads and changes its state.
type dirLock struct{ f *os.File }

// lockDir locks dir, which must exist. It waits for another holder.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock cluster dir: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock cluster dir %s: %w", dir, err)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close() // closing releases the flock
	}
}

// hostLockPath serialises choosing an underlay range and creating its
// bridge across clusters coming up at once (the FHS place for lock files,
// as iptables' /run/xtables.lock).
const hostLockPath = "/run/lock/peapod-cluster.lock"

func lockHost() (*dirLock, error) {
	if err := os.MkdirAll(filepath.Dir(hostLockPath), 0o755); err != nil {
		return nil, fmt.Errorf("lock host: %w", err)
	}
	f, err := os.OpenFile(hostLockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock host: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock host %s: %w", hostLockPath, err)
	}
	return &dirLock{f: f}, nil
}
