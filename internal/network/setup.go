package network

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/peapod/peapod/internal/network/netns"
)

// podIfName is the pod's interface, as in Kubernetes.
const podIfName = "eth0"

// cleanupTimeout bounds the DEL run after a failed Setup, on a fresh
// context since the caller's may be cancelled.
const cleanupTimeout = 30 * time.Second

// PortMapping is a hostPort: traffic to HostIP:HostPort on the node is
// forwarded to the pod's ContainerPort (CNI portmap's portMappings).
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // "TCP" (default), "UDP" or "SCTP"; any case
	HostIP        string // "" = all host addresses
}

// PodInfo identifies the pod to plugins (K8S_POD_* CNI_ARGS) and carries
// its host ports.
type PodInfo struct {
	Namespace, Name, UID string
	PortMappings         []PortMapping
}

// Result is the pod's network attachment.
type Result struct {
	Interface string   // pod-side interface, "eth0"
	IPs       []string // CIDR form, e.g. "10.88.0.5/16"
	Gateway   string   // default gateway, "" if none
	HostVeth  string   // host-side veth name, "" if the plugin reports none
	Mac       string   // pod interface MAC
}

// Setup attaches the pod whose network namespace is pinned at netnsPath:
// it brings lo up (in-process, as the loopback plugin would) and then runs
// the configured conflist's ADD with the pod's port mappings and K8S_POD_*
// CNI_ARGS. With peapod's default conflist and no port mappings, the ADD
// leaves out portmap (it would have nothing to do); Check and Teardown use
// whichever list the ADD used. With ClusterCIDR set, the node-level
// masquerade rules are ensured by the first Setup of the Manager (and by
// the next one after a failure), not by every Setup. id is the sandbox ID
// (CNI's container ID). If any step fails, Setup runs Teardown so no IP,
// veth or iptables rule is leaked, and returns the ADD error (joined with
// any cleanup error).
func (m *Manager) Setup(ctx context.Context, id, netnsPath string, pod PodInfo) (_ *Result, retErr error) {
	if id == "" {
		return nil, errors.New("set up pod network: empty sandbox id")
	}
	if !netns.Exists(netnsPath) {
		return nil, fmt.Errorf("set up pod network for sandbox %s: %q is not a network namespace", id, netnsPath)
	}
	protos, err := portMappingsArg(pod.PortMappings)
	if err != nil {
		return nil, fmt.Errorf("set up pod network for sandbox %s: %w", id, err)
	}
	// Registered before the first ADD: a failed ADD may still have
	// allocated an address or created a veth.
	defer func() {
		if retErr == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := m.Teardown(cctx, id, netnsPath, pod); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("clean up after failed setup: %w", err))
		}
	}()

	if err := m.ensureMasquerade(ctx); err != nil {
		return nil, fmt.Errorf("set up pod network for sandbox %s: %w", id, err)
	}
	if err := loopbackUp(netnsPath); err != nil {
		return nil, fmt.Errorf("set up loopback for sandbox %s: %w", id, err)
	}
	raw, err := m.cni.AddNetworkList(ctx, m.listFor(len(protos) > 0), m.runtimeConf(id, netnsPath, pod, protos))
	if err != nil {
		return nil, fmt.Errorf("add sandbox %s to network %q: %w", id, m.list.Name, err)
	}
	res, err := resultFrom(raw, podIfName)
	if err != nil {
		return nil, fmt.Errorf("add sandbox %s to network %q: %w", id, m.list.Name, err)
	}
	return res, nil
}

// Check runs CNI CHECK for the pod network against the result and config
// cached by Setup, and checks that lo is up. It fails if the attachment is
// broken (e.g. the pod's eth0, IP or route is gone) or Setup never
// succeeded.
func (m *Manager) Check(ctx context.Context, id, netnsPath string, pod PodInfo) error {
	if !netns.Exists(netnsPath) {
		return fmt.Errorf("check pod network for sandbox %s: %q is not a network namespace", id, netnsPath)
	}
	protos, err := portMappingsArg(pod.PortMappings)
	if err != nil {
		return fmt.Errorf("check pod network for sandbox %s: %w", id, err)
	}
	list, rt := m.addedList(m.runtimeConf(id, netnsPath, pod, protos), len(protos) > 0)
	if err := m.cni.CheckNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("check sandbox %s on network %q: %w", id, list.Name, err)
	}
	if err := checkLoopback(netnsPath); err != nil {
		return fmt.Errorf("check loopback of sandbox %s: %w", id, err)
	}
	return nil
}

