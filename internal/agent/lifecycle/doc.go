// Package lifecycle runs a container's postStart and preStop hooks the
// way the kubelet does, for the node agent.
//
// Usage:
//
//  1. After starting container c, if c.Lifecycle.PostStart is set, call
//     Run(ctx, c.Lifecycle.PostStart, c, target). On error, record a
//     FailedPostStartHook event (err.(*HookError).EventMessage(pod) gives
//     the kubelet's text) and kill the container, as the kubelet does.
//  2. Before stopping c, if c.Lifecycle.PreStop is set, call Run with a ctx
//     that ends with the termination grace period; on error record a
//     FailedPreStopHook event. Then send the stop signal.
//
// The target is the same [probe.Target] the probes use: the pod IP for
// httpGet hooks and an exec function for exec hooks.
package lifecycle
