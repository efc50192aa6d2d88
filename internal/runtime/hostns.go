package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/runtime/pause"
	"github.com/peapod/peapod/internal/runtime/userns"
	"github.com/peapod/peapod/internal/volume"
)

// hostNamespaces says which of the node's namespaces a pod shares
// (spec.hostNetwork, hostIPC, hostPID). A hostNetwork pod shares the
// node's UTS namespace too, as containerd gives it.
type hostNamespaces struct {
	network, ipc, pid bool
}

func hostNamespacesOf(pod *corev1.Pod) hostNamespaces {
	if pod == nil {
		return hostNamespaces{}
	}
	return hostNamespaces{network: pod.Spec.HostNetwork, ipc: pod.Spec.HostIPC, pid: pod.Spec.HostPID}
}

// usesUserNamespace reports whether the pod asked for its own user
// namespace (spec.hostUsers: false).
func usesUserNamespace(pod *corev1.Pod) bool {
	return pod != nil && pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers
}

// sandboxIPs are the pod's IPs: the node's for a hostNetwork pod, else
// what CNI gave it.
func sandboxIPs(rec *sandboxRecord) []string {
	if len(rec.NodeIPs) > 0 {
		return append([]string(nil), rec.NodeIPs...)
	}
	return podIPs(rec.Network)
}

// makeUserNamespace gives a pod with hostUsers: false its user namespace,
// as the kubelet and containerd do: an ID range from the node's allocator,
// a holder process in a new user namespace mapping it, and network, IPC
// and UTS namespaces (and with shareProcessNamespace a PID namespace) that
// user namespace owns, so the pod's root can use them. The netns is pinned
// as any pod's; pause joins the holder's namespaces instead of making its
// own. Each step is saved in rec before the next, for teardown.
func (r *Runtime) makeUserNamespace(ctx context.Context, rec *sandboxRecord, dir string, start *pause.StartOptions) error {
	if err := userns.Supported(); err != nil {
		return fmt.Errorf("%w: spec.hostUsers: false: %w", ErrInvalid, err)
	}
	m, err := r.userns.Allocate(string(rec.Pod.UID))
	if err != nil {
		return err
	}
	rec.UserNS = &m
	if err := saveSandboxAt(dir, rec); err != nil {
		return err
	}
	if err := r.letPodRootIn(dir, int(m.HostID)); err != nil {
		return err
	}
	holder, err := pause.StartHolder(ctx, pause.HolderOptions{
		Binary: r.paths.PauseBinary(), HostID: m.HostID, Length: m.Length, SharePID: rec.SharePID,
	})
	if err != nil {
		return err
	}
	rec.Holder = *holder
	if err := saveSandboxAt(dir, rec); err != nil {
		return err
	}
	if _, err := netns.Pin(holder.NamespacePath("net"), r.cfg.NetNSDir, filepath.Base(rec.NetNSPath)); err != nil {
		return fmt.Errorf("pin the pod's network namespace: %w", err)
	}
	start.IPCNSPath, start.UTSNSPath = holder.NamespacePath("ipc"), holder.NamespacePath("uts")
	// The holder is PID 1 of a shared PID namespace: one made by pause
	// would belong to the node's user namespace, where the pod's root
	// could not mount its /proc.
	start.SharePID = false
	return nil
}

// letPodRootIn lets the runtime, which works as the pod's root once in its
// user namespace, reach the pod's bundles and files: the data dir and
// pods/ become searchable by others (not listable: sandbox IDs are not
// guessable), as containerd keeps its state dirs 0711, and the sandbox
// dir and its containers/ belong to the pod root's group, 0710, so no
// other pod's root may enter them.
func (r *Runtime) letPodRootIn(dir string, gid int) error {
	for _, d := range []string{r.cfg.DataDir, r.paths.Pods()} {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("let the pod's root reach %s: %w", d, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("let the pod's root reach %s: %w", d, err)
			}
		}
	}
	return groupOnly(gid, dir, filepath.Join(dir, "containers"))
}

// groupOnly gives dirs to root and group gid, searchable by that group
// alone (0710).
func groupOnly(gid int, dirs ...string) error {
	for _, d := range dirs {
		if err := os.Chown(d, 0, gid); err != nil {
			return fmt.Errorf("give %s to the pod's root group: %w", d, err)
		}
		if err := os.Chmod(d, 0o710); err != nil {
			return fmt.Errorf("give %s to the pod's root group: %w", d, err)
		}
	}
	return nil
}

// idmappedDir holds, in a sandbox of a pod with its own user namespace,
// the idmapped mounts of the pod's volumes that its containers bind.
const idmappedDir = "idmapped"

// idmapVolumes mounts each prepared volume idmapped into the pod's user
// namespace under dir/idmapped/<volume>, and makes vols.Paths name those,
// so the pod's root reads and writes its volumes as the host's root owns
// them (the kubelet asks the same of containerd for every mount of such a
// pod).
func idmapVolumes(dir string, vols *volume.Prepared, usernsPath string) error {
	names := make([]string, 0, len(vols.Paths))
	for name := range vols.Paths {
		names = append(names, name)
	}
	sort.Strings(names)
	base := filepath.Join(dir, idmappedDir)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", base, err)
	}
	for _, name := range names {
		src := vols.Paths[name]
		dst := filepath.Join(base, name)
		if err := mountPoint(src, dst); err != nil {
			return err
		}
		if err := userns.MountIDMapped(src, dst, usernsPath, true); err != nil {
			return fmt.Errorf("volume %q: %w", name, err)
		}
		vols.Paths[name] = dst
	}
	return nil
}

// mountPoint creates dst to mount src on: a directory for a directory, an
// empty file for anything else.
func mountPoint(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("mount point for %s: %w", src, err)
	}
	if st.IsDir() {
		if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create mount point %s: %w", dst, err)
		}
		return nil
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", dst, err)
	}
	return f.Close()
}

// unmountIDMapped unmounts the idmapped volume mounts under dir/idmapped
// and removes their mount points. It removes only empty directories and
// files it unmounted, never recursively, so a mount that stays (busy)
// fails here instead of having its contents (a hostPath's, say) deleted
// by the sandbox directory's removal. Nothing there is success.
func unmountIDMapped(dir string) error {
	base := filepath.Join(dir, idmappedDir)
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list idmapped volumes: %w", err)
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(base, e.Name())
		if err := unmountAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("remove idmapped volume mount point: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(base); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", base, err)
	}
	return nil
}
