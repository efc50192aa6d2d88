package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod/peapod/internal/runtime/oci"
)

// Exec runs cmd in a running container with the container's own
// environment, user, working directory and security settings, as
// `kubectl exec` does, and returns its exit code.
func (r *Runtime) Exec(ctx context.Context, cid string, cmd []string, stdio oci.ExecIO) (int, error) {
	if len(cmd) == 0 {
		return -1, fmt.Errorf("exec in %s: %w: no command", cid, ErrInvalid)
	}
	sandboxID, err := r.sandboxOf(cid)
	if err != nil {
		return -1, err
	}
	rec, err := r.loadContainer(sandboxID, cid)
	if err != nil {
		return -1, err
	}
	data, err := os.ReadFile(filepath.Join(r.containerDir(sandboxID, cid), "config.json"))
	if err != nil {
		return -1, fmt.Errorf("exec in %s: read OCI spec: %w", rec.Name, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return -1, fmt.Errorf("exec in %s: decode OCI spec: %w", rec.Name, err)
	}
	if s.Process == nil {
		return -1, fmt.Errorf("exec in %s: OCI spec has no process", rec.Name)
	}
	p := *s.Process
	p.Args = cmd
	p.Terminal = stdio.TTY
	h, err := r.Handler(rec.Handler)
	if err != nil {
		return -1, err
	}
	code, err := h.Exec(ctx, cid, p, stdio)
	if err != nil {
		return code, fmt.Errorf("exec in container %q: %w", rec.Name, err)
	}
	return code, nil
}
