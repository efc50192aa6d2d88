package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/runtime"
)

// nodeFlags are the settings of the node runtime, shared by every command
// that touches this node.
type nodeFlags struct {
	cfg      config.Node
	mirrors  []string
	runtimes []string
}

func (f *nodeFlags) register(fs *pflag.FlagSet) {
	f.cfg = config.Defaults()
	fs.StringVar(&f.cfg.DataDir, "data-dir", f.cfg.DataDir, "directory holding all of peapod's state")
	fs.StringVar(&f.cfg.NodeName, "node-name", "", "this node's name (default: the hostname)")
	fs.StringVar(&f.cfg.BridgeName, "bridge", f.cfg.BridgeName, "Linux bridge the pods attach to")
	fs.StringVar(&f.cfg.PodCIDR, "pod-cidr", "", "address range of this node's pods; a node of a cluster gets it from the server and refuses to start if this disagrees; "+
		"without a server (pod run, reset) the default is the range the node last used, else "+runtime.DefaultStandalonePodCIDR)
	fs.StringVar(&f.cfg.AgentListen, "agent-listen", f.cfg.AgentListen, "address of the node agent's logs/exec/port-forward server")
	fs.StringVar(&f.cfg.CgroupParent, "cgroup-parent", f.cfg.CgroupParent, "cgroup, relative to each hierarchy's root, under which every pod's cgroup is made (one per node when several share a machine)")
	fs.StringVar(&f.cfg.DefaultRuntime, "default-runtime", f.cfg.DefaultRuntime, "runtime handler for pods without a RuntimeClass")
	fs.StringArrayVar(&f.runtimes, "runtime", nil, "extra runtime handler as NAME=BINARY (runc and crun are built in)")
	fs.StringArrayVar(&f.mirrors, "registry-mirror", nil, "registry mirror as REGISTRY=ENDPOINT, e.g. docker.io=http://127.0.0.1:5000")
	fs.StringSliceVar(&f.cfg.InsecureRegistries, "insecure-registry", nil, "registry host:port that may be reached over plain HTTP")
	fs.IntVar(&f.cfg.WarmSandboxes, "warm-sandboxes", f.cfg.WarmSandboxes, "sandboxes (netns, pause, cgroup, CNI attachment) kept made ahead of any pod, so pods start faster; 0 turns this off")
}

// registerNodeIP adds --node-ip, for the commands that run a node of a
// cluster (server, agent).
func (f *nodeFlags) registerNodeIP(fs *pflag.FlagSet) {
	fs.StringVar(&f.cfg.NodeIP, "node-ip", "", "this node's IPv4 address, configured on this machine: its InternalIP, pods' hostIP, hostNetwork pods' IP and where its peers send pod traffic (default: the address of the default route's interface)")
}

// standaloneNode returns the configuration the flags describe, with the
// pod network of a node run without a server (see
// runtime.StandaloneNetwork).
func (f *nodeFlags) standaloneNode() (config.Node, error) {
	cfg, err := f.node()
	if err != nil {
		return cfg, err
	}
	return runtime.StandaloneNetwork(cfg)
}

// node returns the configuration the flags describe.
func (f *nodeFlags) node() (config.Node, error) {
	cfg := f.cfg
	if cfg.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("--node-name not given and no hostname: %w", err)
		}
		cfg.NodeName = strings.ToLower(host)
	}
	cfg.Runtimes = map[string]string{}
	for k, v := range config.Defaults().Runtimes {
		cfg.Runtimes[k] = v
	}
	for _, r := range f.runtimes {
		name, bin, ok := strings.Cut(r, "=")
		if !ok || name == "" || bin == "" {
			return cfg, fmt.Errorf("--runtime %q: want NAME=BINARY", r)
		}
		cfg.Runtimes[name] = bin
	}
	if len(f.mirrors) > 0 {
		cfg.RegistryMirrors = map[string][]string{}
	}
	for _, m := range f.mirrors {
		reg, endpoint, ok := strings.Cut(m, "=")
		if !ok || reg == "" || endpoint == "" {
			return cfg, fmt.Errorf("--registry-mirror %q: want REGISTRY=ENDPOINT", m)
		}
		cfg.RegistryMirrors[reg] = append(cfg.RegistryMirrors[reg], endpoint)
	}
	return cfg, cfg.Validate()
}
