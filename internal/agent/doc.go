// Package agent is the node agent: the kubelet's role in peapod.
//
// An Agent registers its Node (without a podCIDR: the server's node IPAM
// gives one, see WaitForPodCIDR), keeps the node's Lease and status
// current, and runs the pods bound to it. A pod informer filtered on
// spec.nodeName feeds one worker per pod (podworkers.go), which drives
// the node runtime (internal/runtime) towards the pod's spec: sandbox,
// init containers and sidecars, containers with their restart policy and
// back-off, probes and lifecycle hooks (probe, lifecycle), ephemeral
// containers, in-place resize, and graceful termination. Each worker
// writes the pod's status as Kubernetes defines it (podstate.go,
// status.go) and records the kubelet's Events.
//
// The agent owns no state of its own: after a restart it adopts the
// sandboxes the runtime finds on disk and reconciles them with the pods
// the API lists, removing those whose pod is gone (agent.go), so pods
// keep running while the agent is down.
// The node's HTTPS server for logs, exec, attach and port-forward is the
// nodeserver subpackage.
package agent
