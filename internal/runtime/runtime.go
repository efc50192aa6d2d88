package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"sync"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/image"
	"github.com/peapod/peapod/internal/network"
	"github.com/peapod/peapod/internal/nodeaddr"
	"github.com/peapod/peapod/internal/runtime/oci"
	"github.com/peapod/peapod/internal/runtime/pause"
	"github.com/peapod/peapod/internal/runtime/podfiles"
	"github.com/peapod/peapod/internal/runtime/spec"
	"github.com/peapod/peapod/internal/runtime/userns"
	"github.com/peapod/peapod/internal/volume"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrNotFound: no such sandbox or container.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the pod spec cannot be run as given.
	ErrInvalid = errors.New("invalid pod spec")
	// ErrRuntimeUnavailable: the RuntimeClass handler is unknown or cannot run here.
	ErrRuntimeUnavailable = errors.New("runtime handler unavailable")
	// ErrSandboxLost: the sandbox's pause process is gone.
	ErrSandboxLost = errors.New("sandbox lost")
)

// Runtime runs pods on this node. It is safe for concurrent use; calls for
// different sandboxes proceed in parallel, calls for one sandbox are
// serialized.
type Runtime struct {
	*View
	log     *slog.Logger
	images  *image.Store
	network *network.Manager
	volumes *volume.Manager

	handlers map[string]*oci.Runtime
	// unusable holds why a configured handler cannot run on this host.
	unusable map[string]error

	hostResolv []byte
	sources    volume.Sources
	// nodeIP is the node's address (see NodeIP).
	nodeIP string
	// userns hands pods with hostUsers: false their ID ranges.
	userns *userns.Allocator
	// selinux says whether SELinux labels apply here, and their defaults.
	selinux selinuxHost
	// serviceEnv computes pods' Service environment variables (WithServiceEnv).
	serviceEnv ServiceEnvFunc
	// hostCaps bounds what privileged containers get: what peapod holds.
	hostCaps []string

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per sandbox
	// owner maps a container ID to its sandbox ID.
	owner map[string]string
	// byPod maps a pod UID to its sandboxes' IDs, so a pod's sync reads
	// only its own sandboxes, not the whole node's.
	byPod map[string][]string

	// warm is the pool of sandboxes made ahead of pods; nil when off.
	warm *warmPool
}

// New prepares the node: data directories, the pause binary, the CNI
// configuration, the image store (importing air-gapped images) and the OCI
// runtime handlers. Handlers that cannot run here are kept with the reason,
// which pods asking for them receive.
func New(ctx context.Context, cfg config.Node, logger *slog.Logger, opts ...Option) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PodCIDR == "" {
		// A node of a cluster gets its range from the server; a command
		// without one resolves it with StandaloneNetwork.
		return nil, errors.New("node runtime: no pod range (PodCIDR) given")
	}
	if logger == nil {
		logger = slog.Default()
	}
	paths := cfg.Paths()
	for _, dir := range []string{paths.Pods(), paths.AirgapImages(), paths.CNIConfDir(), paths.IPAMDir()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	if err := pause.Install(paths.PauseBinary()); err != nil {
		return nil, fmt.Errorf("install pause binary: %w", err)
	}
	podNet, err := network.New(network.Config{
		ConfDir:     paths.CNIConfDir(),
		CacheDir:    paths.CNICacheDir(),
		IPAMDataDir: paths.IPAMDir(),
		BridgeName:  cfg.BridgeName,
		PodCIDR:     cfg.PodCIDR,
		// One shared masquerade rule for the whole pod network instead of
		// the bridge plugin's per-pod iptables chain: pod start is faster,
		// and traffic between pods on other nodes will stay un-NATed.
		ClusterCIDR: clusterCIDR(cfg),
		MTU:         cfg.MTU,
	})
	if err != nil {
		return nil, fmt.Errorf("set up pod network: %w", err)
	}
	if err := recordNodeNetwork(ctx, paths, podNet, NodeNetwork{PodCIDR: cfg.PodCIDR, ClusterCIDR: clusterCIDR(cfg), MTU: cfg.MTU}, logger); err != nil {
		return nil, err
	}
	images, err := image.NewStore(image.Options{
		Root:     paths.ImageStore(),
		Mirrors:  cfg.RegistryMirrors,
		Insecure: cfg.InsecureRegistries,
		Logger:   logger,
	})
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	if err := images.ImportDir(ctx, paths.AirgapImages()); err != nil {
		return nil, fmt.Errorf("import air-gapped images: %w", err)
	}
	// The kubelet's --resolv-conf: systemd-resolved's upstreams when it
	// runs (its /etc/resolv.conf names a stub pods cannot reach).
	hostResolvPath := podfiles.NodeResolvConfPath()
	hostResolv, err := os.ReadFile(hostResolvPath)
	if err != nil {
		logger.Warn("no host resolv.conf; pods with dnsPolicy Default get an empty one", "path", hostResolvPath, "err", err)
	}
	if mnt := slowCgroupMoves(); mnt != "" {
		logger.Info("container starts wait for an RCU grace period on each cgroup move; "+
			"to avoid it: mount -o remount,favordynmods "+mnt, "cgroup2", mnt)
	}
	hostCaps, err := spec.CurrentCapabilities()
	if err != nil {
		return nil, fmt.Errorf("read peapod's capabilities: %w", err)
	}
	nodeAddr, err := nodeaddr.Resolve(cfg.NodeIP)
	if err != nil {
		return nil, err
	}
	nodeIP := nodeAddr.IP.String()
	r := &Runtime{
		hostCaps: hostCaps,
		View:     NewView(cfg),
		log:      logger,
		images:   images,
		network:  podNet,

		handlers:   map[string]*oci.Runtime{},
		unusable:   map[string]error{},
		hostResolv: hostResolv,
		nodeIP:     nodeIP,
		userns:     userns.NewAllocator(mrand.IntN),
		selinux:    detectSELinux(),
		locks:      map[string]*sync.Mutex{},
		owner:      map[string]string{},
		byPod:      map[string][]string{},
	}
	if cfg.WarmSandboxes > 0 {
		r.warm = newWarmPool(cfg.WarmSandboxes)
	}
	for _, opt := range opts {
		opt(r)
	}
	r.volumes = volume.NewManager(logger, volume.WithSources(r.sources), volume.WithNodeAllocatable(r.NodeCapacity))
	for handler, binary := range cfg.Runtimes {
		path, err := exec.LookPath(binary)
		if err != nil {
			r.unusable[handler] = fmt.Errorf("runtime handler %q: binary %q not found: %w", handler, binary, err)
			continue
		}
		if err := oci.CheckUsable(handler, path); err != nil {
			r.unusable[handler] = err
			logger.Warn("runtime handler unavailable", "handler", handler, "reason", err)
			continue
		}
		r.handlers[handler] = &oci.Runtime{Handler: handler, Binary: path, Root: paths.RuntimeRoot(handler), Shim: paths.PauseBinary()}
	}
	if _, ok := r.handlers[cfg.DefaultRuntime]; !ok {
		return nil, fmt.Errorf("default runtime handler %q: %w", cfg.DefaultRuntime, r.handlerError(cfg.DefaultRuntime))
	}
	if err := r.indexContainers(); err != nil {
		return nil, err
	}
	return r, nil
}

