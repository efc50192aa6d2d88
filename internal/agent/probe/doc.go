// Package probe runs Kubernetes container probes (liveness, readiness and
// startup) the way the kubelet does, for the node agent.
//
// It knows nothing of the agent's internals: what it needs about a
// container comes in a [Target], the pod IP and a function that execs a
// command in the container.
//
// One attempt:
//
//	res, msg, err := probe.Run(ctx, c.LivenessProbe, c, probe.Target{PodIP: ip, Exec: execFn})
//
// runs one exec, httpGet, tcpSocket or grpc attempt bounded by
// timeoutSeconds. err is set only when no attempt could be made; the
// caller discards such attempts.
//
// Continuous probing, as the agent uses it:
//
//  1. m := probe.NewManager(onChange) once; onChange receives an [Update]
//     each time a probe's result of a container flips.
//  2. When a container has started: m.AddContainer(podUID, c, containerID,
//     startedAt, target). Readiness is Failure, liveness Success and
//     startup Unknown until the probes say otherwise; m.Result answers at
//     any time (Success for a probe the container does not have).
//  3. On a liveness or startup Failure update, restart the container, then
//     m.RemoveContainer(oldID) and m.AddContainer(..., newID, ...).
//  4. m.RemovePod(podUID) when the pod's containers are stopped, and
//     m.Stop() when the agent shuts down.
//
// Container readiness is then Result(id, Readiness) == Success, and
// "started" is Result(id, Startup) == Success.
//
// [NewHTTPGetRequest], [NewHTTPClient] and [ResolvePort] are shared with
// the lifecycle hook package, whose httpGet hooks the kubelet sends the
// same way.
package probe
