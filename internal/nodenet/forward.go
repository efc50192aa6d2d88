package nodenet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Forwarding the cluster range: hosts (Docker, ufw, firewalld) often set
// the filter table's FORWARD policy to DROP, which would drop pod traffic
// routed between the pod bridge and the VXLAN device or underlay. As
// flannel's FLANNEL-FWD and kube-proxy's KUBE-FORWARD do, peapod keeps its
// own chain that accepts traffic from or to the cluster range, jumped to
// from the top of FORWARD.
//
// Why iptables (iptables-restore, like internal/network's masquerade
// rules) and not an nftables table of our own: an accept verdict in one
// nftables base chain does not stop another base chain on the same hook
// from dropping the packet, so only a rule inside the chain that holds the
// DROP policy can exempt the cluster range, and that chain is the
// iptables filter FORWARD chain (on iptables-nft hosts too, where it lives
// in nftables' "ip filter" table). The binaries honour whichever iptables
// backend the host uses.

// forwardChain is peapod's chain in the filter table.
const forwardChain = "PEAPOD-FORWARD"

// forwardJumpComment marks the FORWARD rule that jumps to forwardChain.
const forwardJumpComment = "peapod: forward the pod network"

// forwardRules is the iptables-restore input that (re)defines forwardChain
// for clusterCIDR. It is pure.
func forwardRules(clusterCIDR string) string {
	return fmt.Sprintf(`*filter
:%[1]s - [0:0]
-A %[1]s -s %[2]s -m comment --comment "peapod: from pods" -j ACCEPT
-A %[1]s -d %[2]s -m comment --comment "peapod: to pods" -j ACCEPT
COMMIT
`, forwardChain, clusterCIDR)
}

var forwardJump = []string{"FORWARD", "-m", "comment", "--comment", forwardJumpComment, "-j", forwardChain}

// EnsureForwarding idempotently installs the forward rules for the
// cluster range in the node's namespace: the chain is rewritten atomically
// (iptables-restore --noflush), and the jump is inserted at the top of
// FORWARD once. Setup calls it; the controller calls it again on every
// periodic resync so a flushed FORWARD chain heals.
func (n *Network) EnsureForwarding(ctx context.Context) error {
	if err := n.lock(); err != nil {
		return err
	}
	defer n.mu.Unlock()
	return n.ensureForwarding(ctx)
}

func (n *Network) ensureForwarding(ctx context.Context) error {
	return n.inNS(func() error {
		restore := exec.CommandContext(ctx, "iptables-restore", "-w", "--noflush")
		restore.Stdin = strings.NewReader(forwardRules(n.s.clusterCIDR.String()))
		if out, err := restore.CombinedOutput(); err != nil {
			return fmt.Errorf("install %s rules: %w: %s", forwardChain, err, bytes.TrimSpace(out))
		}
		if iptables(ctx, append([]string{"-C"}, forwardJump...)...) == nil {
			return nil
		}
		if err := iptables(ctx, append([]string{"-I"}, append([]string{forwardJump[0], "1"}, forwardJump[1:]...)...)...); err != nil {
			return fmt.Errorf("install %s jump: %w", forwardChain, err)
		}
		return nil
	})
}

// removeForwarding undoes EnsureForwarding: every jump, then the chain.
// Missing rules (or no iptables at all) are success.
func (n *Network) removeForwarding(ctx context.Context) error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	return n.inNS(func() error {
		for iptables(ctx, append([]string{"-C"}, forwardJump...)...) == nil {
			if err := iptables(ctx, append([]string{"-D"}, forwardJump...)...); err != nil {
				return fmt.Errorf("remove %s jump: %w", forwardChain, err)
			}
		}
		var errs []error
		for _, op := range []string{"-F", "-X"} {
			if err := iptables(ctx, op, forwardChain); err != nil && !noChain(err) {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("remove %s: %w", forwardChain, err)
		}
		return nil
	})
}

// forwardingInstalled reports whether the jump to forwardChain is in place.
func (n *Network) forwardingInstalled(ctx context.Context) bool {
	return n.inNS(func() error { return iptables(ctx, append([]string{"-C"}, forwardJump...)...) }) == nil
}

func noChain(err error) bool {
	s := err.Error()
	return strings.Contains(s, "No chain") || strings.Contains(s, "does not exist")
}

// iptables runs iptables -w on the filter table, returning its output in
// the error.
func iptables(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "-t", "filter"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