// Images is the node's image store.
func (r *Runtime) Images() *image.Store { return r.images }

// Network is the node's pod network.
func (r *Runtime) Network() *network.Manager { return r.network }

// Handlers lists the runtime handlers that can run pods here.
func (r *Runtime) Handlers() []string {
	var names []string
	for name := range r.handlers {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Handler returns the OCI runtime for a RuntimeClass handler ("" = default).
func (r *Runtime) Handler(name string) (*oci.Runtime, error) {
	if name == "" {
		name = r.cfg.DefaultRuntime
	}
	if h, ok := r.handlers[name]; ok {
		return h, nil
	}
	return nil, r.handlerError(name)
}

func (r *Runtime) handlerError(name string) error {
	if err, ok := r.unusable[name]; ok {
		return fmt.Errorf("%w: %w", ErrRuntimeUnavailable, err)
	}
	return fmt.Errorf("%w: no runtime handler %q is configured", ErrRuntimeUnavailable, name)
}

// lockSandbox serializes the calls that change one sandbox.
func (r *Runtime) lockSandbox(id string) func() {
	r.mu.Lock()
	l, ok := r.locks[id]
	if !ok {
		l = &sync.Mutex{}
		r.locks[id] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (r *Runtime) forgetSandbox(id string) {
	r.mu.Lock()
	delete(r.locks, id)
	for uid, ids := range r.byPod {
		for i, sb := range ids {
			if sb == id {
				r.byPod[uid] = append(ids[:i:i], ids[i+1:]...)
			}
		}
		if len(r.byPod[uid]) == 0 {
			delete(r.byPod, uid)
			// The pod's ID range goes with its last sandbox, as the
			// kubelet releases it with the pod.
			r.userns.Release(uid)
		}
	}
	for c, s := range r.owner {
		if s == id {
			delete(r.owner, c)
		}
	}
	r.mu.Unlock()
}

// indexContainers rebuilds the container → sandbox index from disk.
func (r *Runtime) indexContainers() error {
	ids, err := r.sandboxIDs()
	if err != nil {
		return err
	}
	for _, sb := range ids {
		if rec, err := r.loadSandbox(sb); err == nil && rec.Pod != nil {
			uid := string(rec.Pod.UID)
			r.byPod[uid] = append(r.byPod[uid], sb)
			if rec.UserNS != nil {
				// Restart-safe: the pod keeps its ID range, and no other
				// pod is given it.
				if err := r.userns.Record(uid, *rec.UserNS); err != nil {
					r.log.Warn("user namespace range on disk", "sandbox", sb, "err", err)
				}
			}
		}
		cids, err := r.containerIDs(sb)
		if err != nil {
			return err
		}
		for _, c := range cids {
			r.owner[c] = sb
		}
	}
	return nil
}

// PodSandboxes reports the sandboxes of one pod on this node, oldest first.
func (r *Runtime) PodSandboxes(ctx context.Context, podUID string) ([]*SandboxStatus, error) {
	r.mu.Lock()
	ids := append([]string(nil), r.byPod[podUID]...)
	r.mu.Unlock()
	var out []*SandboxStatus
	for _, id := range ids {
		st, err := r.SandboxStatus(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

func (r *Runtime) sandboxOf(containerID string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, ok := r.owner[containerID]
	if !ok {
		return "", fmt.Errorf("container %s: %w", containerID, ErrNotFound)
	}
	return sb, nil
}

func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("read random: %v", err)) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func clusterCIDR(cfg config.Node) string {
	if cfg.ClusterCIDR != "" {
		return cfg.ClusterCIDR
	}
	return cfg.PodCIDR
}
