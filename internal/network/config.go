package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/containernetworking/cni/libcni"
)

// Defaults applied by New to an unset Config field.
const (
	DefaultBridgeName = "peapod0"
	DefaultPodCIDR    = "10.88.0.0/16"
	// DefaultNetworkName is the name of peapod's default conflist.
	DefaultNetworkName = "peapod"
	// DefaultConfFile is the file name of the default conflist in ConfDir.
	DefaultConfFile = "10-peapod.conflist"
)

// DefaultBinDirs are searched for CNI plugin binaries when Config.BinDirs
// is empty.
var DefaultBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// confExtensions are the file kinds libcni loads, as containerd does.
var confExtensions = []string{".conflist", ".conf", ".json"}

// Config configures a Manager. Directories are derived from the data dir
// by internal/config.
type Config struct {
	ConfDir     string   // <data-dir>/cni/net.d; peapod's default conflist is written here if it holds no config
	BinDirs     []string // plugin search path; default DefaultBinDirs
	CacheDir    string   // <data-dir>/cni/cache (libcni result cache)
	IPAMDataDir string   // <data-dir>/cni/networks (host-local "dataDir")
	BridgeName  string   // default DefaultBridgeName
	PodCIDR     string   // this node's pod subnet; default DefaultPodCIDR; IPv4
	// ClusterCIDR, if set, is the whole pod network (all nodes' PodCIDRs)
	// and must contain PodCIDR. Pod traffic to it is not masqueraded;
	// everything else leaving the pod is. Unset, the bridge plugin's own
	// ipMasq is used, which exempts only PodCIDR.
	ClusterCIDR string
	MTU         int // bridge and veth MTU; 0 = kernel/plugin default
}

// withDefaults returns cfg with defaults filled in, or an error naming the
// first invalid field. It is pure.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.ConfDir == "" {
		return cfg, errors.New("network config: ConfDir is required")
	}
	if cfg.CacheDir == "" {
		return cfg, errors.New("network config: CacheDir is required")
	}
	if cfg.IPAMDataDir == "" {
		return cfg, errors.New("network config: IPAMDataDir is required")
	}
	if len(cfg.BinDirs) == 0 {
		cfg.BinDirs = append([]string(nil), DefaultBinDirs...)
	}
	if cfg.BridgeName == "" {
		cfg.BridgeName = DefaultBridgeName
	}
	if len(cfg.BridgeName) > 15 {
		return cfg, fmt.Errorf("network config: BridgeName %q is longer than 15 characters", cfg.BridgeName)
	}
	if cfg.PodCIDR == "" {
		cfg.PodCIDR = DefaultPodCIDR
	}
	pod, err := parseSubnet("PodCIDR", cfg.PodCIDR)
	if err != nil {
		return cfg, err
	}
	if ones, _ := pod.Mask.Size(); ones > 30 {
		return cfg, fmt.Errorf("network config: PodCIDR %q is too small for pods (need /30 or larger)", cfg.PodCIDR)
	}
	if cfg.ClusterCIDR != "" {
		cluster, err := parseSubnet("ClusterCIDR", cfg.ClusterCIDR)
		if err != nil {
			return cfg, err
		}
		podOnes, _ := pod.Mask.Size()
		clusterOnes, _ := cluster.Mask.Size()
		if !cluster.Contains(pod.IP) || clusterOnes > podOnes {
			return cfg, fmt.Errorf("network config: ClusterCIDR %q does not contain PodCIDR %q", cfg.ClusterCIDR, cfg.PodCIDR)
		}
	}
	if cfg.MTU < 0 || (cfg.MTU > 0 && cfg.MTU < 576) || cfg.MTU > 65535 {
		return cfg, fmt.Errorf("network config: MTU %d out of range (0, or 576-65535)", cfg.MTU)
	}
	return cfg, nil
}

// parseSubnet parses an IPv4 network address in CIDR form, naming the
// field in its errors.
func parseSubnet(field, s string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, fmt.Errorf("network config: %s %q is not a valid CIDR (want e.g. %q): %w", field, s, DefaultPodCIDR, err)
	}
	if ip.To4() == nil {
		return nil, fmt.Errorf("network config: %s %q is not IPv4 (only IPv4 pod networks are supported)", field, s)
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("network config: %s %q has host bits set (did you mean %q?)", field, s, n.String())
	}
	return n, nil
}

