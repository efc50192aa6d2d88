// Package oci drives an OCI runtime binary (runc, crun, or any runtime with
// the same CLI) for peapod.
//
// Usage:
//
//  1. CheckUsable(handler, binary) once at start: it finds runtimes that
//     cannot work on this host (e.g. crun on hybrid cgroups) and says how to
//     fix it.
//  2. A Runtime{Handler, Binary, Root, Shim} per handler; Root is its state
//     dir, Shim the installed pause binary (only Exec with a TTY needs it).
//  3. RunArgs gives the `run -d` argv that the pause process executes (the
//     container is then a child of pause, not of peapod).
//  4. State, Kill, Delete and Exec act on a container by ID. Kill and
//     Delete are idempotent: a container the runtime does not know, or one
//     already stopped, counts as success.
//
// Errors carry the runtime's own message (from its JSON --log file or its
// stderr), wrapped with what was attempted; ErrNotFound marks an ID the
// runtime does not know.
//
// The kernel tests need root, runc and crun; they skip without root or
// without a usable runtime, and fail instead when PEAPOD_REQUIRE_ROOT=1,
// naming what is missing (CheckUsable's reason for a runtime).
package oci
