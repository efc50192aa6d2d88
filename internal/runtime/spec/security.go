package spec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// UnsetSeccompProfile is the profile a container gets when neither it nor its
// pod sets seccompProfile. peapod applies RuntimeDefault, like a kubelet
// started with --seccomp-default; Kubernetes' own default is Unconfined.
const UnsetSeccompProfile = corev1.SeccompProfileTypeRuntimeDefault

// DefaultCapabilities returns the capability set of an unprivileged
// container before securityContext.capabilities applies: containerd's
// default for CRI containers (Docker's set).
func DefaultCapabilities() []string { return slices.Clone(defaultCapabilities) }

// AllCapabilities returns every Linux capability (numbers 0 to 40), as a
// privileged container and capabilities.add ALL get them.
func AllCapabilities() []string { return slices.Clone(allCapabilities) }

var defaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

var allCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// defaultMaskedPaths and defaultReadonlyPaths are containerd's defaults for
// unprivileged containers.
var (
	defaultMaskedPaths = []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
		"/proc/scsi",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
)

// defaultDevices is the device cgroup of an unprivileged container: deny
// everything, then allow the standard character devices.
func defaultDevices() []specs.LinuxDeviceCgroup {
	dev := func(major, minor int64) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: "rwm"}
		if minor >= 0 {
			d.Minor = &minor
		}
		return d
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		dev(1, 3),    // /dev/null
		dev(1, 5),    // /dev/zero
		dev(1, 7),    // /dev/full
		dev(1, 8),    // /dev/random
		dev(1, 9),    // /dev/urandom
		dev(5, 0),    // /dev/tty
		dev(5, 2),    // /dev/ptmx
		dev(136, -1), // /dev/pts/*
	}
}

// normalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into
// "CAP_NET_ADMIN" and reports whether it is a known capability.
func normalizeCap(c string) (string, bool) {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c, slices.Contains(allCapabilities, c)
}

// capabilities returns the process capabilities, following containerd: a
// privileged container gets all of host (AllCapabilities when nil) and
// capabilities.add/drop are ignored; otherwise DefaultCapabilities, then add
// ALL (host), then drop ALL, then
// each added one, then each dropped one. The result goes to the bounding,
// effective and permitted sets for any user; inheritable and ambient stay
// empty. So, as with containerd, a non-root process keeps the bounding set
// but the kernel clears its effective and permitted sets when the runtime
// execs it (only file capabilities bring them back).
func capabilities(c *corev1.Container, host []string, path string) (*specs.LinuxCapabilities, error) {
	if host == nil {
		host = allCapabilities
	}
	sc := c.SecurityContext
	var set []string
	if sc != nil && sc.Privileged != nil && *sc.Privileged {
		set = slices.Clone(host)
	} else {
		set = DefaultCapabilities()
		if sc != nil && sc.Capabilities != nil {
			var err error
			if set, err = applyCapabilities(set, host, sc.Capabilities, path+".securityContext.capabilities"); err != nil {
				return nil, err
			}
		}
	}
	return &specs.LinuxCapabilities{
		Bounding:  set,
		Effective: slices.Clone(set),
		Permitted: slices.Clone(set),
	}, nil
}

func applyCapabilities(set, host []string, caps *corev1.Capabilities, fp string) ([]string, error) {
	isAll := func(c corev1.Capability) bool { return strings.EqualFold(string(c), "ALL") }
	if slices.ContainsFunc(caps.Add, isAll) {
		for _, c := range host {
			if !slices.Contains(set, c) {
				set = append(set, c)
			}
		}
	}
	if slices.ContainsFunc(caps.Drop, isAll) {
		set = nil
	}
	for i, c := range caps.Add {
		if isAll(c) {
			continue
		}
		name, ok := normalizeCap(string(c))
		if !ok {
			return nil, fmt.Errorf("%s.add[%d]: unknown capability %q: %w", fp, i, c, ErrInvalid)
		}
		if !slices.Contains(set, name) {
			set = append(set, name)
		}
	}
	for i, c := range caps.Drop {
		if isAll(c) {
			continue
		}
		name, ok := normalizeCap(string(c))
		if !ok {
			return nil, fmt.Errorf("%s.drop[%d]: unknown capability %q: %w", fp, i, c, ErrInvalid)
		}
		set = slices.DeleteFunc(set, func(s string) bool { return s == name })
	}
	if set == nil {
		set = []string{}
	}
	return set, nil
}

// noNewPrivileges is !allowPrivilegeEscalation. Unset, allowPrivilegeEscalation
// is true (the kubelet sets no_new_privs only when it is explicitly false); it
// may not be false for a privileged container or one adding CAP_SYS_ADMIN, as
// Kubernetes validation says.
func noNewPrivileges(c *corev1.Container, path string) (bool, error) {
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		return false, nil
	}
	fp := path + ".securityContext.allowPrivilegeEscalation"
	if sc.Privileged != nil && *sc.Privileged {
		return false, fmt.Errorf("%s: cannot set allowPrivilegeEscalation to false and privileged to true: %w", fp, ErrInvalid)
	}
	if sc.Capabilities != nil {
		for _, a := range sc.Capabilities.Add {
			if n, _ := normalizeCap(string(a)); n == "CAP_SYS_ADMIN" {
				return false, fmt.Errorf("%s: cannot set allowPrivilegeEscalation to false and capabilities.Add CAP_SYS_ADMIN: %w", fp, ErrInvalid)
			}
		}
	}
	return true, nil
}

// seccompFor returns the seccomp filter of an unprivileged container: the
// container's seccompProfile, else the pod's, else UnsetSeccompProfile.
// RuntimeDefault is the moby/containerd default profile for s's bounding
// capabilities, so s.Process.Capabilities must be final.
func seccompFor(pod *corev1.Pod, c *corev1.Container, s *specs.Spec, path string) (*specs.LinuxSeccomp, error) {
	typ, fp := UnsetSeccompProfile, ""
	if psc := pod.Spec.SecurityContext; psc != nil && psc.SeccompProfile != nil {
		typ, fp = psc.SeccompProfile.Type, "spec.securityContext.seccompProfile"
	}
	if sc := c.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		typ, fp = sc.SeccompProfile.Type, path+".securityContext.seccompProfile"
	}
	switch typ {
	case corev1.SeccompProfileTypeUnconfined:
		return nil, nil
	case corev1.SeccompProfileTypeRuntimeDefault:
		p, err := seccomp.GetDefaultProfile(s)
		if err != nil {
			return nil, fmt.Errorf("%s: default seccomp profile: %w", path, err)
		}
		return p, nil
	default:
		return nil, fmt.Errorf("%s.type %s: %w", fp, typ, ErrUnsupported)
	}
}
