package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/peapod/peapod/internal/network"
	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/runtime/pause"
	"github.com/peapod/peapod/internal/runtime/podfiles"
	"github.com/peapod/peapod/internal/volume"
)

// shmSize is the size of a pod's shared /dev/shm, as Docker and containerd default it.
const shmSize = 64 << 20

// cleanupTimeout bounds the rollback of a failed create, which runs on a
// fresh context because the caller's may be what failed.
const cleanupTimeout = 30 * time.Second

// RunPodSandbox creates a pod's sandbox: a pinned network namespace, the
// pod cgroup, the shared /dev/shm, the per-pod /etc files, the pause process
// holding the namespaces, the CNI network and the pod's volumes. handler
// names the OCI runtime its containers will use ("" = the default). A pod
// the warm pool can serve takes a sandbox made ahead (see warm.go). On
// error everything already made is torn down again. It returns the
// sandbox ID.
func (r *Runtime) RunPodSandbox(ctx context.Context, pod *corev1.Pod, handler string) (id string, retErr error) {
	if err := validatePod(pod); err != nil {
		return "", err
	}
	if handler == "" {
		handler = r.cfg.DefaultRuntime
	}
	if _, err := r.Handler(handler); err != nil {
		return "", err
	}
	hostname, fqdn, err := podfiles.HostnameInDomain(pod, r.cfg.Domain())
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// Computed for this pod even when it takes a warm sandbox: the search
	// path names the pod's namespace, so it is written at take time.
	resolv, err := podfiles.ResolvConf(pod, r.hostResolv, r.cfg.ClusterDNS, r.cfg.Domain())
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	p := podPlan{pod: pod, handler: handler, hostname: hostname, fqdn: fqdn, resolv: resolv}
	if id, ok, err := r.takeWarm(ctx, p); ok {
		return id, err
	}
	id = newID()
	unlock := r.lockSandbox(id)
	defer unlock()
	if err := r.makeSandbox(ctx, id, r.sandboxDir(id), &p); err != nil {
		r.forgetSandbox(id)
		return id, err
	}
	return id, nil
}

// podPlan is what a sandbox needs to know of its pod.
type podPlan struct {
	pod            *corev1.Pod
	handler        string
	hostname, fqdn string
	resolv         []byte
}

// writeFiles writes the pod's /etc/hostname, /etc/hosts (which needs its
// IPs) and /etc/resolv.conf into the sandbox directory dir.
func (p *podPlan) writeFiles(dir string, ips []string) error {
	err := podfiles.Write(dir, map[string][]byte{
		"hostname":    []byte(p.hostname + "\n"),
		"resolv.conf": p.resolv,
		"hosts":       podfiles.Hosts(p.pod, ips, p.hostname, p.fqdn),
	})
	if err != nil {
		return fmt.Errorf("write pod files: %w", err)
	}
	return nil
}

// indexPod records that sandbox id belongs to the pod with that UID.
func (r *Runtime) indexPod(uid types.UID, id string) {
	r.mu.Lock()
	r.byPod[string(uid)] = append(r.byPod[string(uid)], id)
	r.mu.Unlock()
}

// rollBack tears down a sandbox whose creation failed, on a fresh context
// since the caller's may be what failed.
func (r *Runtime) rollBack(ctx context.Context, rec *sandboxRecord, dir string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := r.teardownSandbox(cctx, rec, dir, 0); err != nil {
		r.log.Error("roll back failed sandbox", "sandbox", rec.ID, "err", err)
	}
}

