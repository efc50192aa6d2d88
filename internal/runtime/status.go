package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/runtime/pause"
)

// ContainerState is where a container is in its life.
type ContainerState string

// Container states, as CRI names them.
const (
	ContainerCreated ContainerState = "Created"
	ContainerRunning ContainerState = "Running"
	ContainerExited  ContainerState = "Exited"
	ContainerUnknown ContainerState = "Unknown"
)

// ContainerStatus is what the runtime knows of one container.
type ContainerStatus struct {
	ID         string
	SandboxID  string
	Name       string
	Init       bool
	Attempt    int
	Image      string
	ImageRef   string
	ImageID    string
	Handler    string
	State      ContainerState
	PID        int
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
	// Reason is Kubernetes' terminated reason: Completed, Error, OOMKilled.
	Reason string
	// Message is the termination message the container wrote, if any.
	Message string
	LogPath string
	// StopSignal is the signal that stops it ("SIGTERM", "SIGUSR1", ...).
	StopSignal string
	// Resources are the cpu and memory requests and limits its cgroup has
	// (nil for a container created before peapod recorded them).
	Resources *corev1.ResourceRequirements
}

// SandboxStatus is what the runtime knows of one sandbox.
type SandboxStatus struct {
	ID           string
	PodName      string
	PodNamespace string
	PodUID       string
	Handler      string
	CreatedAt    time.Time
	Ready        bool
	// Alive reports whether the pause process still holds the namespaces.
	Alive     bool
	PausePID  int
	PIDNSPID  int
	NetNSPath string
	IPs       []string
	Interface string
	HostVeth  string
	Gateway   string
	Hostname  string
	// HostNetwork, HostIPC and HostPID say which of the node's namespaces
	// the pod shares; a HostNetwork sandbox has no NetNSPath and the
	// node's IPs.
	HostNetwork bool `json:",omitempty"`
	HostIPC     bool `json:",omitempty"`
	HostPID     bool `json:",omitempty"`
	// UserNamespace is the pod's own user namespace's ID mapping as
	// uid_map shows it ("0 HOSTID LENGTH"), for hostUsers: false; the
	// holder process keeps it (HolderPID).
	UserNamespace string `json:",omitempty"`
	HolderPID     int    `json:",omitempty"`
	// Warm marks a sandbox of the warm pool, made ahead of any pod.
	Warm       bool `json:",omitempty"`
	Containers []*ContainerStatus
}

// ContainerStatus reports a container's state. Its exit is read from what
// the pause process recorded, so it is right even if peapod was not running
// when the container exited.
func (r *Runtime) ContainerStatus(ctx context.Context, cid string) (*ContainerStatus, error) {
	sandboxID, err := r.sandboxOf(cid)
	if err != nil {
		return nil, err
	}
	sb, err := r.loadSandbox(sandboxID)
	if err != nil {
		return nil, err
	}
	return r.containerStatus(sb, cid)
}

func (r *View) containerStatus(sb *sandboxRecord, cid string) (*ContainerStatus, error) {
	rec, err := r.loadContainer(sb.ID, cid)
	if err != nil {
		return nil, err
	}
	dir := r.containerDir(sb.ID, cid)
	st := &ContainerStatus{
		ID: rec.ID, SandboxID: rec.SandboxID, Name: rec.Name, Init: rec.Init, Attempt: rec.Attempt,
		Image: rec.Image, ImageRef: rec.ImageRef, ImageID: rec.ImageID, Handler: rec.Handler,
		PID: rec.PID, CreatedAt: rec.CreatedAt, StartedAt: rec.StartedAt, LogPath: rec.LogPath,
		StopSignal: rec.StopSignal, Resources: rec.Resources,
	}
	switch exit, err := pause.ReadExit(filepath.Join(dir, exitFile)); {
	case err == nil:
		st.State = ContainerExited
		st.ExitCode = exit.ExitCode
		st.FinishedAt = exit.FinishedAt
		st.Reason = exitReason(exit.ExitCode, cgroupOOMKills(r.containerCgroup(sb.ID, cid)))
		st.Message = terminationMessage(rec.TerminationMessagePath)
		st.PID = 0
	case rec.StartedAt.IsZero():
		st.State = ContainerCreated
	case pauseAlive(sb):
		// Running, or exited with its exit about to be recorded: pause
		// writes the exit file once the output pipes drain.
		st.State = ContainerRunning
	default:
		// Started, no exit recorded, and gone: the pause process that
		// would have recorded the exit died with it.
		st.State = ContainerUnknown
		st.Reason = "ContainerStatusUnknown"
		st.ExitCode = 137
	}
	return st, nil
}

