package spec

import (
	"errors"
	"fmt"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// Error classes returned (wrapped, with the offending field path) by Build,
// Env and Command. Test them with errors.Is.
var (
	// ErrUnsupported marks a field peapod does not implement yet.
	ErrUnsupported = errors.New("not supported yet")
	// ErrInvalid marks input that can not be turned into a spec, such as an
	// unknown capability, a missing image user or an empty command.
	ErrInvalid = errors.New("invalid")
	// ErrRunAsNonRoot marks a container whose runAsNonRoot policy the
	// resolved user breaks; the message is the kubelet's.
	ErrRunAsNonRoot = errors.New("runAsNonRoot violated")
)

// ImageConfig is the part of an OCI image config that shapes the process.
// It mirrors the image's Entrypoint, Cmd, Env, WorkingDir and User fields.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // KEY=value
	WorkingDir string
	User       string // "", "uid", "name", "uid:gid", "name:group", ...
}

// SandboxNamespaces holds the namespace paths a container joins, for example
// "/proc/1234/ns/net". An empty path means "create a new namespace" (used by
// tests that run a container alone). Whatever the paths say, a pod with
// hostNetwork gets no network and UTS namespace, hostIPC no IPC namespace and
// hostPID no PID namespace, so it stays in the host's.
type SandboxNamespaces struct {
	Net string
	IPC string
	UTS string
	PID string // "" = a new PID namespace for this container
	// User is the pod's user namespace, joined only with
	// Input.UserNamespace set.
	User string
}

// UserNamespace is a pod's ID range (hostUsers: false): container user
// and group IDs 0..Length-1 are host IDs HostID..HostID+Length-1.
type UserNamespace struct {
	HostID, Length uint32
}

// Mount is one resolved volume mount, bound into the container.
type Mount struct {
	HostPath      string
	ContainerPath string
	ReadOnly      bool
	// Propagation is the volumeMount's mountPropagation; "" and None mean
	// rprivate, HostToContainer rslave, Bidirectional rshared (privileged
	// containers only). The caller is responsible for the host side being a
	// shared (or slave) mount.
	Propagation corev1.MountPropagationMode
	// Locked are flags of the host side's mount ("nosuid", "nodev",
	// "noexec") to repeat on the bind: in a user namespace they are locked,
	// and a read-only remount that would clear them fails (runc before
	// 1.1.9 does not carry them over by itself).
	Locked []string
}

// RefKind names the kind of object a LookupFunc resolves.
type RefKind string

// The kinds a LookupFunc is asked for.
const (
	KindConfigMap RefKind = "ConfigMap"
	KindSecret    RefKind = "Secret"
)

// LookupFunc returns the data of the ConfigMap or Secret called name in the
// pod's namespace (Secret values decoded; a ConfigMap's binaryData merged in
// as strings if the caller wishes). found is false when the object does not
// exist; err is for failures to find out.
type LookupFunc func(kind RefKind, name string) (data map[string]string, found bool, err error)

