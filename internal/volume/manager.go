package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Plugin directory names under <podDir>/volumes, as the kubelet names them.
const (
	PluginEmptyDir    = "kubernetes.io~empty-dir"
	PluginConfigMap   = "kubernetes.io~configmap"
	PluginSecret      = "kubernetes.io~secret"
	PluginDownwardAPI = "kubernetes.io~downward-api"
	PluginProjected   = "kubernetes.io~projected"
)

// ErrNotFound is what a Sources implementation wraps when an object does
// not exist (an API NotFound error is recognised too), so that optional
// configMap and secret volumes can be set up empty.
var ErrNotFound = errors.New("not found")

// Sources fetches the API objects configMap, secret and projected volumes
// are made from. Implementations must be safe for concurrent use.
type Sources interface {
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// Token returns a service-account token (status.token of the answer)
	// for req, a TokenRequest for service account namespace/serviceAccount
	// (what the kubelet sends: audiences, expirationSeconds and a
	// boundObjectRef to the pod). The node agent implements it as
	// client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx,
	// serviceAccount, req, metav1.CreateOptions{}) with its node
	// credentials. Tokens that are JWTs are reused until 80% of their
	// lifetime (from their iat and exp claims) has passed.
	Token(ctx context.Context, namespace, serviceAccount string, req *authenticationv1.TokenRequest) (string, error)
	// PersistentVolumeClaim and PersistentVolume read a pod's claim and
	// the volume bound to it (persistentVolumeClaim volumes).
	PersistentVolumeClaim(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error)
	PersistentVolume(ctx context.Context, name string) (*corev1.PersistentVolume, error)
}

// Manager sets up and tears down pod volumes. It holds no per-pod state (all
// of it is on disk under the pod directory), so one Manager serves every pod
// and is safe for concurrent use on different pods.
type Manager struct {
	logger  *slog.Logger
	sources Sources
	now     func() time.Time
	// allocatable is the node's allocatable, which a downward API
	// resourceFieldRef to a limit the container does not set reads.
	allocatable func() corev1.ResourceList
}

// Option configures a Manager.
type Option func(*Manager)

// WithSources makes the Manager serve configMap and secret volumes (and
// their projected forms) from s. Without it those volumes are an error.
func WithSources(s Sources) Option { return func(m *Manager) { m.sources = s } }

// WithClock replaces time.Now for token rotation decisions (tests).
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// WithNodeAllocatable tells the Manager the node's allocatable, which a
// downward API resourceFieldRef to a limit the container does not set
// reads, as the kubelet substitutes it. Without it the machine's CPUs,
// memory and root filesystem stand in.
func WithNodeAllocatable(f func() corev1.ResourceList) Option {
	return func(m *Manager) { m.allocatable = f }
}

// NewManager returns a Manager logging to logger (slog.Default() if nil).
func NewManager(logger *slog.Logger, opts ...Option) *Manager {
	if logger == nil {
		logger = slog.Default()
	}
	m := &Manager{logger: logger, now: time.Now, allocatable: hostCapacity}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Prepared is the result of Setup.
type Prepared struct {
	// Paths maps a volume name to the host path to bind into containers.
	Paths map[string]string
	// EmptyDirLimits maps the name of a disk-backed emptyDir with a
	// sizeLimit to that limit in bytes; eviction enforces it.
	EmptyDirLimits map[string]int64
}

// undoStack collects the undo steps of one Setup call.
type undoStack []func() error

func (u *undoStack) push(f func() error) { *u = append(*u, f) }

func (u undoStack) run() error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		errs = append(errs, u[i]())
	}
	return errors.Join(errs...)
}

// Setup prepares every volume of pod under podDir/volumes and returns the
// host paths to bind. podDir must exist. Setup is idempotent: volumes that
// already exist are kept with their contents (a mounted tmpfs stays
// mounted), so it is safe to call again after a restart. On error, what
// this call created is removed again and the error names the volume's field
// path, e.g. "spec.volumes[2].nfs: not supported yet".
func (m *Manager) Setup(ctx context.Context, podDir string, pod *corev1.Pod) (_ *Prepared, retErr error) {
	prep := &Prepared{Paths: map[string]string{}, EmptyDirLimits: map[string]int64{}}
	var undo undoStack
	defer func() {
		if retErr != nil {
			if err := undo.run(); err != nil {
				m.logger.Warn("volume setup rollback failed", "pod", podKey(pod), "err", err)
			}
		}
	}()
	if err := validateNames(pod); err != nil {
		return nil, err
	}
	if NeedsSharedVolumes(pod) {
		bound, err := ShareVolumes(podDir)
		if err != nil {
			return nil, fmt.Errorf("set up volumes of pod %s: %w", podKey(pod), err)
		}
		if bound {
			undo.push(func() error { return unmount(filepath.Join(podDir, "volumes")) })
		}
	}
	for i := range pod.Spec.Volumes {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("set up volumes of pod %s: %w", podKey(pod), err)
		}
		v := &pod.Spec.Volumes[i]
		fld := fmt.Sprintf("spec.volumes[%d]", i)
		path, err := m.setupOne(ctx, podDir, pod, v, fld, prep, &undo)
		if err != nil {
			return nil, fmt.Errorf("set up volume %q of pod %s: %w", v.Name, podKey(pod), err)
		}
		prep.Paths[v.Name] = path
		m.logger.Debug("volume ready", "pod", podKey(pod), "volume", v.Name, "path", path)
	}
	return prep, nil
}

