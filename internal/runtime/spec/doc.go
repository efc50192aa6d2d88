// Package spec turns a Kubernetes container into an OCI runtime-spec Spec, the
// way the kubelet and containerd's CRI plugin do together. It is a pure
// package: Build reads no files and starts no processes; everything it needs
// from the node (rootfs path, namespace paths, /etc/passwd contents, resolved
// volume mounts, ConfigMap and Secret data) is passed in Input. The only
// ambient input is the host's kernel version, which the default seccomp
// profile consults to decide which syscalls to list. CurrentCapabilities,
// which reads /proc/self/status, is the one helper that does I/O.
//
// Usage:
//
//  1. Prepare the container's rootfs, its volumes and the pod files (hosts,
//     resolv.conf, hostname, the shared /dev/shm and the termination-log
//     file), and read the rootfs's /etc/passwd and /etc/group.
//  2. Fill an Input: the Pod and one of its Containers (or InitContainers),
//     the image config, the sandbox's namespace paths and cgroups path,
//     every host path to bind, and HostCapabilities from
//     CurrentCapabilities() (once per process). The termination message file is an ordinary
//     entry of Input.Mounts whose ContainerPath is the container's
//     terminationMessagePath (default /dev/termination-log); Build does not
//     add it by itself.
//  3. Call Build. An error names the field path it refuses, e.g.
//     "spec.containers[0].volumeDevices: not supported yet"; errors.Is
//     classifies it as ErrUnsupported, ErrInvalid or ErrRunAsNonRoot.
//  4. Write the result as config.json next to the rootfs and hand the bundle
//     to runc or crun.
//
// Supported, as the kubelet + containerd do it:
//
//   - command/args over the image ENTRYPOINT/CMD with $(VAR) expansion
//     (Command, ExpandCommand);
//   - env: image env, HOSTNAME, env and envFrom, valueFrom.fieldRef
//     (metadata.name/namespace/uid, metadata.labels['k'],
//     metadata.annotations['k'], spec.nodeName, spec.serviceAccountName,
//     status.podIP(s), status.hostIP(s)), valueFrom.resourceFieldRef (cpu,
//     memory and ephemeral-storage limits/requests with divisor, an unset
//     limit reading Input.NodeAllocatable), configMapKeyRef, secretKeyRef
//     and envFrom when Input.Lookup is set (Env);
//   - user: runAsUser/runAsGroup (container over pod), image USER in every
//     form resolved against the rootfs's passwd/group, supplementalGroups,
//     supplementalGroupsPolicy, fsGroup, runAsNonRoot;
//   - privileged, capabilities add/drop (with or without CAP_, and ALL),
//     allowPrivilegeEscalation, readOnlyRootFilesystem, seccompProfile
//     RuntimeDefault/Unconfined (RuntimeDefault when unset, see
//     UnsetSeccompProfile), procMount Default, pod sysctls;
//   - cpu and memory limits and requests (CFS quota/period, shares, memory
//     limit; LinuxResources for resizing a running container),
//     hostNetwork/hostIPC/hostPID (no network and UTS, IPC or PID
//     namespace of the pod's), bind mounts with mountPropagation;
//   - hostUsers: false: the pod's user namespace joined by path with its ID
//     mappings (Input.UserNamespace; the caller idmaps rootfs and volumes);
//   - seLinuxOptions: the process and mount labels the caller renders with
//     RenderSELinuxLabels where SELinux is enabled (Input.SELinux); without
//     labels they are ignored, as on a node without SELinux;
//   - ephemeral containers (spec.ephemeralContainers[i] in error paths);
//   - what the node needs beside the spec: the kubelet's env for
//     subPathExpr (KubeletEnv, ExpandSubPathExpr) and the stop signal
//     (StopSignal: lifecycle.stopSignal, else the image's, else SIGTERM).
//
// Refused with ErrUnsupported (the error names the field): volumeDevices,
// resources.claims, extended and hugepages resources (pod-level too),
// windowsOptions, appArmorProfile other than Unconfined, seccompProfile
// Localhost, procMount Unmasked, os.name other than linux, volumeMounts
// with recursiveReadOnly Enabled or bindMountOptions, valueFrom.fileKeyRef, and
// configMapKeyRef/secretKeyRef/envFrom when no Lookup is given.
//
// Accepted and ignored because other packages own them or they do not reach
// the OCI spec: ports, probes, lifecycle, restartPolicy, image pull policy,
// terminationMessagePolicy, stdin/stdinOnce, limits and requests of
// ephemeral-storage, seLinuxChangePolicy, fsGroupChangePolicy.
package spec