func exitReason(code int, oomKills uint64) string {
	switch {
	case oomKills > 0:
		return "OOMKilled"
	case code == 0:
		return "Completed"
	default:
		return "Error"
	}
}

// terminationMessage reads what the container wrote to its termination
// message path, capped at 4 KiB as the kubelet caps it.
func terminationMessage(path string) string {
	if path == "" {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(data) > 4096 {
		data = data[:4096]
	}
	return strings.TrimRight(string(data), "\n")
}

// SandboxStatus reports a sandbox and its containers.
func (r *View) SandboxStatus(ctx context.Context, id string) (*SandboxStatus, error) {
	sb, err := r.loadSandbox(id)
	if err != nil {
		return nil, err
	}
	st := sandboxHeader(sb)
	cids, err := r.containerIDs(id)
	if err != nil {
		return nil, err
	}
	for _, cid := range cids {
		cs, err := r.containerStatus(sb, cid)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		st.Containers = append(st.Containers, cs)
	}
	sort.Slice(st.Containers, func(i, j int) bool { return st.Containers[i].CreatedAt.Before(st.Containers[j].CreatedAt) })
	return st, nil
}

// sandboxHeader is a sandbox's status without its containers.
func sandboxHeader(sb *sandboxRecord) *SandboxStatus {
	st := &SandboxStatus{
		ID: sb.ID, Handler: sb.Handler, CreatedAt: sb.CreatedAt, Ready: sb.Ready,
		Alive: pauseAlive(sb), PausePID: sb.Pause.PID, PIDNSPID: sb.Pause.PIDNamespacePID,
		NetNSPath: sb.NetNSPath, Hostname: sb.Hostname, IPs: sandboxIPs(sb), Warm: sb.Warm,
		HolderPID: sb.Holder.PID,
	}
	if sb.Pod != nil {
		st.PodName, st.PodNamespace, st.PodUID = sb.Pod.Name, sb.Pod.Namespace, string(sb.Pod.UID)
		host := hostNamespacesOf(sb.Pod)
		st.HostNetwork, st.HostIPC, st.HostPID = host.network, host.ipc, host.pid
	}
	if sb.UserNS != nil {
		st.UserNamespace = sb.UserNS.String()
	}
	if sb.Network != nil {
		st.Interface, st.HostVeth, st.Gateway = sb.Network.Interface, sb.Network.HostVeth, sb.Network.Gateway
	}
	return st
}

// WarmSandboxes reports the warm pool's sandboxes, made ahead of any pod.
func (r *View) WarmSandboxes() ([]*SandboxStatus, error) {
	entries, err := os.ReadDir(r.paths.WarmSandboxes())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list warm sandboxes: %w", err)
	}
	var out []*SandboxStatus
	for _, e := range entries {
		if rec, err := loadSandboxAt(r.warmDir(e.Name())); err == nil {
			out = append(out, sandboxHeader(rec))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// ListSandboxes reports every sandbox on this node, oldest first.
func (r *View) ListSandboxes(ctx context.Context) ([]*SandboxStatus, error) {
	ids, err := r.sandboxIDs()
	if err != nil {
		return nil, err
	}
	var out []*SandboxStatus
	for _, id := range ids {
		st, err := r.SandboxStatus(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // removed while we listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}
