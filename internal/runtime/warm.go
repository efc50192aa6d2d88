package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The warm pool keeps sandboxes made ahead of any pod: network namespace,
// pause process, pod cgroup and CNI attachment, the slow kernel work of a
// pod start (cgroup v1 migration, CNI plugin runs). With peapod's default
// conflist that work is the same for every pod without host ports or a
// shared PID namespace, so RunPodSandbox takes a warm sandbox for such a
// pod and adds only what is the pod's own: its hostname, /etc files and
// volumes. A warm sandbox lives in <data-dir>/warm/<id> until taken, when
// its directory moves to <data-dir>/pods/<id> (pause's socket, cwd and
// /dev/shm mount move with it); IDs, netns pins, cgroups and IP leases
// are keyed by the sandbox ID and do not change.

// warmRetry is how long the pool waits after failing to make a sandbox.
const warmRetry = 5 * time.Second

// warmSettle bounds how long a refill waits for the pod that took a warm
// sandbox to start its first container. Refilling meanwhile would compete
// with that start for the CPU (on a small node, slowing it by more than
// the warm sandbox saved), so a refill runs once the container is up.
const warmSettle = time.Second

type warmPool struct {
	size int
	// refill wakes RunWarmPool after a take; started tells it a container
	// started since.
	refill, started chan struct{}

	mu    sync.Mutex
	ready []string // IDs of warm sandboxes, oldest first
}

func newWarmPool(size int) *warmPool {
	return &warmPool{size: size, refill: make(chan struct{}, 1), started: make(chan struct{}, 1)}
}

// containerStarted tells a waiting refill that the CPU is free again.
func (p *warmPool) containerStarted() {
	if p == nil {
		return
	}
	select {
	case p.started <- struct{}{}:
	default:
	}
}

func (p *warmPool) take() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ready) == 0 {
		return "", false
	}
	id := p.ready[0]
	p.ready = p.ready[1:]
	select { // forget a start from before this take
	case <-p.started:
	default:
	}
	select {
	case p.refill <- struct{}{}:
	default:
	}
	return id, true
}

func (p *warmPool) put(id string) {
	p.mu.Lock()
	p.ready = append(p.ready, id)
	p.mu.Unlock()
}

func (p *warmPool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready)
}

func (p *warmPool) drain() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := p.ready
	p.ready = nil
	return ids
}

func (r *View) warmDir(id string) string { return r.paths.WarmSandbox(id) }

// RunWarmPool keeps the configured number of warm sandboxes until ctx
// ends, then tears them down. It first removes warm sandboxes an earlier
// run left (peapod killed). Without a pool it only does that, then waits
// for ctx like a pool would.
func (r *Runtime) RunWarmPool(ctx context.Context) error {
	if err := r.RemoveWarmSandboxes(ctx); err != nil {
		r.log.Warn("remove warm sandboxes left by an earlier run", "err", err)
	}
	if r.warm == nil {
		<-ctx.Done()
		return nil
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		for _, id := range r.warm.drain() {
			if err := r.removeWarm(cctx, id); err != nil {
				r.log.Warn("remove warm sandbox", "sandbox", id, "err", err)
			}
		}
	}()
	for {
		for r.warm.count() < r.warm.size && ctx.Err() == nil {
			id := newID()
			if err := r.makeWarm(ctx, id); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.log.Warn("make warm sandbox; pods start without one meanwhile", "err", err, "retryIn", warmRetry)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(warmRetry):
				}
				continue
			}
			r.warm.put(id)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.warm.refill:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.warm.started:
		case <-time.After(warmSettle):
		}
	}
}

func (r *Runtime) makeWarm(ctx context.Context, id string) error {
	if err := os.MkdirAll(r.paths.WarmSandboxes(), 0o700); err != nil {
		return fmt.Errorf("create warm sandbox dir: %w", err)
	}
	unlock := r.lockSandbox(id)
	err := r.makeSandbox(ctx, id, r.warmDir(id), nil)
	unlock()
	if err != nil {
		r.forgetSandbox(id)
	}
	return err
}

// RemoveWarmSandboxes tears down every warm sandbox on disk. Only call it
// when no pool is running on this data dir (at start, or from reset).
func (r *Runtime) RemoveWarmSandboxes(ctx context.Context) error {
	entries, err := os.ReadDir(r.paths.WarmSandboxes())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list warm sandboxes: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, r.removeWarm(ctx, e.Name()))
		}
	}
	return errors.Join(errs...)
}

