package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/peapod/peapod/internal/network/netns"
)

// Down takes apart the cluster in dir: every node process stopped
// (SIGTERM, SIGKILL after grace), every node reset, then the namespaces,
// veths, bridge, host rules, cgroups and the directory removed. It is
// idempotent: a dir with no cluster (already down, or never up) is
// success. When a step fails, the state keeps what is left, so Down can be
// run again.
func Down(ctx context.Context, dir string, grace time.Duration, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("--dir %q: %w", dir, err)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "no cluster in %s\n", dir)
		return nil
	}
	lock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer lock.unlock()
	st, err := loadState(dir)
	if errors.Is(err, ErrNoCluster) {
		fmt.Fprintf(out, "no cluster in %s\n", dir)
		_ = os.Remove(dir) // only if empty: it may not be ours
		return nil
	}
	if err != nil {
		return err
	}
	return teardown(ctx, st, grace, out)
}

// teardown takes apart everything st records, node processes first. The
// caller holds the directory's lock.
func teardown(ctx context.Context, st *State, grace time.Duration, out io.Writer) error {
	// Stop every process first, all at once: the server must not see
	// agents vanish one by one and start evicting, and agents must not
	// outlive their reset.
	if err := stopAll(ctx, st.Nodes, grace); err != nil {
		return err
	}
	// The etcd members after the servers, which shut down through them.
	if err := stopAll(ctx, st.Etcd, grace); err != nil {
		return err
	}
	var wg sync.WaitGroup
	nodeErrs := make([]error, len(st.Nodes))
	for i := range st.Nodes {
		wg.Add(1)
		go func(n *Node, errp *error) {
			defer wg.Done()
			*errp = removeNode(ctx, st, n)
		}(&st.Nodes[i], &nodeErrs[i])
	}
	wg.Wait()
	var left []Node
	for i, err := range nodeErrs {
		if err != nil {
			left = append(left, st.Nodes[i])
		} else {
			fmt.Fprintf(out, "%s: removed\n", st.Nodes[i].Name)
		}
	}
	st.Nodes = left
	if err := errors.Join(nodeErrs...); err != nil {
		return errors.Join(err, st.save())
	}
	var leftMembers []Node
	var memberErrs []error
	for i := range st.Etcd {
		if err := removeEtcdMember(ctx, &st.Etcd[i]); err != nil {
			memberErrs = append(memberErrs, err)
			leftMembers = append(leftMembers, st.Etcd[i])
		} else {
			fmt.Fprintf(out, "%s: removed\n", st.Etcd[i].Name)
		}
	}
	st.Etcd = leftMembers
	if err := errors.Join(memberErrs...); err != nil {
		return errors.Join(err, st.save())
	}
	if st.EtcdPKI != "" {
		if err := os.RemoveAll(st.EtcdPKI); err != nil {
			return errors.Join(fmt.Errorf("remove %s: %w", st.EtcdPKI, err), st.save())
		}
		st.EtcdPKI = ""
	}
	// Without a bridge, Up stopped before making anything machine-wide
	// (another cluster of this name runs, say): leave those names alone.
	if st.Bridge != "" {
		var errs []error
		for _, rule := range st.HostRules {
			errs = append(errs, removeHostRule(ctx, rule))
		}
		errs = append(errs, removeLink(st.Bridge))
		if err := errors.Join(errs...); err != nil {
			return errors.Join(err, st.save())
		}
		if err := removeCgroupTree(path.Join(cgroupRoot, st.Name)); err != nil {
			return errors.Join(err, st.save())
		}
		removeEmptyCgroup(cgroupRoot) // other clusters may still use it
	}
	if err := os.Remove(statePath(st.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove cluster state: %w", err)
	}
	// Only our own files were in dir (Up insists on an empty one).
	if err := os.Remove(st.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", st.Dir, err)
	}
	fmt.Fprintf(out, "cluster %s removed: its nodes, underlay, host rules, cgroups and %s\n", st.Name, st.Dir)
	return nil
}

// stopAll stops every process of nodes at once (SIGTERM, SIGKILL after
// grace).
func stopAll(ctx context.Context, nodes []Node, grace time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i := range nodes {
		wg.Go(func() { errs[i] = nodes[i].stopProcess(ctx, syscall.SIGTERM, grace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// removeNode takes node n apart once its process has stopped: any process
// left in its namespace killed, `peapod reset` run inside the namespace
// (the node's pods, pod bridge and rules), then its veth, namespace,
// cgroups and data dir removed. Each part that is already gone is skipped,
// so it can be repeated.
func removeNode(ctx context.Context, st *State, n *Node) error {
	if err := killProcessesIn(ctx, n.NetNS); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := resetNode(ctx, st, n); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	// The host end first: the kernel frees a namespace's links only when
	// the namespace is freed, which is not immediate.
	if err := removeLink(n.HostVeth); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := netns.Remove(n.NetNS); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := removeCgroupTree(n.CgroupParent); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := os.RemoveAll(n.DataDir); err != nil {
		return fmt.Errorf("node %s: remove data dir: %w", n.Name, err)
	}
	n.PID, n.StartTime = 0, 0
	return nil
}

// resetNode runs `peapod reset` for n inside n's namespace, so the pod
// bridge and the rules peapod made there go with the pods. If the
// namespace is gone (an earlier teardown got that far), reset runs in a
// fresh one at the same path, never in the host's. A node without a data
// dir never ran and has nothing to reset.
func resetNode(ctx context.Context, st *State, n *Node) error {
	if _, err := os.Stat(n.DataDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if !netns.Exists(n.NetNS) {
		if err := netns.Remove(n.NetNS); err != nil { // a stale pin file
			return err
		}
		if _, err := netns.New(filepath.Dir(n.NetNS), filepath.Base(n.NetNS)); err != nil {
			return fmt.Errorf("namespace for reset: %w", err)
		}
	}
	args := append([]string{"reset"}, resetArgs(st, n)...)
	cmd := exec.CommandContext(ctx, st.Binary, args...)
	var out []byte
	err := netns.Do(n.NetNS, func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return fmt.Errorf("peapod reset: %w\n%s", err, out)
	}
	return nil
}

// resetArgs are the node flags reset needs to find what the node made:
// its data dir, pod bridge, cgroup parent and pod range.
func resetArgs(st *State, n *Node) []string {
	args := []string{"--data-dir", n.DataDir, "--bridge", n.PodBridge, "--cgroup-parent", n.CgroupParent}
	if n.PodCIDR != "" {
		args = append(args, "--pod-cidr", n.PodCIDR, "--cluster-cidr", st.ClusterCIDR)
	}
	return args
}
