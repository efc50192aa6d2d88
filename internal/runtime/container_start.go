package runtime

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/peapod/peapod/internal/runtime/pause"
)

// StartContainer starts a created container: the sandbox's pause process
// launches the OCI runtime, becomes the container's parent, writes its log
// and records its exit. A command missing from the image fails here, with
// the runtime's own message.
func (r *Runtime) StartContainer(ctx context.Context, cid string) error {
	sandboxID, err := r.sandboxOf(cid)
	if err != nil {
		return err
	}
	unlock := r.lockSandbox(sandboxID)
	defer unlock()
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	if !pauseAlive(sb) {
		return fmt.Errorf("start container %s: sandbox %s: %w", cid, sandboxID, ErrSandboxLost)
	}
	rec, err := r.loadContainer(sandboxID, cid)
	if err != nil {
		return err
	}
	if !rec.StartedAt.IsZero() {
		return fmt.Errorf("start container %s: already started", cid)
	}
	h, err := r.Handler(rec.Handler)
	if err != nil {
		return err
	}
	dir := r.containerDir(sandboxID, cid)
	c, _ := findContainer(sb.Pod, rec.Name)
	pid, err := pause.Dial(r.sandboxDir(sandboxID)).Launch(ctx, pause.LaunchRequest{
		// stdin: true keeps a pipe in pause for attach; tty: true has
		// pause take the terminal the runtime makes (spec.Build sets
		// process.terminal from the same field).
		Stdin:    c != nil && c.Stdin,
		Terminal: c != nil && c.TTY,
		ID:       cid,
		Argv:     h.RunArgs(cid, dir, filepath.Join(dir, pidFile), filepath.Join(dir, runtimeLog)),
		LogPath:  rec.LogPath,
		ExitPath: filepath.Join(dir, exitFile),
		PIDPath:  filepath.Join(dir, pidFile),
		// On failure, pause quotes the runtime's own error from its log.
		RuntimeLogPath: filepath.Join(dir, runtimeLog),
	})
	if err != nil {
		// The runtime may have left a stopped container behind.
		_ = h.Delete(context.WithoutCancel(ctx), cid, true)
		return fmt.Errorf("start container %q: %w", rec.Name, err)
	}
	rec.PID = pid
	rec.StartedAt = time.Now()
	r.warm.containerStarted()
	return r.saveContainer(rec)
}

// WaitContainer blocks until the container has exited, or ctx ends, and
// returns its status.
func (r *Runtime) WaitContainer(ctx context.Context, cid string) (*ContainerStatus, error) {
	sandboxID, err := r.sandboxOf(cid)
	if err != nil {
		return nil, err
	}
	if _, err := pause.WaitExit(ctx, filepath.Join(r.containerDir(sandboxID, cid), exitFile)); err != nil {
		return nil, fmt.Errorf("wait for container %s: %w", cid, err)
	}
	return r.ContainerStatus(ctx, cid)
}

// pauseAlive reports whether the sandbox's namespaces are still held: by
// its pause process, and for a pod with its own user namespace by the
// holder too (without it, new containers could not join that namespace).
func pauseAlive(sb *sandboxRecord) bool {
	return sb.Pause.PID != 0 && pause.Alive(sb.Pause) && (sb.Holder.PID == 0 || pause.Alive(sb.Holder))
}

// SandboxAlive reports whether the sandbox's pause process still holds its
// namespaces. A dead pause means the sandbox is lost: the caller recreates it.
func (r *Runtime) SandboxAlive(id string) (bool, error) {
	sb, err := r.loadSandbox(id)
	if err != nil {
		return false, err
	}
	return sb.Ready && pauseAlive(sb), nil
}

// WaitSandbox blocks until the sandbox's pause process (or its user
// namespace holder) exits, the sandbox then being lost, or ctx ends.
func (r *Runtime) WaitSandbox(ctx context.Context, id string) error {
	sb, err := r.loadSandbox(id)
	if err != nil {
		return err
	}
	if sb.Holder.PID == 0 {
		return pause.Wait(ctx, sb.Pause)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	for _, p := range []pause.Process{sb.Pause, sb.Holder} {
		go func() { errc <- pause.Wait(wctx, p) }()
	}
	return <-errc
}
