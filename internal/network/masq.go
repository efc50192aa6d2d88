package network

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// masqChainPrefix starts the names of peapod's nat chains for
// ClusterCIDR-aware masquerading: one chain per cluster network, so two
// peapods with different networks on one host never rewrite each other's.
const masqChainPrefix = "PEAPOD-MASQ-"

// masqChain names the chain of one cluster network (≤ 28 characters, as
// iptables requires).
func masqChain(clusterCIDR string) string {
	sum := sha256.Sum256([]byte(clusterCIDR))
	return masqChainPrefix + hex.EncodeToString(sum[:])[:12]
}

// masqJumpComment marks the POSTROUTING rule that jumps to masqChain.
const masqJumpComment = "peapod: masquerade pod traffic leaving the cluster"

// clusterMasqueradeRules is the iptables-restore input that (re)defines
// masqChain: return for the cluster network and multicast, masquerade the
// rest. It is pure.
func clusterMasqueradeRules(clusterCIDR string) string {
	return fmt.Sprintf(`*nat
:%[1]s - [0:0]
-A %[1]s -d %[2]s -m comment --comment "peapod: pod to pod, no NAT" -j RETURN
-A %[1]s -d 224.0.0.0/4 -j RETURN
-A %[1]s -j MASQUERADE
COMMIT
`, masqChain(clusterCIDR), clusterCIDR)
}

// ensureClusterMasquerade idempotently installs, in the calling thread's
// network namespace, the rules that masquerade traffic from podCIDR unless
// it goes to clusterCIDR. The chain is rewritten atomically
// (iptables-restore --noflush); the jump is added once. The rules are
// node-level: they are shared by all pods and not removed by Teardown.
func ensureClusterMasquerade(ctx context.Context, podCIDR, clusterCIDR string) error {
	restore := exec.CommandContext(ctx, "iptables-restore", "-w", "--noflush")
	restore.Stdin = strings.NewReader(clusterMasqueradeRules(clusterCIDR))
	if out, err := restore.CombinedOutput(); err != nil {
		return fmt.Errorf("install %s rules: %w: %s", masqChain(clusterCIDR), err, bytes.TrimSpace(out))
	}
	jump := masqJump(podCIDR, clusterCIDR)
	if err := iptables(ctx, append([]string{"-t", "nat", "-C"}, jump...)...); err == nil {
		return nil
	}
	if err := iptables(ctx, append([]string{"-t", "nat", "-A"}, jump...)...); err != nil {
		return fmt.Errorf("install %s jump: %w", masqChain(clusterCIDR), err)
	}
	return nil
}

func masqJump(podCIDR, clusterCIDR string) []string {
	return []string{"POSTROUTING", "-s", podCIDR, "-m", "comment", "--comment", masqJumpComment, "-j", masqChain(clusterCIDR)}
}

// removeClusterMasquerade undoes ensureClusterMasquerade: the jump for
// podCIDR, and the chain once no jump uses it. Missing rules are fine.
func removeClusterMasquerade(ctx context.Context, podCIDR, clusterCIDR string) error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil
	}
	for iptables(ctx, append([]string{"-t", "nat", "-C"}, masqJump(podCIDR, clusterCIDR)...)...) == nil {
		if err := iptables(ctx, append([]string{"-t", "nat", "-D"}, masqJump(podCIDR, clusterCIDR)...)...); err != nil {
			return err
		}
	}
	out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-S", "POSTROUTING").Output()
	if err != nil {
		return fmt.Errorf("list nat POSTROUTING: %w", err)
	}
	chain := masqChain(clusterCIDR)
	if strings.Contains(string(out), "-j "+chain) {
		return nil // another pod network on this host still uses it
	}
	if err := iptables(ctx, "-t", "nat", "-F", chain); err != nil && !strings.Contains(err.Error(), "No chain") {
		return err
	}
	if err := iptables(ctx, "-t", "nat", "-X", chain); err != nil && !strings.Contains(err.Error(), "No chain") {
		return err
	}
	return nil
}

// removeBridgeMasquerade deletes, from the nat table, the POSTROUTING
// rules the bridge plugin's ipMasq created for this network and container
// (matched by the plugin's comment `name: "<net>" id: "<id>"`) and the
// chains they jump to. The bridge plugin's DEL skips them when the pod's
// interface or netns is already gone. Finding none is success.
func removeBridgeMasquerade(ctx context.Context, netName, id string) error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil // no iptables, so no rules
	}
	out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-S", "POSTROUTING").Output()
	if err != nil {
		return fmt.Errorf("list nat POSTROUTING: %w", err)
	}
	rules, chains := bridgeMasqueradeRules(string(out), fmt.Sprintf("name: %q id: %q", netName, id))
	var errs []error
	for _, r := range rules {
		if err := iptables(ctx, append([]string{"-t", "nat", "-D"}, r[1:]...)...); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range chains {
		for _, op := range []string{"-F", "-X"} {
			if err := iptables(ctx, "-t", "nat", op, c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove leftover masquerade rules of %s: %w", id, err)
	}
	return nil
}

// bridgeMasqueradeRules picks from `iptables -S` output the rules with the
// given comment, as argument lists ("-A", chain, ...), and the CNI- chains
// they jump to. It is pure.
func bridgeMasqueradeRules(save, comment string) (rules [][]string, chains []string) {
	for _, line := range strings.Split(save, "\n") {
		args := splitRule(line)
		if len(args) < 2 || args[0] != "-A" {
			continue
		}
		var match bool
		var target string
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "--comment":
				match = match || args[i+1] == comment
			case "-j":
				target = args[i+1]
			}
		}
		if !match {
			continue
		}
		rules = append(rules, args)
		if strings.HasPrefix(target, "CNI-") {
			chains = append(chains, target)
		}
	}
	return rules, chains
}

// splitRule splits one line of `iptables -S` output into arguments,
// honouring double quotes and backslash escapes inside them. It is pure.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inArg, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			quoted = !quoted
			inArg = true
		case !quoted && (c == ' ' || c == '\t'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// iptables runs iptables -w with args, returning its output in the error.
func iptables(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