func (r *Runtime) removeWarm(ctx context.Context, id string) error {
	unlock := r.lockSandbox(id)
	dir := r.warmDir(id)
	rec, err := loadSandboxAt(dir)
	if err != nil {
		// Sweep what its ID names, as RemovePodSandbox does.
		rec = r.bareRecord(id)
	}
	err = r.teardownSandbox(ctx, rec, dir, 0)
	unlock()
	r.forgetSandbox(id)
	return err
}

// warmFits reports whether a warm sandbox can serve the pod: the network
// attachment must not depend on the pod, pause must not need a PID
// namespace for it, and the pod must want the namespaces a warm sandbox
// has: its own network, IPC and UTS ones, in the node's user namespace.
func (r *Runtime) warmFits(p podPlan) bool {
	if r.warm == nil || !r.network.PodAgnostic() || len(podInfo(p.pod).PortMappings) > 0 {
		return false
	}
	if host := hostNamespacesOf(p.pod); host.network || host.ipc || usesUserNamespace(p.pod) {
		return false
	}
	share := p.pod.Spec.ShareProcessNamespace
	return share == nil || !*share
}

// takeWarm gives the pod a warm sandbox if one fits and is ready. ok is
// false when the pod must get a sandbox made for it; with ok true, err is
// the pod's own failure (its volumes, say), the sandbox already torn down.
func (r *Runtime) takeWarm(ctx context.Context, p podPlan) (id string, ok bool, err error) {
	if !r.warmFits(p) {
		return "", false, nil
	}
	id, ok = r.warm.take()
	if !ok {
		return "", false, nil
	}
	t0 := time.Now()
	unlock := r.lockSandbox(id)
	defer unlock()
	from, dir := r.warmDir(id), r.sandboxDir(id)
	rec, err := loadSandboxAt(from)
	if err == nil && !pauseAlive(rec) {
		err = fmt.Errorf("pause %d is gone", rec.Pause.PID)
	}
	if err == nil {
		err = os.Rename(from, dir)
	}
	if err != nil {
		r.log.Warn("warm sandbox unusable; making one for the pod", "sandbox", id, "err", err)
		if rec == nil {
			rec = r.bareRecord(id)
		}
		r.rollBack(ctx, rec, from)
		r.forgetSandbox(id)
		return "", false, nil
	}
	defer func() {
		if err != nil {
			r.rollBack(ctx, rec, dir)
			r.forgetSandbox(id)
		}
	}()
	rec.Warm, rec.Ready = false, false
	rec.Pod = p.pod.DeepCopy()
	rec.Handler = p.handler
	rec.Hostname = p.hostname
	rec.SELinuxLevel = r.selinux.newLevel()
	rec.CreatedAt = time.Now()
	if err := r.saveSandbox(rec); err != nil {
		return id, true, err
	}
	r.indexPod(p.pod.UID, id)

	// The volumes (a token request for projected ones) are the slow part;
	// the hostname and /etc files go alongside.
	var (
		wg      sync.WaitGroup
		nameErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if nameErr = setHostname(rec.Pause.PID, p.hostname); nameErr == nil {
			nameErr = p.writeFiles(dir, sandboxIPs(rec))
		}
	}()
	vols, volErr := r.volumes.Setup(ctx, dir, p.pod)
	wg.Wait()
	if volErr != nil {
		return id, true, fmt.Errorf("set up volumes: %w", volErr)
	}
	rec.Volumes = vols.Paths
	if nameErr != nil {
		return id, true, fmt.Errorf("give warm sandbox the pod's hostname and files: %w", nameErr)
	}
	rec.Ready = true
	if err := r.saveSandbox(rec); err != nil {
		return id, true, err
	}
	r.log.Info("sandbox ready", "pod", p.pod.Namespace+"/"+p.pod.Name, "sandbox", id, "warm", true,
		"pausePID", rec.Pause.PID, "ip", podIPs(rec.Network), "netns", rec.NetNSPath, "took", time.Since(t0))
	return id, true, nil
}

// setHostname sets the hostname in the UTS namespace of process pid. The
// goroutine's thread joins that namespace and is never unlocked, so it
// exits with the goroutine instead of serving other goroutines from the
// pod's namespace.
func setHostname(pid int, name string) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/uts", pid))
		if err != nil {
			errc <- fmt.Errorf("open UTS namespace of %d: %w", pid, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWUTS); err != nil {
			errc <- fmt.Errorf("join UTS namespace of %d: %w", pid, err)
			return
		}
		if err := unix.Sethostname([]byte(name)); err != nil {
			errc <- fmt.Errorf("set hostname %q: %w", name, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}