// defaultConfList renders peapod's default conflist for a defaulted
// Config: bridge with host-local IPAM, then, if withPortmap, portmap. With
// ClusterCIDR set, the bridge's ipMasq is off and Manager installs its own
// masquerade rule. The file in ConfDir is always the full list; the list
// without portmap is the one Setup uses for pods without host ports.
func defaultConfList(cfg Config, withPortmap bool) ([]byte, error) {
	bridge := map[string]any{
		"type":        "bridge",
		"bridge":      cfg.BridgeName,
		"isGateway":   true,
		"ipMasq":      cfg.ClusterCIDR == "",
		"hairpinMode": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": cfg.PodCIDR}}},
			"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
			"dataDir": cfg.IPAMDataDir,
		},
	}
	if cfg.MTU > 0 {
		bridge["mtu"] = cfg.MTU
	}
	plugins := []any{bridge}
	if withPortmap {
		plugins = append(plugins, map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		})
	}
	list := map[string]any{
		"cniVersion": "1.0.0",
		"name":       DefaultNetworkName,
		"plugins":    plugins,
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("render default conflist: %w", err)
	}
	return append(b, '\n'), nil
}

// loopbackConfList is the loopback network earlier peapod versions ran
// through the loopback plugin before the pod network, cached under its own
// name as containerd does. Setup now brings lo up itself; Teardown still
// deletes this network for sandboxes whose cache holds it.
const loopbackConfList = `{"cniVersion":"1.0.0","name":"cni-loopback","plugins":[{"type":"loopback"}]}`

// confFiles lists the CNI config files in dir, sorted lexically.
func confFiles(dir string) ([]string, error) {
	files, err := libcni.ConfFiles(dir, confExtensions)
	if err != nil {
		return nil, fmt.Errorf("list CNI configs in %s: %w", dir, err)
	}
	sort.Strings(files)
	return files, nil
}

// chooseConfFile picks the config to use from sorted files: the first one
// that is not peapod's own default, else the default (def). It is pure.
func chooseConfFile(files []string, def string) (path string, isDefault bool) {
	for _, f := range files {
		if f != def {
			return f, false
		}
	}
	return def, true
}

// ensureDefaultConfList writes data to path (0644, atomically by rename)
// unless the file already holds exactly data.
func ensureDefaultConfList(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create CNI conf dir %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".peapod-*.tmp")
	if err != nil {
		return fmt.Errorf("write default conflist %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write default conflist %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write default conflist %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write default conflist %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write default conflist %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write default conflist %s: %w", path, err)
	}
	return nil
}

// loadConfList parses a .conflist, or a single-plugin .conf/.json wrapped
// into a list.
func loadConfList(path string) (*libcni.NetworkConfigList, error) {
	if filepath.Ext(path) == ".conflist" {
		l, err := libcni.NetworkConfFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("load CNI conflist %s: %w", path, err)
		}
		return l, nil
	}
	// Single-plugin .conf files predate conflists; users still have them.
	//lint:ignore SA1019 libcni's only reader of a .conf file
	c, err := libcni.ConfFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CNI config %s: %w", path, err)
	}
	//lint:ignore SA1019 as above
	l, err := libcni.ConfListFromConf(c)
	if err != nil {
		return nil, fmt.Errorf("load CNI config %s: %w", path, err)
	}
	return l, nil
}

// usesIPMasq reports whether a plugin of list has "ipMasq": true (bridge,
// ptp), i.e. whether the plugin installed per-pod masquerade rules that
// its DEL may leave behind. Unparsable plugin configs count as true. It is
// pure.
func usesIPMasq(list *libcni.NetworkConfigList) bool {
	for _, p := range list.Plugins {
		var c struct {
			IPMasq bool `json:"ipMasq"`
		}
		if err := json.Unmarshal(p.Bytes, &c); err != nil || c.IPMasq {
			return true
		}
	}
	return false
}
