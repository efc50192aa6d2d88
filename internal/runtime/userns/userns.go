// Package userns gives pods with spec.hostUsers: false their user
// namespace, as the kubelet's pkg/kubelet/userns and containerd do.
//
// Usage, as the runtime does for such a pod:
//
//  1. Supported() tells whether this kernel can run it at all; its error
//     is the reason the pod fails.
//  2. An Allocator, one per node, hands the pod a range of Length host IDs
//     (Allocate): a multiple of Length at or above Length, so host IDs
//     below 65536, root's among them, are never mapped into a pod, chosen
//     at random among the free ranges as the kubelet chooses. The range is
//     persisted by the caller (in the sandbox's record); after a restart
//     Record registers it again, and Release frees it with the pod.
//  3. The pod's user namespace maps IDs 0..Length-1 to that range (see
//     pause.StartHolder); MountIDMapped then shows the pod's root
//     filesystem and volumes through idmapped mounts, so files the host's
//     root owns are the pod root's inside, and what the pod's root writes
//     lands on disk as the host's root.
//
// The Allocator is pure (its randomness is injected) and safe for
// concurrent use; Supported and MountIDMapped touch the kernel.
package userns

import (
	"errors"
	"fmt"
	"sync"
)

// Length is how many IDs each pod's user namespace maps: 65536, the
// kubelet's default (userNsUnitLength, idsPerPod).
const Length = 65536

// slots is how many ranges of Length are handed out: those from Length up
// to 2^32 (the kubelet's default when /etc/subuid has no "kubelet" entry),
// but the last, which would end at (uid_t)-1, an ID the kernel never maps.
const slots = (1<<32)/Length - 2

// Mapping is a pod's ID range: container IDs 0..Length-1 are host IDs
// HostID..HostID+Length-1, for users and groups alike.
type Mapping struct {
	HostID uint32 `json:"hostID"`
	Length uint32 `json:"length"`
}

// String is the mapping as /proc/PID/uid_map shows it.
func (m Mapping) String() string {
	return fmt.Sprintf("0 %d %d", m.HostID, m.Length)
}

// ErrExhausted: every range is taken.
var ErrExhausted = errors.New("no free user namespace range")

// Allocator hands out one range of host IDs per pod UID.
type Allocator struct {
	intn func(n int) int

	mu    sync.Mutex
	used  map[uint32]string // slot → pod UID
	byPod map[string]uint32 // pod UID → slot
}

// NewAllocator returns an allocator drawing where to start looking for a
// free range from intn (math/rand/v2's IntN, or a fixed function in tests).
func NewAllocator(intn func(n int) int) *Allocator {
	return &Allocator{intn: intn, used: map[uint32]string{}, byPod: map[string]uint32{}}
}

// Allocate returns the pod's range, choosing a free one if the pod has
// none yet: from a random slot on, the first free one (the kubelet's
// random-scan allocation). Calling it again for the same pod returns the
// same range.
func (a *Allocator) Allocate(podUID string) (Mapping, error) {
	if podUID == "" {
		return Mapping{}, fmt.Errorf("allocate user namespace: pod UID is empty")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.byPod[podUID]; ok {
		return mappingOf(s), nil
	}
	start := a.intn(slots)
	for i := 0; i < slots; i++ {
		s := uint32((start+i)%slots) + 1
		if _, taken := a.used[s]; !taken {
			a.used[s] = podUID
			a.byPod[podUID] = s
			return mappingOf(s), nil
		}
	}
	return Mapping{}, fmt.Errorf("allocate user namespace for pod %s: %w", podUID, ErrExhausted)
}

// Record registers a range a pod already has (read back from disk after a
// restart). It refuses a range this package would never hand out, and one
// another pod holds; recording a pod's own range again is a no-op.
func (a *Allocator) Record(podUID string, m Mapping) error {
	if m.Length != Length {
		return fmt.Errorf("record user namespace of pod %s: length %d, want %d", podUID, m.Length, Length)
	}
	if m.HostID%Length != 0 || m.HostID < Length {
		return fmt.Errorf("record user namespace of pod %s: host ID %d is not a multiple of %d at or above it", podUID, m.HostID, Length)
	}
	s := m.HostID / Length
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.byPod[podUID]; ok {
		if prev != s {
			return fmt.Errorf("record user namespace of pod %s: it already has host IDs from %d", podUID, mappingOf(prev).HostID)
		}
		return nil
	}
	if other, taken := a.used[s]; taken {
		return fmt.Errorf("record user namespace of pod %s: host IDs from %d belong to pod %s", podUID, m.HostID, other)
	}
	a.used[s] = podUID
	a.byPod[podUID] = s
	return nil
}

// Release frees the pod's range; a pod without one is a no-op.
func (a *Allocator) Release(podUID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.byPod[podUID]; ok {
		delete(a.byPod, podUID)
		delete(a.used, s)
	}
}

// InUse reports how many ranges are allocated.
func (a *Allocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byPod)
}

func mappingOf(slot uint32) Mapping { return Mapping{HostID: slot * Length, Length: Length} }
