// Package pause runs and talks to peapod's per-pod infra process.
//
// The infra process ("pause", a small static C program embedded in peapod,
// built from pause.c by `make pause`) holds a pod's network, IPC and UTS
// namespaces (and, with shareProcessNamespace, a PID namespace whose PID 1 it
// forks), or stays in the node's for a hostNetwork or hostIPC pod
// (StartOptions.HostUTS, HostIPC). For a pod with its own user namespace
// (hostUsers: false), StartHolder first starts `pause --hold` in it, with
// network, IPC, UTS (and PID) namespaces the user namespace owns; pause
// then joins those (IPCNSPath, UTSNSPath) without leaving the node's user
// namespace, so it still launches the runtime as the node's root. It is the child subreaper of the pod's containers: it launches
// the OCI runtime for each container, copies the container's stdout and
// stderr into a Kubernetes CRI-format log file, and records the container's
// exit status in an exit file. None of that depends on peapod staying alive:
// after a peapod restart, a new Client reconnects to the same socket and
// exit files are read from disk.
//
// Usage:
//
//  1. Install the embedded binary once: Install("<data-dir>/bin/pause").
//  2. Start one pause per pod with Start; it returns once the pause process
//     listens on <dir>/pause.sock. Persist the returned Process.
//  3. Dial(dir) and Launch each container with the runtime's `run -d`
//     argv; Launch returns the container's main PID.
//  4. ReadExit or WaitExit on the container's exit path tells when and how
//     it ended; Status lists what pause knows.
//  5. For attach: Attach follows a running container's stdout or stderr
//     live; OpenStdin hands over its stdin (LaunchRequest.Stdin) or its
//     terminal's master (LaunchRequest.Terminal); CloseStdin ends stdin
//     for stdinOnce; Resize sizes the terminal.
//  6. After every container is stopped, Stop the pause process.
//
// Building: pause.bin is embedded with go:embed and is not committed; run
// `make pause` before `go build`, `go vet` or `go test` of this package.
//
// Tests that touch the kernel need root; they skip without it, and fail
// instead when PEAPOD_REQUIRE_ROOT=1.
package pause
