package runtime

import (
	goruntime "runtime"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// NodeIP is the node's address: the one configured, else the first IPv4
// address of the interface holding the default route. It is a hostNetwork
// pod's IP and every container's status.hostIP.
func (r *Runtime) NodeIP() string { return r.nodeIP }

func (r *Runtime) nodeIPs() []string {
	if r.nodeIP == "" {
		return nil
	}
	return []string{r.nodeIP}
}

// NodeCapacity is what this node offers pods: every CPU, all memory, and
// the data dir's filesystem as ephemeral storage. peapod reserves nothing
// for itself or the system, so it is the node's allocatable as well: what
// the agent reports in the Node's status, and what a resourceFieldRef to
// a limit the container does not set reads, as the kubelet substitutes
// node allocatable.
func (r *Runtime) NodeCapacity() corev1.ResourceList {
	c := corev1.ResourceList{
		corev1.ResourceCPU: *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		c[corev1.ResourceMemory] = *resource.NewQuantity(int64(si.Totalram)*int64(si.Unit), resource.BinarySI)
	}
	var fs unix.Statfs_t
	if unix.Statfs(r.cfg.DataDir, &fs) == nil {
		c[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	return c
}
