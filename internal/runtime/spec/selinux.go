package spec

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// SELinuxLabels are the labels a container runs with where SELinux is
// enabled: the process's (process.selinuxLabel) and the one its mounts get
// (linux.mountLabel). Empty fields leave the runtime's default, which is
// what a host without SELinux gets.
type SELinuxLabels struct {
	Process, Mount string
}

// EffectiveSELinuxOptions are the seLinuxOptions that apply to a container,
// the kubelet's way: the container's own, whole, if it sets any, else the
// pod's. nil means neither sets them.
func EffectiveSELinuxOptions(pod *corev1.Pod, c *corev1.Container) *corev1.SELinuxOptions {
	if c != nil && c.SecurityContext != nil && c.SecurityContext.SELinuxOptions != nil {
		return c.SecurityContext.SELinuxOptions
	}
	if pod != nil && pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext.SELinuxOptions
	}
	return nil
}

// RenderSELinuxLabels merges seLinuxOptions into the node's default
// container contexts, as containerd does with go-selinux's InitLabels:
// each of user, role, type and level that opts sets replaces the default
// process context's; the mount context keeps its own role and type but
// takes the user and level, so files the container writes carry the
// container's MCS level. Contexts are "user:role:type:level" (the level
// may itself hold colons, "s0:c1,c2"). It is pure; an unparsable default
// or an option holding a colon where none may be is ErrInvalid.
func RenderSELinuxLabels(defaultProcess, defaultMount string, opts *corev1.SELinuxOptions) (SELinuxLabels, error) {
	pcon, err := parseSELinuxContext(defaultProcess)
	if err != nil {
		return SELinuxLabels{}, fmt.Errorf("default process context: %w", err)
	}
	mcon, err := parseSELinuxContext(defaultMount)
	if err != nil {
		return SELinuxLabels{}, fmt.Errorf("default file context: %w", err)
	}
	if opts != nil {
		for _, f := range []struct {
			name, val string
			at        int
		}{{"user", opts.User, 0}, {"role", opts.Role, 1}, {"type", opts.Type, 2}, {"level", opts.Level, 3}} {
			if f.val == "" {
				continue
			}
			if f.at < 3 && strings.Contains(f.val, ":") {
				return SELinuxLabels{}, fmt.Errorf("seLinuxOptions.%s %q: must not contain ':': %w", f.name, f.val, ErrInvalid)
			}
			pcon[f.at] = f.val
			if f.name == "user" || f.name == "level" {
				mcon[f.at] = f.val
			}
		}
	}
	return SELinuxLabels{Process: strings.Join(pcon[:], ":"), Mount: strings.Join(mcon[:], ":")}, nil
}

// WithSELinuxLevel returns context with its level replaced by level.
func WithSELinuxLevel(context, level string) (string, error) {
	c, err := parseSELinuxContext(context)
	if err != nil {
		return "", err
	}
	c[3] = level
	return strings.Join(c[:], ":"), nil
}

// parseSELinuxContext splits "user:role:type:level".
func parseSELinuxContext(s string) ([4]string, error) {
	var c [4]string
	parts := strings.SplitN(s, ":", 4)
	if len(parts) != 4 {
		return c, fmt.Errorf("SELinux context %q: want user:role:type:level: %w", s, ErrInvalid)
	}
	copy(c[:], parts)
	return c, nil
}
