package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Update changes the cgroup resources of running container id in place,
// as `<runtime> update --resources FILE` does for both runc and crun (the
// kubelet's UpdateContainerResources through containerd): the CPU shares,
// quota and period and the memory limit set in res; what res leaves unset
// stays as it is. An unknown id wraps ErrNotFound.
func (r *Runtime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	body, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("%s update %s: encode resources: %w", r.Handler, id, err)
	}
	// A file, not stdin: crun reads --resources only from a path.
	f, err := os.CreateTemp("", "ppupdate")
	if err != nil {
		return fmt.Errorf("%s update %s: %w", r.Handler, id, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s update %s: write resources: %w", r.Handler, id, err)
	}
	cmd := exec.CommandContext(ctx, r.Binary, "--root", r.Root, "update", "--resources", f.Name(), id)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if isNotFound(msg) {
			err = fmt.Errorf("%w: %s", ErrNotFound, msg)
		} else if msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return fmt.Errorf("%s update %s: %w", r.Handler, id, r.notFound(id, err))
	}
	return nil
}
