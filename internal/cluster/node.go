package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/apiserver"
	"github.com/peapod/peapod/internal/network/netns"
)

// Cluster is a running cluster opened for node-level operations. It holds
// the cluster directory's lock until Close, so operations from several
// commands never interleave.
type Cluster struct {
	State *State
	lock  *dirLock
}

// Open locks and reads the cluster in dir.
func Open(dir string) (*Cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("--dir %q: %w", dir, err)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoCluster)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	st, err := loadState(dir)
	if err != nil {
		lock.unlock()
		return nil, err
	}
	return &Cluster{State: st, lock: lock}, nil
}

// Close releases the cluster's lock.
func (c *Cluster) Close() { c.lock.unlock() }

// Node returns the node named ref (its name or number).
func (c *Cluster) Node(ref string) (*Node, error) { return c.State.nodeRef(ref) }

// StopNode stops node ref's process (or etcd member ref's etcd) with sig
// (SIGTERM waits up to grace, then kills; SIGKILL kills at once), as a
// crash or `systemctl stop` would. Its pods keep running: they belong to
// the node, not the process. Stopping a stopped node is success.
func (c *Cluster) StopNode(ctx context.Context, ref string, sig syscall.Signal, grace time.Duration) error {
	n, err := c.Node(ref)
	if err != nil {
		return err
	}
	if err := n.stopProcess(ctx, sig, grace); err != nil {
		return err
	}
	n.PID, n.StartTime = 0, 0
	return c.State.save()
}

// StartNode starts node ref's process again, with the arguments it was
// first started with; it refuses if the process still runs. It returns
// when the process has started; WaitReady with the time returned waits
// until it serves.
func (c *Cluster) StartNode(ref string) (time.Time, error) {
	n, err := c.Node(ref)
	if err != nil {
		return time.Time{}, err
	}
	if n.running() {
		return time.Time{}, fmt.Errorf("node %s: already running (pid %d)", n.Name, n.PID)
	}
	if len(n.Args) == 0 {
		return time.Time{}, fmt.Errorf("node %s: never started, nothing to start again", n.Name)
	}
	started := time.Now()
	if n.Role == roleEtcd {
		return started, c.State.startProcess(n, EtcdBinary)
	}
	return started, c.State.startNode(n)
}

// Disconnect cuts node ref off the underlay (the bridge's end of its veth
// goes down, so its eth0 loses carrier), as a pulled cable would; its
// process and pods keep running. Connect restores it.
func (c *Cluster) Disconnect(ref string) error { return c.setConnected(ref, false) }

// Connect undoes Disconnect.
func (c *Cluster) Connect(ref string) error { return c.setConnected(ref, true) }

func (c *Cluster) setConnected(ref string, up bool) error {
	n, err := c.Node(ref)
	if err != nil {
		return err
	}
	return setLinkUp(n.HostVeth, up)
}

// WaitReady waits until the named nodes (every node if none) serve: Ready
// in the API, their Lease renewed since since, and their agent port open
// (for an etcd member: the cluster answers through it); or until ctx
// ends.
func (c *Cluster) WaitReady(ctx context.Context, since time.Time, refs ...string) error {
	nodes := c.State.Nodes
	var members []Node
	if len(refs) > 0 {
		nodes = nil
		for _, ref := range refs {
			n, err := c.Node(ref)
			if err != nil {
				return err
			}
			if n.Role == roleEtcd {
				members = append(members, *n)
			} else {
				nodes = append(nodes, *n)
			}
		}
	}
	if len(members) > 0 {
		if err := waitEtcd(ctx, c.State, members); err != nil {
			return err
		}
	}
	if len(nodes) == 0 {
		return nil
	}
	client, err := c.State.Client()
	if err != nil {
		return err
	}
	return waitNodesReady(ctx, client, c.State, nodes, since)
}

