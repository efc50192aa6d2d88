// Package runtime runs pod sandboxes and containers on this node.
//
// A sandbox is a pod's pause process (internal/runtime/pause) holding its
// network, IPC and UTS namespaces (or sharing the node's, for hostNetwork,
// hostIPC and hostPID pods), a pinned network namespace wired by CNI
// (internal/network), a pod cgroup, the pod's volumes (internal/volume)
// and its /etc files (podfiles). Containers are OCI bundles built from the
// image's rootfs (internal/image) and a runtime-spec made by the pure spec
// package, started by the pod's OCI runtime (oci: runc, crun, any other)
// inside the sandbox's namespaces.
//
// The Runtime keeps what it made on disk under the data dir (pods/<id>/
// sandbox.json and each container's state), so a restarted agent finds
// and adopts it; NewView reads the same state for `peapod ps` without
// changing anything. A warm pool of sandboxes made ahead of any pod
// (warm.go) lets a pod start take one and only add its own files and
// volumes. RunPodSandbox / StartPod, CreateContainer, StartContainer,
// StopContainer, RemoveContainer, StopPodSandbox and RemovePodSandbox are
// the CRI-shaped operations the agent calls.
package runtime
