package network

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/vishvananda/netlink"
)

// Manager attaches pods to the node's CNI network. It holds no per-pod
// state (libcni's cache in CacheDir does), and its methods may be called
// concurrently for different pods. Every method acts in the calling
// thread's network namespace, which for peapod is the host's (tests call
// them inside netns.Do on a throwaway "host" namespace).
type Manager struct {
	cfg  Config
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList // the config in use, as loaded from confFile
	// noPorts is peapod's default list without portmap, used for pods
	// without host ports; nil when a user config is in use.
	noPorts   *libcni.NetworkConfigList
	loopback  *libcni.NetworkConfigList // legacy; see loopbackConfList
	confFile  string
	isDefault bool

	// masqMu serialises ensureClusterMasquerade so concurrent Setups do
	// not both append the POSTROUTING jump; masqDone records that it
	// succeeded, so it runs once per Manager (and again after a failure).
	masqMu   sync.Mutex
	masqDone bool
}

// New checks cfg, fills in defaults and loads the network config: the
// first CNI config in ConfDir in lexical order, or, if ConfDir holds none
// but peapod's own, peapod's default conflist, which New (re)writes at
// ConfDir/DefaultConfFile whenever its content would change. The choice is
// made once; a config added later takes effect with the next New.
// New does no network I/O.
func New(cfg Config) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	files, err := confFiles(cfg.ConfDir)
	if err != nil {
		return nil, err
	}
	def := filepath.Join(cfg.ConfDir, DefaultConfFile)
	path, isDefault := chooseConfFile(files, def)
	var noPorts *libcni.NetworkConfigList
	if isDefault {
		data, err := defaultConfList(cfg, true)
		if err != nil {
			return nil, err
		}
		if err := ensureDefaultConfList(def, data); err != nil {
			return nil, err
		}
		trimmed, err := defaultConfList(cfg, false)
		if err != nil {
			return nil, err
		}
		if noPorts, err = libcni.NetworkConfFromBytes(trimmed); err != nil {
			return nil, fmt.Errorf("parse default conflist without portmap: %w", err)
		}
	}
	list, err := loadConfList(path)
	if err != nil {
		return nil, err
	}
	lo, err := libcni.NetworkConfFromBytes([]byte(loopbackConfList))
	if err != nil {
		return nil, fmt.Errorf("parse loopback config: %w", err)
	}
	return &Manager{
		cfg:       cfg,
		cni:       libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, nil),
		list:      list,
		noPorts:   noPorts,
		loopback:  lo,
		confFile:  path,
		isDefault: isDefault,
	}, nil
}

// NetworkName is the name of the CNI network pods are attached to.
func (m *Manager) NetworkName() string { return m.list.Name }

// PodAgnostic reports whether a pod without host ports gets the same
// attachment whatever the pod: true with peapod's default conflist, whose
// plugins use nothing of the pod but its sandbox ID. A user's conflist may
// read the pod's K8S_POD_* arguments, so it is never assumed to be.
func (m *Manager) PodAgnostic() bool { return m.isDefault }

// ConfigFile is the path of the CNI config in use: the user's, if one is
// present in ConfDir, else peapod's default.
func (m *Manager) ConfigFile() string { return m.confFile }

// listFor is the conflist ADD runs for a pod: peapod's default without
// portmap when the pod has no host ports, else the config in use.
func (m *Manager) listFor(hasPorts bool) *libcni.NetworkConfigList {
	if m.noPorts != nil && !hasPorts {
		return m.noPorts
	}
	return m.list
}

// addedList returns the conflist and runtime config that CHECK and DEL
// must use for the pod whose current invocation is rt: the ones its ADD
// used, as libcni cached them (the config bytes and the CNI_ARGS and
// capability args, e.g. port mappings), with rt's netns. Without a usable
// cache entry (ADD failed or never ran, or DEL already ran) it falls back
// to the rule ADD follows, listFor(hasPorts), and rt.
func (m *Manager) addedList(rt *libcni.RuntimeConf, hasPorts bool) (*libcni.NetworkConfigList, *libcni.RuntimeConf) {
	cached, crt, err := m.cni.GetNetworkListCachedConfig(m.list, rt)
	if err != nil || cached == nil || crt == nil {
		return m.listFor(hasPorts), rt
	}
	crt.NetNS = rt.NetNS
	for _, l := range []*libcni.NetworkConfigList{m.list, m.noPorts} {
		if l != nil && string(l.Bytes) == string(cached) {
			return l, crt
		}
	}
	// Cached by a Manager with another config (e.g. a changed PodCIDR):
	// the plugins must see what ADD gave them to release it.
	l, err := libcni.NetworkConfFromBytes(cached)
	if err != nil || l.Name != m.list.Name {
		return m.listFor(hasPorts), rt
	}
	return l, crt
}

// RemoveNodeNetwork removes what Setup made for the node rather than for
// one pod: the bridge and this network's masquerade rules. Call it only
// when no pod of this network remains (tests, and taking a node apart).
// Missing pieces are fine.
func (m *Manager) RemoveNodeNetwork(ctx context.Context) error {
	var errs []error
	if m.cfg.ClusterCIDR != "" {
		if err := removeClusterMasquerade(ctx, m.cfg.PodCIDR, m.cfg.ClusterCIDR); err != nil {
			errs = append(errs, fmt.Errorf("remove masquerade rules: %w", err))
		}
	}
	if link, err := netlink.LinkByName(m.cfg.BridgeName); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("remove bridge %s: %w", m.cfg.BridgeName, err))
		}
	}
	return errors.Join(errs...)
}

// RemoveStaleRange undoes what Setup made for the node on a pod range it
// no longer uses: the bridge's gateway address within oldPodCIDR (the
// bridge plugin refuses to give the bridge a second IPv4 address, so the
// new range's pods could not start) and the masquerade jump of
// oldPodCIDR within oldClusterCIDR. Call it when the node's range changed
// (a Node deleted and registered again gets a new one), before the first
// Setup on the new range; pods still on the old range lose their gateway,
// as their addresses are no longer this node's. Missing pieces are fine.
func (m *Manager) RemoveStaleRange(ctx context.Context, oldPodCIDR, oldClusterCIDR string) error {
	old, err := parseSubnet("old PodCIDR", oldPodCIDR)
	if err != nil {
		return err
	}
	var errs []error
	if oldClusterCIDR != "" {
		if err := removeClusterMasquerade(ctx, oldPodCIDR, oldClusterCIDR); err != nil {
			errs = append(errs, fmt.Errorf("remove masquerade rules of %s: %w", oldPodCIDR, err))
		}
	}
	if oldPodCIDR == m.cfg.PodCIDR {
		return errors.Join(errs...) // the gateway is the current range's
	}
	link, err := netlink.LinkByName(m.cfg.BridgeName)
	if err != nil {
		return errors.Join(errs...) // no bridge, no address
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list addresses of bridge %s: %w", m.cfg.BridgeName, err))...)
	}
	for _, a := range addrs {
		if !old.Contains(a.IP) {
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil {
			errs = append(errs, fmt.Errorf("remove %s from bridge %s: %w", a.IPNet, m.cfg.BridgeName, err))
		}
	}
	return errors.Join(errs...)
}
