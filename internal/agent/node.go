package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// maxPods is how many pods a node takes, the kubelet's default.
const maxPods = 110

// Version is the version a node reports as its kubelet version.
const Version = "v1.37.2-peapod"

// nodeLeaseNamespace holds the nodes' heartbeat Leases; the API server makes it.
const nodeLeaseNamespace = "kube-node-lease"

// registerNode registers this node (see RegisterNode) and writes its
// status.
func (a *Agent) registerNode(ctx context.Context) error {
	if err := RegisterNode(ctx, a.client, Registration{NodeName: a.cfg.NodeName, Annotations: a.cfg.Annotations}); err != nil {
		return err
	}
	return a.updateNodeStatus(ctx, true)
}

// nodeStatusReportPeriod is how often the node's status is written even
// when nothing changed, as the kubelet's nodeStatusReportFrequency when
// the Lease carries the heartbeat.
const nodeStatusReportPeriod = 5 * time.Minute

// nodeReport is what the node-status loop remembers between reports.
type nodeReport struct {
	// last is the status last written, reported is when.
	last     *corev1.NodeStatus
	reported time.Time
	// runtimes is the nodeInfo runtime versions string, asked of the OCI
	// runtime binaries once.
	runtimes string
}

// reportNodeStatus checks the node's status every 10 s, as the kubelet's
// nodeStatusUpdateFrequency, and writes it when it changed or every
// nodeStatusReportPeriod; the Lease is the heartbeat in between.
func (a *Agent) reportNodeStatus(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.updateNodeStatus(ctx, false); err != nil && ctx.Err() == nil {
				a.log.Error("update node status", "err", err)
			}
		}
	}
}

// updateNodeStatus writes the node's status if force, if it differs from
// the last one written (heartbeat times aside) or if the last write is
// older than nodeStatusReportPeriod. Otherwise it does no API call.
func (a *Agent) updateNodeStatus(ctx context.Context, force bool) error {
	now := time.Now()
	if !force && a.node.last != nil && now.Sub(a.node.reported) < nodeStatusReportPeriod {
		next := a.nodeStatus(*a.node.last, now)
		if nodeStatusEqual(next, *a.node.last) {
			return nil
		}
	}
	nodes := a.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node %s: %w", a.cfg.NodeName, err)
	}
	node.Status = a.nodeStatus(node.Status, now)
	updated, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil // next tick retries on the newer object
	}
	if err != nil {
		return fmt.Errorf("update status of node %s: %w", a.cfg.NodeName, err)
	}
	a.node.last, a.node.reported = &updated.Status, now
	return nil
}

// nodeStatusEqual compares two node statuses ignoring the conditions'
// heartbeat times.
func nodeStatusEqual(x, y corev1.NodeStatus) bool {
	x, y = *x.DeepCopy(), *y.DeepCopy()
	for _, s := range []*corev1.NodeStatus{&x, &y} {
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
	}
	return apiequality.Semantic.DeepEqual(x, y)
}

// nodeStatus describes this machine as the kubelet would.
func (a *Agent) nodeStatus(prev corev1.NodeStatus, now time.Time) corev1.NodeStatus {
	// The runtime's capacity is also what containers read for limits they
	// do not set: one source for both.
	capacity := a.rt.NodeCapacity()
	capacity[corev1.ResourcePods] = *resource.NewQuantity(maxPods, resource.DecimalSI)
	diskFree := 1.0
	var fs unix.Statfs_t
	if err := unix.Statfs(a.rt.DataDir(), &fs); err == nil {
		diskFree = float64(fs.Bavail) / float64(max(fs.Blocks, 1))
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	hostname, _ := os.Hostname()
	status := corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.nodeIP},
			{Type: corev1.NodeHostName, Address: hostname},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: a.cfg.DaemonPort}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               readTrim("/etc/machine-id"),
			BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
			KernelVersion:           unix.ByteSliceToString(uts.Release[:]),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: a.runtimeVersions(),
			KubeletVersion:          Version,
			OperatingSystem:         goruntime.GOOS,
			Architecture:            goruntime.GOARCH,
		},
		Images: prev.Images,
	}
	conds := []corev1.NodeCondition{
		nodeCondition(corev1.NodeReady, true, "KubeletReady", "peapod agent is posting ready status"),
		nodeCondition(corev1.NodeMemoryPressure, false, "KubeletHasSufficientMemory", "peapod agent has sufficient memory available"),
		nodeCondition(corev1.NodeDiskPressure, diskFree < 0.1, "KubeletHasNoDiskPressure", "peapod agent has no disk pressure"),
		nodeCondition(corev1.NodePIDPressure, false, "KubeletHasSufficientPID", "peapod agent has sufficient PID available"),
		nodeCondition(corev1.NodeNetworkUnavailable, false, "RouteCreated", "peapod's pod network is up"),
	}
	if diskFree < 0.1 {
		conds[2].Reason, conds[2].Message = "KubeletHasDiskPressure", "less than 10% of the data dir's filesystem is free"
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = metav1.NewTime(now)
		conds[i].LastTransitionTime = metav1.NewTime(now)
		for _, p := range prev.Conditions {
			if p.Type == conds[i].Type && p.Status == conds[i].Status {
				conds[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
	status.Conditions = conds
	return status
}

func nodeCondition(t corev1.NodeConditionType, on bool, reason, msg string) corev1.NodeCondition {
	s := corev1.ConditionFalse
	if on {
		s = corev1.ConditionTrue
	}
	return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg}
}

// runtimeVersions lists the handlers' versions, asking the binaries once.
func (a *Agent) runtimeVersions() string {
	if a.node.runtimes != "" {
		return a.node.runtimes
	}
	var parts []string
	for _, name := range a.rt.Handlers() {
		h, err := a.rt.Handler(name)
		if err != nil {
			continue
		}
		v, err := h.Version(context.Background())
		if err != nil {
			continue
		}
		parts = append(parts, name+"://"+v)
	}
	a.node.runtimes = strings.Join(parts, ",")
	return a.node.runtimes
}

// renewLease keeps the node's Lease fresh, the heartbeat node lifecycle
// watches, renewing it every LeaseDuration/4 (10 s by default).
func (a *Agent) renewLease(ctx context.Context) {
	every := a.cfg.LeaseDuration / 4
	var lease *coordinationv1.Lease
	for {
		var err error
		if lease, err = a.renewLeaseOnce(ctx, lease); err != nil && ctx.Err() == nil {
			a.log.Error("renew node lease", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// renewLeaseOnce renews the node's Lease, creating it if missing. prev,
// the Lease as last written, saves a read; on any error it returns nil so
// the next renewal reads the Lease afresh.
func (a *Agent) renewLeaseOnce(ctx context.Context, prev *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	leases := a.client.CoordinationV1().Leases(nodeLeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	lease := prev
	if lease == nil {
		var err error
		lease, err = leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			lease = &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: nodeLeaseNamespace},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity:       ptr.To(a.cfg.NodeName),
					LeaseDurationSeconds: ptr.To(int32(a.cfg.LeaseDuration.Seconds())),
					RenewTime:            &now,
				},
			}
			if node, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{}); err == nil {
				lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
			}
			created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
			if err != nil {
				return nil, err
			}
			return created, nil
		}
		if err != nil {
			return nil, err
		}
	}
	lease = lease.DeepCopy()
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
	updated, err := leases.Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return updated, nil
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return string(bytes.TrimSpace(b))
}

func osImage() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return goruntime.GOOS
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return goruntime.GOOS
}
