package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/peapod/peapod/internal/network/netns"
	"github.com/peapod/peapod/internal/runtime/pause"
)

// StopPodSandbox stops every container of the sandbox (SIGTERM, then
// SIGKILL after grace), then its pause process, and releases its network.
// The sandbox stays on disk for inspection until RemovePodSandbox. It is
// idempotent.
func (r *Runtime) StopPodSandbox(ctx context.Context, id string, grace time.Duration) error {
	unlock := r.lockSandbox(id)
	defer unlock()
	rec, err := r.loadSandbox(id)
	if err != nil {
		return err
	}
	if err := r.stopContainers(ctx, rec, grace); err != nil {
		return err
	}
	if err := pause.Stop(ctx, rec.Pause, r.sandboxDir(id)); err != nil {
		return fmt.Errorf("stop pause of sandbox %s: %w", id, err)
	}
	if err := pause.Stop(ctx, rec.Holder, ""); err != nil {
		return fmt.Errorf("stop user namespace holder of sandbox %s: %w", id, err)
	}
	if rec.Network != nil {
		if err := r.network.Teardown(ctx, id, rec.NetNSPath, podInfo(rec.Pod)); err != nil {
			return fmt.Errorf("tear down network of sandbox %s: %w", id, err)
		}
	}
	return nil
}

// RemovePodSandbox tears the sandbox down completely: containers (stopped
// with the given grace first), pause, network, netns, volumes, /dev/shm,
// cgroups and state. It is idempotent: a sandbox half torn down, or already
// gone, is finished without error.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id string, grace time.Duration) error {
	unlock := r.lockSandbox(id)
	defer unlock()
	rec, err := r.loadSandbox(id)
	if errors.Is(err, ErrNotFound) {
		// The record may never have been written; sweep what its ID names.
		rec = r.bareRecord(id)
	} else if err != nil {
		return err
	}
	if err := r.teardownSandbox(ctx, rec, r.sandboxDir(id), grace); err != nil {
		return err
	}
	r.forgetSandbox(id)
	return nil
}

// bareRecord is what a sandbox's ID alone names, for sweeping one whose
// record was never written or is unreadable.
func (r *Runtime) bareRecord(id string) *sandboxRecord {
	return &sandboxRecord{ID: id, NetNSPath: filepath.Join(r.cfg.NetNSDir, "peapod-"+id), Cgroup: r.podCgroup(id)}
}

// teardownSandbox undoes makeSandbox from whatever state rec records; dir
// is the sandbox's directory. Every step treats "already gone" as done, so
// it can be repeated after an interruption. Errors of independent steps
// are joined, not short-circuited.
func (r *Runtime) teardownSandbox(ctx context.Context, rec *sandboxRecord, dir string, grace time.Duration) error {
	var errs []error
	if err := r.stopContainers(ctx, rec, grace); err != nil {
		errs = append(errs, err)
	}
	cids, err := r.containerIDs(rec.ID)
	if err != nil {
		errs = append(errs, err)
	}
	for _, cid := range cids {
		if err := r.removeContainerFiles(ctx, rec, cid); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.Pause.PID != 0 {
		if err := pause.Stop(ctx, rec.Pause, dir); err != nil {
			errs = append(errs, fmt.Errorf("stop pause: %w", err))
		}
	}
	if rec.Holder.PID != 0 {
		if err := pause.Stop(ctx, rec.Holder, ""); err != nil {
			errs = append(errs, fmt.Errorf("stop user namespace holder: %w", err))
		}
	}
	if rec.Network != nil {
		nsPath := rec.NetNSPath
		if !netns.Exists(nsPath) {
			nsPath = ""
		}
		if err := r.network.Teardown(ctx, rec.ID, nsPath, podInfo(rec.Pod)); err != nil {
			errs = append(errs, fmt.Errorf("tear down network: %w", err))
		}
	}
	if rec.NetNSPath != "" {
		if err := netns.Remove(rec.NetNSPath); err != nil {
			errs = append(errs, fmt.Errorf("remove netns: %w", err))
		}
	}
	if err := unmountIDMapped(dir); err != nil {
		errs = append(errs, fmt.Errorf("unmount idmapped volumes: %w", err))
	}
	if err := r.volumes.TeardownDir(ctx, dir); err != nil {
		errs = append(errs, fmt.Errorf("tear down volumes: %w", err))
	}
	if err := unmountAll(filepath.Join(dir, "shm")); err != nil {
		errs = append(errs, err)
	}
	if rec.Cgroup != "" {
		if err := removeCgroup(rec.Cgroup); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down sandbox %s: %w", rec.ID, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove sandbox dir %s: %w", dir, err)
	}
	return nil
}

// stopContainers stops every container of the sandbox at once, each with
// the full grace period, as the kubelet kills a pod's containers.
func (r *Runtime) stopContainers(ctx context.Context, rec *sandboxRecord, grace time.Duration) error {
	cids, err := r.containerIDs(rec.ID)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cids))
	for i, cid := range cids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := r.loadContainer(rec.ID, cid)
			if errors.Is(err, ErrNotFound) {
				return
			}
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = r.stopContainer(ctx, c, grace)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