// Input is everything Build needs. Pod and Container are required, and
// Container must be one of Pod.Spec.Containers or Pod.Spec.InitContainers
// (matched by name). Build does not modify Input.
type Input struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	Image     ImageConfig
	// Rootfs is the absolute path of the prepared root filesystem. Whether it
	// is mounted read-only comes from the container's
	// securityContext.readOnlyRootFilesystem.
	Rootfs     string
	Namespaces SandboxNamespaces
	// CgroupNamespace gives the container a new cgroup namespace; containerd
	// does so on cgroup v2 hosts only, so set it only there.
	CgroupNamespace bool
	// Hostname is the pod's hostname: the HOSTNAME env var and, when the
	// container gets a new UTS namespace, spec.hostname.
	Hostname string
	// CgroupsPath is the container's cgroup, e.g. "/peapod/<sandbox>/<ctr>".
	CgroupsPath string
	// Mounts are the resolved volume mounts, including the termination
	// message file at the container's terminationMessagePath. A mount here
	// replaces the pod file or default mount at the same destination.
	Mounts []Mount
	// Host paths bound at /etc/hosts, /etc/resolv.conf, /etc/hostname and
	// /dev/shm; "" skips the mount (for /dev/shm: a private 64m tmpfs).
	EtcHosts, ResolvConf, EtcHostname, ShmDir string
	// Values for fieldRef env vars. NodeName falls back to pod.spec.nodeName,
	// PodIPs to [PodIP].
	PodIP    string
	PodIPs   []string
	NodeName string
	// HostIP and HostIPs are the node's addresses (status.hostIP(s));
	// HostIPs falls back to [HostIP].
	HostIP  string
	HostIPs []string
	// NodeAllocatable stands in for unset cpu/memory limits in
	// resourceFieldRef env vars, as the kubelet does.
	NodeAllocatable corev1.ResourceList
	// Passwd and Group are the contents of the rootfs's /etc/passwd and
	// /etc/group (nil if absent), used to resolve the user.
	Passwd, Group []byte
	// DefaultRlimitNofile sets RLIMIT_NOFILE soft = hard; 0 leaves the
	// runtime's limit. Must not exceed the caller's own hard limit.
	DefaultRlimitNofile uint64
	// Lookup resolves configMapKeyRef, secretKeyRef and envFrom; nil makes
	// them ErrUnsupported.
	Lookup LookupFunc
	// ServiceEnv are the Service environment variables (see ServiceEnv):
	// $(VAR) references in env, command and args see them, and those the
	// container does not set itself are added after its own, sorted.
	ServiceEnv map[string]string
	// HostCapabilities is the set a privileged container or capabilities.add
	// ALL gets; nil means AllCapabilities(). Runtimes fail to start a
	// container asking for a capability they lack themselves, so callers
	// should pass CurrentCapabilities(), as containerd does.
	HostCapabilities []string
	// SandboxID, if set, is recorded in the io.kubernetes.cri.sandbox-id
	// annotation.
	SandboxID string
	// UserNamespace, for a pod with hostUsers: false, is its ID range: the
	// container joins Namespaces.User and the spec carries the mappings
	// (runc checks them against the namespace's). The caller shows the
	// rootfs and volumes to it through idmapped mounts.
	UserNamespace *UserNamespace
	// SELinux are the container's labels where SELinux is enabled (see
	// RenderSELinuxLabels); zero elsewhere, and seLinuxOptions are then
	// ignored, as on a Kubernetes node without SELinux.
	SELinux SELinuxLabels
}

// OCIVersion is the ociVersion Build writes. The types are runtime-spec
// v1.3.0's, but the specs use nothing newer than 1.1.0, and crun 1.8
// refuses any version above 1.1.
const OCIVersion = "1.1.0"

// Annotations Build sets, after containerd's CRI plugin.
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
	AnnotationImageName        = "io.kubernetes.cri.image-name"
	AnnotationSandboxID        = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
)

// Build returns the OCI runtime spec for in.Container. It has no side effects
// and returns a fresh Spec on every call. Errors name the field path they
// refuse and wrap ErrUnsupported, ErrInvalid or ErrRunAsNonRoot.
func Build(in Input) (*specs.Spec, error) {
	path, err := containerPath(in)
	if err != nil {
		return nil, err
	}
	if in.Rootfs == "" || !filepath.IsAbs(in.Rootfs) {
		return nil, fmt.Errorf("rootfs %q: must be an absolute path: %w", in.Rootfs, ErrInvalid)
	}
	if err := checkSupported(in.Pod, in.Container, path); err != nil {
		return nil, err
	}
	c := in.Container
	sc := c.SecurityContext
	privileged := sc != nil && sc.Privileged != nil && *sc.Privileged

	kenv, err := kubeletEnv(in, path)
	if err != nil {
		return nil, err
	}
	env := runtimeEnv(in, kenv)
	args, err := ExpandCommand(c, in.Image, kenv.toMap())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	user, err := resolveUser(in, path)
	if err != nil {
		return nil, err
	}
	caps, err := capabilities(c, in.HostCapabilities, path)
	if err != nil {
		return nil, err
	}
	noNewPrivs, err := noNewPrivileges(c, path)
	if err != nil {
		return nil, err
	}
	resources, err := resources(c, path)
	if err != nil {
		return nil, err
	}

	cwd := c.WorkingDir
	if cwd == "" {
		cwd = in.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}

	s := &specs.Spec{
		Version: OCIVersion,
		Root: &specs.Root{
			Path:     in.Rootfs,
			Readonly: sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		},
		Process: &specs.Process{
			Terminal:        c.TTY,
			User:            user,
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			Capabilities:    caps,
			NoNewPrivileges: noNewPrivs,
			SelinuxLabel:    in.SELinux.Process,
		},
		Annotations: annotations(in),
		Linux: &specs.Linux{
			CgroupsPath: in.CgroupsPath,
			Resources:   resources,
			Namespaces:  namespaces(in),
			Sysctl:      sysctls(in.Pod),
			MountLabel:  in.SELinux.Mount,
		},
	}
	if u := in.UserNamespace; u != nil {
		if u.HostID == 0 || u.Length == 0 {
			return nil, fmt.Errorf("%s: user namespace from host ID %d, length %d: the host's root may not be mapped and the range may not be empty: %w", path, u.HostID, u.Length, ErrInvalid)
		}
		m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.HostID, Size: u.Length}}
		s.Linux.UIDMappings, s.Linux.GIDMappings = m, append([]specs.LinuxIDMapping(nil), m...)
	}
	if in.DefaultRlimitNofile > 0 {
		s.Process.Rlimits = []specs.POSIXRlimit{{
			Type: "RLIMIT_NOFILE",
			Hard: in.DefaultRlimitNofile,
			Soft: in.DefaultRlimitNofile,
		}}
	}
	if hasNamespace(s.Linux.Namespaces, specs.UTSNamespace, "") {
		// runc refuses a hostname without a private UTS namespace, and setting
		// it on the pod's joined one would only repeat what pause did.
		s.Hostname = in.Hostname
	}
	mounts, propagation, err := buildMounts(in, privileged, path)
	if err != nil {
		return nil, err
	}
	s.Mounts = mounts
	s.Linux.RootfsPropagation = propagation

	if privileged {
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	} else {
		s.Linux.Resources.Devices = defaultDevices()
		s.Linux.MaskedPaths = append([]string(nil), defaultMaskedPaths...)
		s.Linux.ReadonlyPaths = append([]string(nil), defaultReadonlyPaths...)
		seccomp, err := seccompFor(in.Pod, c, s, path)
		if err != nil {
			return nil, err
		}
		s.Linux.Seccomp = seccomp
	}
	return s, nil
}