// AddNode adds an agent node to the running cluster: the next free number
// (never a removed node's, so a new node is never mistaken for an old
// one: State.LastIndex), its namespace and link, and its agent, joined
// with a new token. It waits up to wait for the node to be Ready; on
// failure the new node is taken apart again.
func (c *Cluster) AddNode(ctx context.Context, images []string, wait time.Duration) (_ *Node, retErr error) {
	st := c.State
	next := st.nextIndex()
	if next > MaxNodes {
		return nil, fmt.Errorf("cluster %s: node numbers run out at %d", st.Name, MaxNodes)
	}
	if st.Server == "" {
		return nil, fmt.Errorf("cluster %s has no running server to join", st.Name)
	}
	if err := nodeNamesFree(st.Name, next); err != nil {
		return nil, fmt.Errorf("node %s: %s is in use (by another cluster named %s?)", NodeName(st.Name, next), err, st.Name)
	}
	defer func() {
		if retErr == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if len(st.Nodes) == 0 || st.Nodes[len(st.Nodes)-1].Index != next {
			return // not made at all
		}
		n := &st.Nodes[len(st.Nodes)-1]
		err := n.stopProcess(cctx, syscall.SIGKILL, 0)
		if err == nil {
			err = removeNode(cctx, st, n)
		}
		if err == nil {
			st.Nodes = st.Nodes[:len(st.Nodes)-1]
			err = st.save()
		}
		if err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("clean up the new node (finish with: peapod cluster down): %w", err))
		}
	}()
	for i, img := range images {
		abs, err := filepath.Abs(img)
		if err != nil {
			return nil, fmt.Errorf("--image %q: %w", img, err)
		}
		images[i] = abs
	}
	// A fresh token (the one Up made may have expired since), through a
	// server that answers.
	server, _, err := st.liveServer()
	if err != nil {
		return nil, err
	}
	token, err := apiserver.CreateJoinTokenFromKubeconfig(ctx, server.Kubeconfig(), time.Hour)
	if err != nil {
		return nil, fmt.Errorf("create join token: %w", err)
	}
	st.Token = token
	n, err := st.makeNode(next, roleAgent, images)
	if err != nil {
		return nil, err
	}
	n.Args = agentArgs(st, n)
	started := time.Now()
	if err := st.startNode(n); err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	client, err := st.Client()
	if err != nil {
		return nil, err
	}
	if err := waitNodesReady(waitCtx, client, st, []Node{*n}, started); err != nil {
		return nil, err
	}
	return n, nil
}

// RemoveNode takes an agent node out of the cluster: its process stopped,
// its Node deleted from the API (as `kubectl delete node` after draining
// a machine), its pods reset, and its namespace, link, cgroups and data
// dir removed. Node 1 runs the server and is only removed by Down.
func (c *Cluster) RemoveNode(ctx context.Context, ref string, grace time.Duration) error {
	st := c.State
	n, err := c.Node(ref)
	if err != nil {
		return err
	}
	switch n.Role {
	case roleServer:
		return fmt.Errorf("node %s runs a server; peapod cluster down removes it with the cluster", n.Name)
	case roleEtcd:
		return fmt.Errorf("%s is an etcd member; peapod cluster down removes it with the cluster (stop it with peapod cluster node stop)", n.Name)
	}
	if err := n.stopProcess(ctx, syscall.SIGTERM, grace); err != nil {
		return err
	}
	client, err := st.Client()
	if err != nil {
		return err
	}
	if err := client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Node %s: %w", n.Name, err)
	}
	if err := removeNode(ctx, st, n); err != nil {
		return errors.Join(err, st.save())
	}
	for i := range st.Nodes {
		if st.Nodes[i].Name == n.Name {
			st.Nodes = append(st.Nodes[:i], st.Nodes[i+1:]...)
			break
		}
	}
	return st.save()
}

// Exec runs argv inside node ref's network namespace, in the host's mount
// namespace (unlike `ip netns exec`, which makes its own): what the node's
// processes see of the network, with the host's files. It returns the
// command's error (an *exec.ExitError for a non-zero exit).
func (c *Cluster) Exec(ctx context.Context, ref string, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	n, err := c.Node(ref)
	if err != nil {
		return err
	}
	return ExecIn(ctx, n.NetNS, argv, stdin, stdout, stderr)
}

// ExecIn runs argv inside the network namespace pinned at nsPath; see Exec.
func ExecIn(ctx context.Context, nsPath string, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		return errors.New("exec: no command given")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := netns.Do(nsPath, cmd.Start); err != nil {
		return fmt.Errorf("exec in %s: %w", nsPath, err)
	}
	return cmd.Wait()
}

// ProcessState describes the node's process for display: "running (pid
// N)" or "stopped".
func (n *Node) ProcessState() string {
	if n.running() {
		return fmt.Sprintf("running (pid %d)", n.PID)
	}
	return "stopped"
}

// LinkState describes the node's underlay link for display: "up",
// "disconnected" or "missing".
func (n *Node) LinkState() string {
	link, err := netlink.LinkByName(n.HostVeth)
	switch {
	case err != nil:
		return "missing"
	case link.Attrs().Flags&net.FlagUp == 0:
		return "disconnected"
	}
	return "up"
}
