package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/config"
	"github.com/peapod/peapod/internal/network"
	"github.com/peapod/peapod/internal/runtime/pause"
	"github.com/peapod/peapod/internal/runtime/userns"
)

// sandboxRecord is what a sandbox needs to be found, inspected and torn down
// after peapod restarts. It is written to <sandbox dir>/sandbox.json.
type sandboxRecord struct {
	ID        string          `json:"id"`
	Pod       *corev1.Pod     `json:"pod"`
	Handler   string          `json:"handler"`
	CreatedAt time.Time       `json:"createdAt"`
	NetNSPath string          `json:"netnsPath"`
	Hostname  string          `json:"hostname"`
	SharePID  bool            `json:"sharePID,omitempty"`
	Cgroup    string          `json:"cgroup"`
	Pause     pause.Process   `json:"pause"`
	Network   *network.Result `json:"network,omitempty"`
	// NodeIPs are the node's addresses when the pod is on the node's
	// network (hostNetwork): its IPs.
	NodeIPs []string `json:"nodeIPs,omitempty"`
	// UserNS is the pod's ID range when it has its own user namespace
	// (hostUsers: false), and Holder the process holding that namespace
	// and those it owns (see pause.StartHolder).
	UserNS *userns.Mapping `json:"userNS,omitempty"`
	Holder pause.Process   `json:"holder,omitzero"`
	// SELinuxLevel is the MCS level the pod's containers share where
	// SELinux is enabled; empty elsewhere.
	SELinuxLevel string `json:"selinuxLevel,omitempty"`
	// Volumes maps each pod volume to the host path containers bind.
	Volumes map[string]string `json:"volumes,omitempty"`
	// Warm marks a sandbox made ahead of any pod, in the warm pool.
	Warm bool `json:"warm,omitempty"`
	// Ready is set once every step of RunPodSandbox succeeded; a record
	// without it is a half-made sandbox that only teardown may touch.
	Ready bool `json:"ready"`
	// PodCgroup is what the pod cgroup was last given (see
	// podCgroupConfig); nil until the first container is created.
	PodCgroup *podCgroupConfig `json:"podCgroup,omitempty"`
}

// containerRecord is a container's metadata, written to
// <container dir>/container.json. Its exit status is not here: the pause
// process writes that to the exit file, whether or not peapod is running.
type containerRecord struct {
	ID        string    `json:"id"`
	SandboxID string    `json:"sandboxID"`
	Name      string    `json:"name"`
	Init      bool      `json:"init,omitempty"`
	Attempt   int       `json:"attempt"`
	Image     string    `json:"image"`
	ImageRef  string    `json:"imageRef"`
	ImageID   string    `json:"imageID"`
	Handler   string    `json:"handler"`
	LogPath   string    `json:"logPath"`
	CreatedAt time.Time `json:"createdAt"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	PID       int       `json:"pid,omitempty"`
	// TerminationMessagePath is the host file bound at the container's
	// terminationMessagePath.
	TerminationMessagePath string `json:"terminationMessagePath,omitempty"`
	// StopSignal is the signal that stops the container, as Kubernetes
	// names it: its lifecycle.stopSignal, the image's, or SIGTERM.
	StopSignal string `json:"stopSignal,omitempty"`
	// Resources are the cpu and memory requests and limits the
	// container's cgroup has: those it was created with, then each
	// in-place resize's.
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// View reads the sandboxes and containers recorded in a data directory. It
// changes nothing, so `peapod ps` can use it beside a running peapod.
type View struct {
	cfg   config.Node
	paths config.Paths
}

// NewView reads the state of the node configured by cfg.
func NewView(cfg config.Node) *View { return &View{cfg: cfg, paths: cfg.Paths()} }

const (
	sandboxFile   = "sandbox.json"
	containerFile = "container.json"
	exitFile      = "exit"
	pidFile       = "pid"
	runtimeLog    = "runtime.log"
)

// writeJSON replaces path with v's JSON atomically, so a crash leaves the
// old record or the new one, never half of one.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

func (r *View) sandboxDir(id string) string { return r.paths.Sandbox(id) }

func (r *View) containerDir(sandboxID, id string) string {
	return r.paths.Container(sandboxID, id)
}

func (r *View) loadSandbox(id string) (*sandboxRecord, error) {
	rec, err := loadSandboxAt(r.sandboxDir(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load sandbox %s: %w", id, err)
	}
	return rec, nil
}

func (r *View) saveSandbox(rec *sandboxRecord) error {
	return saveSandboxAt(r.sandboxDir(rec.ID), rec)
}

// saveSandboxAt writes rec into the sandbox directory dir, which is not
// sandboxDir(rec.ID) while the sandbox is warm.
func saveSandboxAt(dir string, rec *sandboxRecord) error {
	return writeJSON(filepath.Join(dir, sandboxFile), rec)
}

func loadSandboxAt(dir string) (*sandboxRecord, error) {
	var rec sandboxRecord
	if err := readJSON(filepath.Join(dir, sandboxFile), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// SandboxIDs lists every sandbox directory on disk, whether or not its
// record is readable: what a full teardown (`peapod reset`) must sweep.
func (r *View) SandboxIDs() ([]string, error) { return r.sandboxIDs() }

// sandboxIDs lists the sandboxes on disk, ready or not.
func (r *View) sandboxIDs() ([]string, error) {
	entries, err := os.ReadDir(r.paths.Pods())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

func (r *View) loadContainer(sandboxID, id string) (*containerRecord, error) {
	var rec containerRecord
	if err := readJSON(filepath.Join(r.containerDir(sandboxID, id), containerFile), &rec); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("load container %s: %w", id, err)
	}
	return &rec, nil
}

func (r *View) saveContainer(rec *containerRecord) error {
	return writeJSON(filepath.Join(r.containerDir(rec.SandboxID, rec.ID), containerFile), rec)
}

// containerIDs lists the containers of one sandbox on disk.
func (r *View) containerIDs(sandboxID string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(r.sandboxDir(sandboxID), "containers"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list containers of %s: %w", sandboxID, err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// DataDir is the directory holding this node's state.
func (r *View) DataDir() string { return r.cfg.DataDir }
