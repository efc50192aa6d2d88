package agent

import (
	"bytes"
	"context"

	"github.com/peapod/peapod/internal/runtime/oci"
)

// execFunc runs a command in a container for probes and hooks, returning
// its combined output and exit code.
func (a *Agent) execFunc(cid string) func(ctx context.Context, cmd []string) ([]byte, int, error) {
	return func(ctx context.Context, cmd []string) ([]byte, int, error) {
		var out bytes.Buffer
		code, err := a.rt.Exec(ctx, cid, cmd, oci.ExecIO{Stdout: &out, Stderr: &out})
		return out.Bytes(), code, err
	}
}