// Teardown runs CNI DEL for the pod network with the config and arguments
// its ADD used (from libcni's cache; without one, by Setup's rule). It is
// idempotent: running it again, or after the network namespace or the
// pod's interface is gone, succeeds, and the pod's IP and its host-port
// and masquerade iptables rules are still released (a gone netns is
// passed to plugins as an empty CNI_NETNS, as containerd does). A
// "cni-loopback" network cached by an earlier peapod is deleted too.
func (m *Manager) Teardown(ctx context.Context, id, netnsPath string, pod PodInfo) error {
	if id == "" {
		return errors.New("tear down pod network: empty sandbox id")
	}
	if netnsPath != "" && !netns.Exists(netnsPath) {
		netnsPath = ""
	}
	// Invalid mappings cannot have been set up; portmap deletes by ID.
	protos, _ := portMappingsArg(pod.PortMappings)
	var errs []error
	list, rt := m.addedList(m.runtimeConf(id, netnsPath, pod, protos), len(protos) > 0)
	if err := m.delNetworkList(ctx, list, rt); err != nil {
		errs = append(errs, fmt.Errorf("delete sandbox %s from network %q: %w", id, list.Name, err))
	}
	lrt := loopbackRuntimeConf(id, netnsPath)
	if cached, _, err := m.cni.GetNetworkListCachedConfig(m.loopback, lrt); err != nil || cached != nil {
		if err := m.delNetworkList(ctx, m.loopback, lrt); err != nil {
			errs = append(errs, fmt.Errorf("delete loopback of sandbox %s: %w", id, err))
		}
	}
	// The bridge plugin removes its masquerade rule only when it finds the
	// pod's interface; remove what it left behind.
	if usesIPMasq(list) {
		if err := removeBridgeMasquerade(ctx, list.Name, id); err != nil {
			errs = append(errs, fmt.Errorf("tear down pod network for sandbox %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// delNetworkList runs DEL for list. libcni stops at the first plugin whose
// DEL fails; then every plugin's DEL is run once more on its own, in
// reverse order and past failures (DEL is idempotent), so one broken
// plugin does not leak what the others hold, and the failures are
// returned.
func (m *Manager) delNetworkList(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	err := m.cni.DelNetworkList(ctx, list, rt)
	if err == nil {
		return nil
	}
	var errs []error
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		one := &libcni.NetworkConfigList{
			Name:       list.Name,
			CNIVersion: list.CNIVersion,
			Plugins:    list.Plugins[i : i+1],
			Bytes:      list.Bytes,
		}
		if err := m.cni.DelNetworkList(ctx, one, rt); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil // the failure was transient
	}
	return errors.Join(errs...)
}

// runtimeConf is the libcni invocation for the pod network.
func (m *Manager) runtimeConf(id, netnsPath string, pod PodInfo, portMappings []portMapping) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       netnsPath,
		IfName:      podIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", id},
			{"K8S_POD_UID", pod.UID},
		},
	}
	if len(portMappings) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": portMappings}
	}
	return rt
}

// ensureMasquerade installs the ClusterCIDR masquerade rules once per
// Manager, when peapod's default conflist is in use with ClusterCIDR set.
// After a failure the next call tries again. Rules removed behind peapod's
// back come back with the next Manager (peapod restart).
func (m *Manager) ensureMasquerade(ctx context.Context) error {
	if !m.isDefault || m.cfg.ClusterCIDR == "" {
		return nil
	}
	m.masqMu.Lock()
	defer m.masqMu.Unlock()
	if m.masqDone {
		return nil
	}
	if err := ensureClusterMasquerade(ctx, m.cfg.PodCIDR, m.cfg.ClusterCIDR); err != nil {
		return err
	}
	m.masqDone = true
	return nil
}

// loopbackRuntimeConf is the libcni invocation for the legacy loopback
// network.
func loopbackRuntimeConf(id, netnsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: id, NetNS: netnsPath, IfName: "lo"}
}

// portMapping is the portMappings capability entry portmap reads.
type portMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// portMappingsArg validates pms and converts them to portmap's form
// (lowercase protocol, default tcp). It is pure.
func portMappingsArg(pms []PortMapping) ([]portMapping, error) {
	var out []portMapping
	for _, pm := range pms {
		proto := strings.ToLower(pm.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, fmt.Errorf("port mapping %d->%d: unknown protocol %q", pm.HostPort, pm.ContainerPort, pm.Protocol)
		}
		if pm.HostPort < 1 || pm.HostPort > 65535 || pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
			return nil, fmt.Errorf("port mapping %d->%d: port out of range 1-65535", pm.HostPort, pm.ContainerPort)
		}
		out = append(out, portMapping{HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: proto, HostIP: pm.HostIP})
	}
	return out, nil
}

// resultFrom converts a plugin result of any version to a Result for the
// pod interface ifName. The host veth is the last interface outside any
// sandbox (bridge reports bridge, veth, pod interface; ptp veth, pod
// interface). It is pure.
func resultFrom(raw types.Result, ifName string) (*Result, error) {
	if raw == nil {
		return nil, errors.New("CNI returned no result")
	}
	r, err := types100.NewResultFromResult(raw)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	out := &Result{Interface: ifName}
	podIdx := -1
	for i, iface := range r.Interfaces {
		switch {
		case iface.Sandbox != "" && iface.Name == ifName:
			podIdx = i
			out.Mac = iface.Mac
		case iface.Sandbox == "":
			out.HostVeth = iface.Name
		}
	}
	for _, ipc := range r.IPs {
		if ipc.Interface != nil && podIdx >= 0 && *ipc.Interface != podIdx {
			continue
		}
		out.IPs = append(out.IPs, ipc.Address.String())
		if out.Gateway == "" && ipc.Gateway != nil {
			out.Gateway = ipc.Gateway.String()
		}
	}
	if len(out.IPs) == 0 {
		return nil, fmt.Errorf("CNI result has no IP address for %s", ifName)
	}
	return out, nil
}
