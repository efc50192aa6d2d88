// Package config holds a node's configuration and derives every path peapod
// uses from one data directory, so that all of peapod's state lives under
// --data-dir and nothing else has to know the layout.
package config

import (
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultClusterDomain is the cluster DNS domain unless configured.
const DefaultClusterDomain = "cluster.local"

// DefaultDataDir is where peapod keeps its state unless --data-dir says otherwise.
const DefaultDataDir = "/var/lib/peapod"

// Node is the configuration of one node's runtime.
type Node struct {
	// DataDir holds all of peapod's state.
	DataDir string
	// NodeName names this node in pod status and the API.
	NodeName string
	// NodeIP is the node's address (--node-ip): its InternalIP, every
	// pod's hostIP, a hostNetwork pod's IP and the underlay address its
	// peers send pod traffic to. Empty means the first IPv4 address of the
	// interface holding the default route (nodeaddr.Resolve).
	NodeIP string
	// BridgeName is the Linux bridge pods attach to.
	BridgeName string
	// PodCIDR is the range the node's pods get their IPs from. A node of a
	// cluster gets it from the server (its Node's spec.podCIDR), and
	// --pod-cidr, when given, must agree; commands that run the node
	// runtime without a server take --pod-cidr, else the range the node
	// last used (recorded in the data dir), else 10.88.0.0/16.
	PodCIDR string
	// ClusterCIDR is the whole pod network (every node's PodCIDR); traffic
	// to it is never masqueraded. A node of a cluster reads it from the
	// server. Empty means PodCIDR.
	ClusterCIDR string
	// MTU of the pod network's bridge and veths; 0 leaves the kernel's
	// default. An overlay sets it to the underlay MTU less its
	// encapsulation.
	MTU int
	// NetNSDir is where pod network namespaces are pinned (iproute2's
	// /run/netns by default, so `ip netns` lists them).
	NetNSDir string
	// CgroupParent is the cgroup every pod's cgroup is created under.
	CgroupParent string
	// Runtimes maps RuntimeClass handlers to OCI runtime binaries.
	Runtimes map[string]string
	// DefaultRuntime is the handler used when a pod names no RuntimeClass.
	DefaultRuntime string
	// AgentListen is where the node agent serves logs, exec, attach and
	// port-forward to the API server (the kubelet's port, 10250).
	AgentListen string
	// RegistryMirrors maps a registry host to mirror endpoints tried first.
	RegistryMirrors map[string][]string
	// InsecureRegistries may be reached over plain HTTP.
	InsecureRegistries []string
	// ClusterDNS are the nameservers of the pods with dnsPolicy
	// ClusterFirst (the kubelet's clusterDNS); empty makes them use the
	// node's resolvers, as the kubelet does without one. A node of a
	// cluster gets it from the server.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS domain (the kubelet's
	// clusterDomain): pods' search path and FQDNs. Empty means
	// DefaultClusterDomain.
	ClusterDomain string
	// WarmSandboxes is how many sandboxes the node keeps made ahead of any
	// pod (netns, pause, cgroup, CNI attachment), so that a pod start skips
	// that work. 0 turns the pool off.
	WarmSandboxes int
}

// Defaults returns the configuration of a node nobody configured.
func Defaults() Node {
	return Node{
		DataDir:        DefaultDataDir,
		BridgeName:     "peapod0",
		NetNSDir:       "/run/netns",
		CgroupParent:   "peapod",
		Runtimes:       map[string]string{"runc": "runc", "crun": "crun"},
		DefaultRuntime: "runc",
		AgentListen:    ":10250",
		WarmSandboxes:  2,
	}
}

// Validate reports the first setting that cannot work, naming it.
func (n Node) Validate() error {
	if n.DataDir == "" || !filepath.IsAbs(n.DataDir) {
		return fmt.Errorf("--data-dir %q: must be an absolute path", n.DataDir)
	}
	if n.PodCIDR != "" {
		if _, _, err := net.ParseCIDR(n.PodCIDR); err != nil {
			return fmt.Errorf("--pod-cidr %q: %w", n.PodCIDR, err)
		}
	}
	if n.NodeIP != "" && net.ParseIP(n.NodeIP) == nil {
		return fmt.Errorf("--node-ip %q: not an IP address", n.NodeIP)
	}
	if n.ClusterCIDR != "" {
		if _, _, err := net.ParseCIDR(n.ClusterCIDR); err != nil {
			return fmt.Errorf("cluster CIDR %q: %w", n.ClusterCIDR, err)
		}
	}
	if n.NodeIP != "" && net.ParseIP(n.NodeIP) == nil {
		return fmt.Errorf("--node-ip %q: not an IP address", n.NodeIP)
	}
	if n.BridgeName == "" || len(n.BridgeName) > 15 {
		return fmt.Errorf("--bridge %q: must be 1 to 15 characters (a Linux interface name)", n.BridgeName)
	}
	if err := validCgroupParent(n.CgroupParent); err != nil {
		return fmt.Errorf("--cgroup-parent %q: %w", n.CgroupParent, err)
	}
	for _, s := range n.ClusterDNS {
		if net.ParseIP(s) == nil {
			return fmt.Errorf("cluster DNS %q: not an IP address", s)
		}
	}
	if n.ClusterDomain != "" {
		if msgs := validation.IsDNS1123Subdomain(n.ClusterDomain); len(msgs) > 0 {
			return fmt.Errorf("cluster domain %q: %s", n.ClusterDomain, strings.Join(msgs, "; "))
		}
	}
	if n.WarmSandboxes < 0 {
		return fmt.Errorf("--warm-sandboxes %d: must be 0 or more", n.WarmSandboxes)
	}
	if _, ok := n.Runtimes[n.DefaultRuntime]; !ok {
		return fmt.Errorf("default runtime %q: no such runtime handler", n.DefaultRuntime)
	}
	return nil
}

// validCgroupParent accepts a relative cgroup path such as "peapod" or
// "peapod-cluster/demo/demo-node1": pods' cgroups go below it in every
// hierarchy, so it must stay below each hierarchy's root.
func validCgroupParent(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case strings.HasPrefix(p, "/"):
		return errors.New("must be relative to the cgroup hierarchy's root (no leading /)")
	case path.Clean(p) != p:
		return fmt.Errorf("must be a clean path (%q)", path.Clean(p))
	case p == ".." || strings.HasPrefix(p, "../"):
		return errors.New("must stay below the cgroup hierarchy's root")
	}
	return nil
}

