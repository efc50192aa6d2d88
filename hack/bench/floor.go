package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ociFloor times `<runtime> run -d` of `sleep 3600` from a bundle whose
// rootfs is Debian's static busybox (the binary the busybox image holds):
// what a container costs the OCI runtime alone.
func ociFloor(ctx context.Context, runtime string, n int) ([]time.Duration, error) {
	dir, err := os.MkdirTemp("", "ppbf")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bundle, root := filepath.Join(dir, "bundle"), filepath.Join(dir, "state")
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{filepath.Join(rootfs, "bin"), filepath.Join(rootfs, "proc"), filepath.Join(rootfs, "dev"), filepath.Join(rootfs, "sys"), filepath.Join(rootfs, "tmp"), root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return nil, err
	}
	for _, l := range []string{"sh", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", l)); err != nil {
			return nil, err
		}
	}
	if _, err := run(ctx, runtime, "spec", "--bundle", bundle); err != nil {
		return nil, err
	}
	var spec map[string]any
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, err
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"sleep", "3600"}
	root2 := spec["root"].(map[string]any)
	root2["readonly"] = true
	linux := spec["linux"].(map[string]any)
	linux["cgroupsPath"] = "/ppbench-floor/c"
	defer removeCgroups("ppbench-floor")

	var took []time.Duration
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("ppbf-%s-%d", runtime, i)
		linux["cgroupsPath"] = "/ppbench-floor/" + id
		data, _ := json.Marshal(spec)
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
			return took, err
		}
		cmd := exec.CommandContext(ctx, runtime, "--root", root, "run", "-d", "--bundle", bundle, id)
		// stdio stays /dev/null: the detached container keeps its copies.
		start := time.Now()
		err := cmd.Run()
		took = append(took, time.Since(start))
		if err != nil {
			_, _ = run(context.Background(), runtime, "--root", root, "delete", "-f", id)
			return took, fmt.Errorf("%s run -d: %w", runtime, err)
		}
		if _, err := run(ctx, runtime, "--root", root, "delete", "-f", id); err != nil {
			return took, err
		}
	}
	return took, nil
}

// removeCgroups removes /sys/fs/cgroup/*/<name> and what is below it.
func removeCgroups(name string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", name))
	for _, d := range append(dirs, more...) {
		subs, _ := os.ReadDir(d)
		for _, s := range subs {
			if s.IsDir() {
				_ = os.Remove(filepath.Join(d, s.Name()))
			}
		}
		_ = os.Remove(d)
	}
}
