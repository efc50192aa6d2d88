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
	p, err := r.planPod(pod, handler)
	if err != nil {
		return "", err
	}
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
	// hosts is a hostNetwork pod's /etc/hosts, the node's own; nil for
	// the others, whose /etc/hosts names their IPs (see writeFiles).
	hosts []byte
}

// planPod works out the pod's hostname and /etc files as the kubelet
// does: a hostNetwork pod has the node's hostname and a copy of the node's
// /etc/hosts, and a ClusterFirst dnsPolicy on it means Default.
func (r *Runtime) planPod(pod *corev1.Pod, handler string) (podPlan, error) {
	p := podPlan{pod: pod, handler: handler}
	var err error
	if pod.Spec.HostNetwork {
		if p.hostname, err = os.Hostname(); err != nil {
			return p, fmt.Errorf("hostNetwork pod %s/%s: the node's hostname: %w", pod.Namespace, pod.Name, err)
		}
		nodeHosts, err := os.ReadFile(etcHosts)
		if err != nil {
			return p, fmt.Errorf("hostNetwork pod %s/%s: the node's hosts file: %w", pod.Namespace, pod.Name, err)
		}
		p.hosts = podfiles.HostNetworkHosts(pod, nodeHosts)
	} else if p.hostname, p.fqdn, err = podfiles.HostnameInDomain(pod, r.cfg.Domain()); err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// Computed for this pod even when it takes a warm sandbox: the search
	// path names the pod's namespace, so it is written at take time.
	if p.resolv, err = podfiles.ResolvConf(pod, r.hostResolv, r.cfg.ClusterDNS, r.cfg.Domain()); err != nil {
		return p, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return p, nil
}

// etcHosts is the node's hosts file, which hostNetwork pods see.
const etcHosts = "/etc/hosts"

// writeFiles writes the pod's /etc/hostname, /etc/hosts (which needs its
// IPs) and /etc/resolv.conf into the sandbox directory dir.
func (p *podPlan) writeFiles(dir string, ips []string) error {
	hosts := p.hosts
	if hosts == nil {
		hosts = podfiles.Hosts(p.pod, ips, p.hostname, p.fqdn)
	}
	err := podfiles.Write(dir, map[string][]byte{
		"hostname":    []byte(p.hostname + "\n"),
		"resolv.conf": p.resolv,
		"hosts":       hosts,
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
	var ns hostNamespaces
	if p != nil {
		log = log.With("pod", p.pod.Namespace+"/"+p.pod.Name)
		rec.Pod = p.pod.DeepCopy()
		rec.Handler = p.handler
		rec.Hostname = p.hostname
		rec.SharePID = p.pod.Spec.ShareProcessNamespace != nil && *p.pod.Spec.ShareProcessNamespace
		info = podInfo(p.pod)
		ns = hostNamespacesOf(p.pod)
		if ns.network {
			// The node's network: no netns of the pod's, no CNI; its IPs
			// are the node's.
			rec.NetNSPath = ""
			rec.NodeIPs = r.nodeIPs()
		}
		// The pod's containers share one SELinux level, as containerd
		// reserves one per sandbox; "" where SELinux is off.
		rec.SELinuxLevel = r.selinux.newLevel()
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
	start := pause.StartOptions{
		Binary:    r.paths.PauseBinary(),
		Dir:       dir,
		NetNSPath: rec.NetNSPath,
		Hostname:  rec.Hostname,
		SharePID:  rec.SharePID,
		HostIPC:   ns.ipc,
		HostUTS:   ns.network,
	}
	switch {
	case p != nil && usesUserNamespace(p.pod):
		if err := r.makeUserNamespace(ctx, rec, dir, &start); err != nil {
			return err
		}
	case !ns.network:
		if _, err := netns.New(r.cfg.NetNSDir, "peapod-"+id); err != nil {
			return fmt.Errorf("create network namespace: %w", err)
		}
	}
	if !ns.ipc {
		// A hostIPC pod's containers bind the node's /dev/shm instead,
		// as containerd gives them.
		if err := mountShm(filepath.Join(dir, "shm")); err != nil {
			return err
		}
	}

	t1 := time.Now()
	proc, err := pause.Start(ctx, start)
	if err != nil {
		return fmt.Errorf("start pause: %w", err)
	}
	rec.Pause = *proc
	if !ns.network {
		// A network teardown is already owed: CNI may allocate an IP even
		// when ADD fails, so the record says "network" before ADD runs.
		rec.Network = &network.Result{}
	}
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
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := time.Now()
		cgroupErr = joinCgroup(rec.Cgroup, proc.PID)
		if cgroupErr == nil && rec.Holder.PID != 0 {
			cgroupErr = joinCgroup(rec.Cgroup, rec.Holder.PID)
		}
		cgroupTook = time.Since(s)
	}()
	if !ns.network {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			res, netErr = r.network.Setup(ctx, id, rec.NetNSPath, info)
			netTook = time.Since(s)
		}()
	}
	if p != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			vols, volErr = r.volumes.Setup(ctx, dir, p.pod)
			if volErr == nil && rec.UserNS != nil {
				volErr = idmapVolumes(dir, vols, rec.Holder.NamespacePath("user"))
			}
			vTook = time.Since(s)
		}()
	}
	wg.Wait()
	if netErr == nil && res != nil {
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
		if err := p.writeFiles(dir, sandboxIPs(rec)); err != nil {
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
	log.Info("sandbox ready", "pausePID", proc.PID, "ip", sandboxIPs(rec), "netns", rec.NetNSPath,
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
