// Package nodeserver is the node agent's HTTPS server for what the API
// server proxies to a node: container logs, exec, attach and port-forward,
// on the kubelet's own paths, so the API server's proxy and kubectl work
// unchanged.
//
//	GET /containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&sinceSeconds=&sinceTime=&timestamps=&limitBytes=
//	/exec/{namespace}/{pod}[/{uid}]/{container}?command=..&command=..&stdin=1&stdout=1&stderr=1&tty=1
//	/attach/{namespace}/{pod}[/{uid}]/{container}?stdin=1&stdout=1&stderr=1&tty=1
//	/portForward/{namespace}/{pod}[/{uid}]
//	GET /healthz, /pods (a v1 PodList of this node's pods), /configz, /metrics
//	GET /debug/pprof/ (the agent's profiles: heap, goroutine, profile, ...)
//
// A handler that panics is answered with a 500 (a stream already under
// way is aborted instead), logged at error level with its stack, and
// counted in node_server_request_panics_total at /metrics.
//
// (exec and attach also take the kubelet's input/output/error names.)
// Exec and attach speak remotecommand over WebSocket, in every subprotocol
// the kubelet and kube-apiserver serve (channel.k8s.io,
// base64.channel.k8s.io, v4.channel.k8s.io, v4.base64.channel.k8s.io,
// v5.channel.k8s.io; websocket.go says how they differ), and over SPDY
// (v4.channel.k8s.io down to v1), reporting a non-zero exit code on the
// status channel as the kubelet does; port-forward speaks SPDY
// portforward.k8s.io, WebSocket v4 (?port=) and SPDY tunneled in a
// WebSocket (kubectl 1.31+). Connections to the pod's ports are made
// inside its network namespace. Logs are a plain chunked stream, or a
// WebSocket (binary.k8s.io, base64.binary.k8s.io) when asked for one.
//
// Usage:
//
//  1. New(rt, Options{Certificate: serving cert, ClientCAs: the CA that
//     signs the API server's client certificate}).
//  2. Serve(ctx, listener): TLS with a verified client certificate
//     required on every connection; it returns nil once ctx ends, having
//     closed every connection, streams included.
//
// Kernel tests need root; they skip without it and fail instead when
// PEAPOD_REQUIRE_ROOT=1.
package nodeserver