func (m *Manager) setupOne(ctx context.Context, podDir string, pod *corev1.Pod, v *corev1.Volume, fld string, prep *Prepared, undo *undoStack) (string, error) {
	switch {
	case v.EmptyDir != nil:
		return m.setupEmptyDir(podDir, pod, v, fld, prep, undo)
	case v.HostPath != nil:
		return setupHostPath(v.HostPath, fld)
	case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
		return m.setupProjection(ctx, podDir, pod, v, fld, undo)
	case v.PersistentVolumeClaim != nil:
		return m.setupClaim(ctx, pod, v.PersistentVolumeClaim, fld)
	}
	return "", unsupported(v, fld)
}

// unsupported names the volume type set in v, by its JSON field name.
func unsupported(v *corev1.Volume, fld string) error {
	rv := reflect.ValueOf(v.VolumeSource)
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		if f := rv.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			return fmt.Errorf("%s.%s: not supported yet", fld, name)
		}
	}
	return fmt.Errorf("%s: must specify a volume type", fld)
}

// validateNames rejects volume names that are not DNS-1123 labels or are
// duplicated: names become path components under podDir.
func validateNames(pod *corev1.Pod) error {
	seen := map[string]bool{}
	for i, v := range pod.Spec.Volumes {
		if msgs := validation.IsDNS1123Label(v.Name); len(msgs) > 0 {
			return fmt.Errorf("spec.volumes[%d].name: Invalid value: %q: %s", i, v.Name, strings.Join(msgs, "; "))
		}
		if seen[v.Name] {
			return fmt.Errorf("spec.volumes[%d].name: Duplicate value: %q", i, v.Name)
		}
		seen[v.Name] = true
	}
	return nil
}

// Teardown removes the pod's volumes: it is TeardownDir (pod may be nil;
// everything needed is on disk). hostPath volumes are never touched.
func (m *Manager) Teardown(ctx context.Context, podDir string, pod *corev1.Pod) error {
	if err := m.TeardownDir(ctx, podDir); err != nil {
		return fmt.Errorf("tear down volumes of pod %s: %w", podKey(pod), err)
	}
	return nil
}

// TeardownDir unmounts every mount at or below podDir/volume-subpaths
// (subPath binds) and podDir/volumes (deepest first, as
// /proc/self/mountinfo lists them) and then removes both directories. It
// needs nothing but the directory, is idempotent (a missing directory is
// success) and refuses to remove anything while a mount below it remains,
// so it never deletes through into another file system.
func (m *Manager) TeardownDir(ctx context.Context, podDir string) error {
	for _, sub := range []string{SubPathsDir, "volumes"} {
		if err := m.removeMountedTree(ctx, filepath.Join(podDir, sub)); err != nil {
			return err
		}
	}
	return nil
}

// SubPathsDir is the directory under the pod directory holding the
// subPath binds containers mount, as the kubelet's volume-subpaths:
// <podDir>/volume-subpaths/<volume>/<container>/<mount index>.
const SubPathsDir = "volume-subpaths"

// removeMountedTree unmounts everything at or below dir, then removes it.
func (m *Manager) removeMountedTree(ctx context.Context, dir string) error {
	volDir, err := realPath(dir)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		mounts, err := mountsUnder(volDir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			break
		}
		if attempt >= 10 {
			return fmt.Errorf("tear down volumes in %s: still mounted: %s", volDir, strings.Join(mounts, ", "))
		}
		for _, mp := range mounts {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("tear down volumes in %s: %w", volDir, err)
			}
			if err := unmount(mp); err != nil {
				m.logger.Warn("unmount volume failed", "path", mp, "err", err)
			}
		}
		if attempt > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := os.RemoveAll(volDir); err != nil {
		return fmt.Errorf("remove volumes dir %s: %w", volDir, err)
	}
	return nil
}

// realPath makes p absolute and resolves symlinks in its existing part, so it
// compares equal to the mount points in /proc/self/mountinfo.
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	dir, rest := abs, ""
	for {
		r, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("resolve %s: %w", p, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(dir), rest)
		dir = parent
	}
}

func podKey(pod *corev1.Pod) string {
	if pod == nil {
		return "<unknown>"
	}
	return pod.Namespace + "/" + pod.Name
}