// containerPath finds in.Container in the pod and returns its field path,
// "spec.containers[i]" or "spec.initContainers[i]".
func containerPath(in Input) (string, error) {
	if in.Pod == nil || in.Container == nil {
		return "", fmt.Errorf("build spec: pod and container are required: %w", ErrInvalid)
	}
	for i := range in.Pod.Spec.Containers {
		if in.Pod.Spec.Containers[i].Name == in.Container.Name {
			return fmt.Sprintf("spec.containers[%d]", i), nil
		}
	}
	for i := range in.Pod.Spec.InitContainers {
		if in.Pod.Spec.InitContainers[i].Name == in.Container.Name {
			return fmt.Sprintf("spec.initContainers[%d]", i), nil
		}
	}
	for i := range in.Pod.Spec.EphemeralContainers {
		if in.Pod.Spec.EphemeralContainers[i].Name == in.Container.Name {
			return fmt.Sprintf("spec.ephemeralContainers[%d]", i), nil
		}
	}
	return "", fmt.Errorf("build spec: container %q is not in pod %s/%s: %w",
		in.Container.Name, in.Pod.Namespace, in.Pod.Name, ErrInvalid)
}

// namespaces returns the container's namespaces: a new mount namespace, the
// sandbox's network, IPC, UTS and PID namespaces by path (or new ones where
// the path is empty), none of those the pod shares with the host, the
// pod's user namespace if it has one, and a new cgroup namespace if asked
// for.
func namespaces(in Input) []specs.LinuxNamespace {
	ps := in.Pod.Spec
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if !ps.HostNetwork {
		ns = append(ns,
			specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.Namespaces.Net},
			specs.LinuxNamespace{Type: specs.UTSNamespace, Path: in.Namespaces.UTS})
	}
	if !ps.HostIPC {
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: in.Namespaces.IPC})
	}
	if !ps.HostPID {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: in.Namespaces.PID})
	}
	if in.UserNamespace != nil {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace, Path: in.Namespaces.User})
	}
	if in.CgroupNamespace {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

// hasNamespace reports whether ns holds a namespace of type t with the given
// path ("" = a new one).
func hasNamespace(ns []specs.LinuxNamespace, t specs.LinuxNamespaceType, path string) bool {
	for _, n := range ns {
		if n.Type == t && n.Path == path {
			return true
		}
	}
	return false
}

func sysctls(pod *corev1.Pod) map[string]string {
	psc := pod.Spec.SecurityContext
	if psc == nil || len(psc.Sysctls) == 0 {
		return nil
	}
	m := make(map[string]string, len(psc.Sysctls))
	for _, s := range psc.Sysctls {
		m[s.Name] = s.Value
	}
	return m
}

func annotations(in Input) map[string]string {
	a := map[string]string{
		AnnotationContainerType:    "container",
		AnnotationContainerName:    in.Container.Name,
		AnnotationSandboxName:      in.Pod.Name,
		AnnotationSandboxNamespace: in.Pod.Namespace,
		AnnotationSandboxUID:       string(in.Pod.UID),
	}
	if in.Container.Image != "" {
		a[AnnotationImageName] = in.Container.Image
	}
	if in.SandboxID != "" {
		a[AnnotationSandboxID] = in.SandboxID
	}
	return a
}
