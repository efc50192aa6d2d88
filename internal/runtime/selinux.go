package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/runtime/spec"
)

// selinuxHost is what the node knows of SELinux: whether it is enabled
// and, then, the default contexts of containers' processes and files
// (the policy's lxc_contexts), as containerd learns them through
// go-selinux. On a host without SELinux it is zero and every
// seLinuxOptions is ignored, as a Kubernetes node ignores them there.
type selinuxHost struct {
	enabled       bool
	process, file string
}

// Where SELinux lives on a host that has it.
const (
	selinuxFS     = "/sys/fs/selinux"
	selinuxConfig = "/etc/selinux/config"
	selinuxMagic  = 0xf97cff8c // SELINUX_MAGIC
)

// detectSELinux reports SELinux enabled when selinuxfs is mounted and this
// process runs under a label other than the kernel's (go-selinux's
// GetEnabled), and reads the container contexts of the loaded policy.
func detectSELinux() selinuxHost {
	var st unix.Statfs_t
	if unix.Statfs(selinuxFS, &st) != nil || uint32(st.Type) != selinuxMagic {
		return selinuxHost{}
	}
	cur, err := os.ReadFile("/proc/self/attr/current")
	if err != nil || strings.TrimRight(string(cur), "\x00\n") == "kernel" {
		return selinuxHost{}
	}
	h := selinuxHost{enabled: true}
	h.process, h.file = containerContexts(readOr(selinuxConfig))
	return h
}

func readOr(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// containerContexts reads "process" and "file" of the policy's
// lxc_contexts (/etc/selinux/<SELINUXTYPE>/contexts/lxc_contexts), falling
// back to the targeted policy's container contexts.
func containerContexts(config []byte) (process, file string) {
	process, file = "system_u:system_r:container_t:s0", "system_u:object_r:container_file_t:s0"
	policy := "targeted"
	sc := bufio.NewScanner(bytes.NewReader(config))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "SELINUXTYPE="); ok && v != "" {
			policy = v
		}
	}
	sc = bufio.NewScanner(bytes.NewReader(readOr(filepath.Join("/etc/selinux", policy, "contexts", "lxc_contexts"))))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch strings.TrimSpace(k) {
		case "process":
			process = v
		case "file":
			file = v
		}
	}
	return process, file
}

// newLevel picks the MCS level a new sandbox's containers share, two
// distinct categories below 1024 as go-selinux reserves them; "" where
// SELinux is off.
func (h selinuxHost) newLevel() string {
	if !h.enabled {
		return ""
	}
	a, b := rand.IntN(1024), rand.IntN(1023)
	if b >= a {
		b++
	} else {
		a, b = b, a
	}
	return fmt.Sprintf("s0:c%d,c%d", a, b)
}

// labels are a container's SELinux labels: the default contexts at the
// sandbox's level, with the effective seLinuxOptions merged in. Zero where
// SELinux is off.
func (h selinuxHost) labels(level string, pod *corev1.Pod, c *corev1.Container) (spec.SELinuxLabels, error) {
	if !h.enabled {
		return spec.SELinuxLabels{}, nil
	}
	process, file := h.process, h.file
	if level != "" {
		var err error
		if process, err = spec.WithSELinuxLevel(process, level); err != nil {
			return spec.SELinuxLabels{}, err
		}
		if file, err = spec.WithSELinuxLevel(file, level); err != nil {
			return spec.SELinuxLabels{}, err
		}
	}
	return spec.RenderSELinuxLabels(process, file, spec.EffectiveSELinuxOptions(pod, c))
}
