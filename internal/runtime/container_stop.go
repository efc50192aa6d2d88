package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/peapod/peapod/internal/runtime/pause"
	"github.com/peapod/peapod/internal/runtime/spec"
)

// killWait bounds how long a container may take to die after SIGKILL.
const killWait = 10 * time.Second

// StopContainer stops a container as the kubelet and containerd do: its
// stop signal (lifecycle.stopSignal, else the image's STOPSIGNAL, else
// SIGTERM), up to grace for it to exit, then SIGKILL. A container already
// stopped is fine.
func (r *Runtime) StopContainer(ctx context.Context, cid string, grace time.Duration) error {
	sandboxID, err := r.sandboxOf(cid)
	if err != nil {
		return err
	}
	rec, err := r.loadContainer(sandboxID, cid)
	if err != nil {
		return err
	}
	return r.stopContainer(ctx, rec, grace)
}

func (r *Runtime) stopContainer(ctx context.Context, rec *containerRecord, grace time.Duration) error {
	if rec.StartedAt.IsZero() {
		return nil
	}
	exitPath := filepath.Join(r.containerDir(rec.SandboxID, rec.ID), exitFile)
	if _, err := pause.ReadExit(exitPath); err == nil {
		return nil
	}
	h, err := r.Handler(rec.Handler)
	if err != nil {
		return err
	}
	if grace > 0 {
		if err := h.Kill(ctx, rec.ID, stopSignalOf(rec), false); err != nil {
			return fmt.Errorf("stop container %s: %w", rec.Name, err)
		}
		wctx, cancel := context.WithTimeout(ctx, grace)
		_, err := pause.WaitExit(wctx, exitPath)
		cancel()
		if err == nil {
			return nil
		}
	}
	if err := h.Kill(ctx, rec.ID, syscall.SIGKILL, true); err != nil {
		return fmt.Errorf("kill container %s: %w", rec.Name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	if _, err := pause.WaitExit(wctx, exitPath); err != nil {
		// With the pause process gone nobody records the exit; the
		// process is dead once the runtime no longer reports it running.
		if !processAlive(rec.PID) {
			return nil
		}
		return fmt.Errorf("container %s did not exit after SIGKILL: %w", rec.Name, err)
	}
	return nil
}

// RemoveContainer removes a stopped container: the runtime's state, its
// rootfs and its directory. Its log file stays with the pod's logs. A
// running container is killed first. Missing is success.
func (r *Runtime) RemoveContainer(ctx context.Context, cid string) error {
	sandboxID, err := r.sandboxOf(cid)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	unlock := r.lockSandbox(sandboxID)
	defer unlock()
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	if err := r.removeContainerFiles(ctx, sb, cid); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.owner, cid)
	r.mu.Unlock()
	return nil
}

// removeContainerFiles undoes CreateContainer and StartContainer for one
// container; each step is idempotent.
func (r *Runtime) removeContainerFiles(ctx context.Context, sb *sandboxRecord, cid string) error {
	dir := r.containerDir(sb.ID, cid)
	rec, err := r.loadContainer(sb.ID, cid)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	handler := sb.Handler
	if rec != nil {
		if err := r.stopContainer(ctx, rec, 0); err != nil {
			return err
		}
		handler = rec.Handler
	}
	if h, err := r.Handler(handler); err == nil {
		if err := h.Delete(ctx, cid, true); err != nil {
			return fmt.Errorf("delete container %s: %w", cid, err)
		}
	}
	if err := r.images.ReleaseRootfs(ctx, dir); err != nil {
		return fmt.Errorf("release rootfs of %s: %w", cid, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove container dir %s: %w", dir, err)
	}
	return nil
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// stopSignalOf is the signal recorded to stop a container; SIGTERM for one
// created before peapod recorded it.
func stopSignalOf(rec *containerRecord) syscall.Signal {
	if sig, err := spec.ParseSignal(rec.StopSignal); err == nil && rec.StopSignal != "" {
		return sig
	}
	return syscall.SIGTERM
}