// makeSandbox creates sandbox id in dir for p's pod, or, with p nil, a warm
// sandbox that has everything but what is the pod's own (hostname, /etc
// files, volumes). The caller holds the sandbox's lock. On error
// everything already made is torn down again.
func (r *Runtime) makeSandbox(ctx context.Context, id, dir string, p *podPlan) (retErr error) {
	log := r.log.With("sandbox", id)
	if err := os.MkdirAll(filepath.Join(dir, "containers"), 0o700); err != nil {
		return fmt.Errorf("create sandbox dir: %w", err)
	}
	rec := r.bareRecord(id)
	rec.CreatedAt = time.Now()
	rec.Warm = p == nil
	info := network.PodInfo{}
	if p != nil {
		log = log.With("pod", p.pod.Namespace+"/"+p.pod.Name)
		rec.Pod = p.pod.DeepCopy()
		rec.Handler = p.handler
		rec.Hostname = p.hostname
		rec.SharePID = p.pod.Spec.ShareProcessNamespace != nil && *p.pod.Spec.ShareProcessNamespace
		info = podInfo(p.pod)
	}
	// The record is saved before each resource is acquired, so a crash or
	// an error at any step leaves enough on disk to tear the rest down.
	defer func() {
		if retErr != nil {
			r.rollBack(ctx, rec, dir)
		}
	}()
	if err := saveSandboxAt(dir, rec); err != nil {
		return err
	}
	if p != nil {
		r.indexPod(p.pod.UID, id)
	}
	t0 := time.Now()
	if _, err := netns.New(r.cfg.NetNSDir, "peapod-"+id); err != nil {
		return fmt.Errorf("create network namespace: %w", err)
	}
	if err := mountShm(filepath.Join(dir, "shm")); err != nil {
		return err
	}

	t1 := time.Now()
	proc, err := pause.Start(ctx, pause.StartOptions{
		Binary:    r.paths.PauseBinary(),
		Dir:       dir,
		NetNSPath: rec.NetNSPath,
		Hostname:  rec.Hostname,
		SharePID:  rec.SharePID,
	})
	if err != nil {
		return fmt.Errorf("start pause: %w", err)
	}
	rec.Pause = *proc
	// A network teardown is already owed: CNI may allocate an IP even when
	// ADD fails, so the record says "network" before ADD runs.
	rec.Network = &network.Result{}
	if err := saveSandboxAt(dir, rec); err != nil {
		return err
	}

	// Three independent steps at once: moving pause into the pod cgroup
	// (slow on cgroup v1, where each hierarchy's migration waits for RCU),
	// CNI ADD, and the volumes (a token request for projected ones).
	// Containers start only once all three are done.
	t2 := time.Now()
	var (
		wg                         sync.WaitGroup
		res                        *network.Result
		vols                       *volume.Prepared
		cgroupErr, netErr, volErr  error
		cgroupTook, netTook, vTook time.Duration
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		s := time.Now()
		cgroupErr = joinCgroup(rec.Cgroup, proc.PID)
		cgroupTook = time.Since(s)
	}()
	go func() {
		defer wg.Done()
		s := time.Now()
		res, netErr = r.network.Setup(ctx, id, rec.NetNSPath, info)
		netTook = time.Since(s)
	}()
	if p != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			vols, volErr = r.volumes.Setup(ctx, dir, p.pod)
			vTook = time.Since(s)
		}()
	}
	wg.Wait()
	if netErr == nil {
		rec.Network = res
	}
	if volErr == nil && vols != nil {
		rec.Volumes = vols.Paths
	}
	if err := saveSandboxAt(dir, rec); err != nil {
		return err
	}
	switch {
	case cgroupErr != nil:
		return fmt.Errorf("place pause in the pod cgroup: %w", cgroupErr)
	case netErr != nil:
		return fmt.Errorf("set up pod network: %w", netErr)
	case volErr != nil:
		return fmt.Errorf("set up volumes: %w", volErr)
	}
	if p != nil {
		if err := p.writeFiles(dir, podIPs(res)); err != nil {
			return err
		}
	}
	rec.Ready = true
	if err := saveSandboxAt(dir, rec); err != nil {
		return err
	}
	if p == nil {
		log.Debug("warm sandbox ready", "pausePID", proc.PID, "ip", podIPs(res), "took", time.Since(t0))
		return nil
	}
	log.Info("sandbox ready", "pausePID", proc.PID, "ip", podIPs(res), "netns", rec.NetNSPath,
		"took", time.Since(t0), "netnsTook", t1.Sub(t0), "pauseTook", t2.Sub(t1),
		"cgroupTook", cgroupTook, "networkTook", netTook, "volumesTook", vTook)
	return nil
}

// podInfo is what CNI is told about a pod: its identity and hostPorts.
// A warm sandbox (no pod) is anonymous.
func podInfo(pod *corev1.Pod) network.PodInfo {
	if pod == nil {
		return network.PodInfo{}
	}
	info := network.PodInfo{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
	for _, c := range allContainers(pod) {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			proto := string(p.Protocol)
			if proto == "" {
				proto = string(corev1.ProtocolTCP)
			}
			info.PortMappings = append(info.PortMappings, network.PortMapping{
				HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP,
			})
		}
	}
	return info
}

// podIPs returns the addresses of a CNI result without their prefix length.
func podIPs(res *network.Result) []string {
	if res == nil {
		return nil
	}
	var ips []string
	for _, cidr := range res.IPs {
		if ip, _, err := net.ParseCIDR(cidr); err == nil {
			ips = append(ips, ip.String())
		}
	}
	return ips
}

// mountShm mounts the pod's /dev/shm, which every container binds, so that
// POSIX shared memory is shared across the pod as IPC is.
func mountShm(dir string) error {
	if err := os.MkdirAll(dir, 0o1777); err != nil {
		return fmt.Errorf("create shm dir: %w", err)
	}
	opts := fmt.Sprintf("mode=1777,size=%d", shmSize)
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount pod shm at %s: %w", dir, err)
	}
	return nil
}

// unmountAll unmounts dir and everything mounted below it; not mounted is success.
func unmountAll(dir string) error {
	for {
		err := unix.Unmount(dir, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
}