// Domain returns ClusterDomain, or DefaultClusterDomain when unset.
func (n Node) Domain() string {
	if n.ClusterDomain == "" {
		return DefaultClusterDomain
	}
	return n.ClusterDomain
}

// Paths are the locations derived from one data directory.
type Paths struct {
	// DataDir is the root every other path is under.
	DataDir string
}

// PathsFor derives the layout of dataDir; docs/architecture.md draws it.
func PathsFor(dataDir string) Paths { return Paths{DataDir: dataDir} }

// Paths returns the layout of n's data directory.
func (n Node) Paths() Paths { return PathsFor(n.DataDir) }

func (p Paths) join(elem ...string) string {
	return filepath.Join(append([]string{p.DataDir}, elem...)...)
}

// AirgapImages holds image tarballs imported when peapod starts.
func (p Paths) AirgapImages() string { return p.join("images") }

// ImageStore is the content-addressed image store.
func (p Paths) ImageStore() string { return p.join("image-store") }

// CNIConfDir holds the CNI network configuration in use.
func (p Paths) CNIConfDir() string { return p.join("cni", "net.d") }

// CNICacheDir is libcni's result cache.
func (p Paths) CNICacheDir() string { return p.join("cni", "cache") }

// NodeNetwork records the pod network (range, cluster range, MTU) the
// node's runtime last set up, for commands that run without a server.
func (p Paths) NodeNetwork() string { return p.join("cni", "node-network.json") }

// IPAMDir holds host-local's IP reservations.
func (p Paths) IPAMDir() string { return p.join("cni", "networks") }

// RuntimeRoot is the state dir (--root) of the OCI runtime handler.
func (p Paths) RuntimeRoot(handler string) string { return p.join("oci", handler) }

// Pods holds one directory per sandbox.
func (p Paths) Pods() string { return p.join("pods") }

// Sandbox is the directory of one sandbox.
func (p Paths) Sandbox(id string) string { return p.join("pods", id) }

// WarmSandboxes holds the sandboxes made ahead of any pod; taking one for
// a pod moves its directory to Sandbox(id).
func (p Paths) WarmSandboxes() string { return p.join("warm") }

// WarmSandbox is the directory of one warm sandbox.
func (p Paths) WarmSandbox(id string) string { return p.join("warm", id) }

// Container is the directory (and OCI bundle) of one container.
func (p Paths) Container(sandboxID, containerID string) string {
	return p.join("pods", sandboxID, "containers", containerID)
}

// PodLogs is the log directory of one pod, named as the kubelet names /var/log/pods entries.
func (p Paths) PodLogs(namespace, name, uid string) string {
	return p.join("logs", namespace+"_"+name+"_"+uid)
}

// Storage holds the local-path provisioner's volumes, one directory per
// claim (pvc-<uid>_<namespace>_<name>), as k3s's <data-dir>/storage.
func (p Paths) Storage() string { return p.join("storage") }

// PauseBinary is where the infra binary is installed.
func (p Paths) PauseBinary() string { return p.join("bin", "pause") }

// NodeCredentials holds the node's kubeconfig, client and serving certificates.
func (p Paths) NodeCredentials() string { return p.join("node") }

// PKI holds the cluster's CA and certificates.
func (p Paths) PKI() string { return p.join("pki") }

// Etcd is the embedded etcd's data directory.
func (p Paths) Etcd() string { return p.join("etcd") }

// AdminKubeconfig is the kubeconfig with admin credentials.
func (p Paths) AdminKubeconfig() string { return p.join("admin.kubeconfig") }

// NodeNet is the state of the node's share of the pod network between
// nodes (internal/nodenet): the VTEP MAC, which survives restarts and
// resets so peers' entries stay valid, and the records `peapod net` reads.
func (p Paths) NodeNet() string { return p.join("nodenet") }
