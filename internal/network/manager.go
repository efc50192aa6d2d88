package network

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/containernetworking/cni/libcni"
)

// Manager attaches pods to the node's CNI network. It holds no per-pod
// state (libcni's cache in CacheDir does), and its methods may be called
// concurrently for different pods. Every method acts in the calling
// thread's network namespace, which for peapod is the host's (tests call
// them inside netns.Do on a throwaway "host" namespace).
type Manager struct {
	cfg       Config
	cni       *libcni.CNIConfig
	list      *libcni.NetworkConfigList
	loopback  *libcni.NetworkConfigList
	confFile  string
	isDefault bool

	// masqMu serialises ensureClusterMasquerade so concurrent Setups do
	// not both append the POSTROUTING jump.
	masqMu sync.Mutex
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
	if isDefault {
		data, err := defaultConfList(cfg)
		if err != nil {
			return nil, err
		}
		if err := ensureDefaultConfList(def, data); err != nil {
			return nil, err
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
		loopback:  lo,
		confFile:  path,
		isDefault: isDefault,
	}, nil
}

// NetworkName is the name of the CNI network pods are attached to.
func (m *Manager) NetworkName() string { return m.list.Name }

// ConfigFile is the path of the CNI config in use: the user's, if one is
// present in ConfDir, else peapod's default.
func (m *Manager) ConfigFile() string { return m.confFile }
