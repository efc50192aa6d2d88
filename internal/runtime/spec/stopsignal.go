package spec

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// Real-time signals as glibc numbers them (it keeps the kernel's first two
// for itself), as containerd and Docker resolve SIGRTMIN+n and SIGRTMAX-n.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// signalAliases are the Linux signal names unix.SignalNum does not know.
var signalAliases = map[string]syscall.Signal{
	"SIGCLD": unix.SIGCHLD, "SIGPOLL": unix.SIGIO, "SIGIOT": unix.SIGABRT,
}

// StopSignal returns the signal that stops container c, as containerd
// chooses it: c's lifecycle.stopSignal, else the image's STOPSIGNAL, else
// SIGTERM. name is how Kubernetes writes it ("SIGTERM", "SIGRTMIN+3"), for
// the container's status. An image signal that does not parse is an
// error, as in containerd.
func StopSignal(c *corev1.Container, imageStopSignal string) (name string, sig syscall.Signal, err error) {
	switch {
	case c.Lifecycle != nil && c.Lifecycle.StopSignal != nil:
		name = string(*c.Lifecycle.StopSignal)
	case imageStopSignal != "":
		name = imageStopSignal
	default:
		return "SIGTERM", unix.SIGTERM, nil
	}
	sig, err = ParseSignal(name)
	if err != nil {
		return "", 0, err
	}
	return SignalName(sig), sig, nil
}

// ParseSignal parses a signal as images and Kubernetes write it: a number,
// or a name with or without "SIG" ("SIGUSR1", "QUIT", "SIGRTMIN+3",
// "RTMAX-1").
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > sigRTMax {
			return 0, fmt.Errorf("signal %q: out of range: %w", s, ErrInvalid)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig, ok := signalAliases[name]; ok {
		return sig, nil
	}
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"SIGRTMIN", sigRTMin, 1}, {"SIGRTMAX", sigRTMax, -1}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		off := 0
		if rest != "" {
			op := "+"
			if rt.sign < 0 {
				op = "-"
			}
			num, ok := strings.CutPrefix(rest, op)
			n, err := strconv.Atoi(num)
			if !ok || err != nil || n < 0 || n > sigRTMax-sigRTMin {
				return 0, fmt.Errorf("signal %q: %w", s, ErrInvalid)
			}
			off = rt.sign * n
		}
		return syscall.Signal(rt.base + off), nil
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: unknown: %w", s, ErrInvalid)
}

// SignalName is how Kubernetes names a signal: "SIGTERM", and real-time
// ones counted from the nearer end ("SIGRTMIN+3", "SIGRTMAX-1").
func SignalName(sig syscall.Signal) string {
	switch n := int(sig); {
	case n == sigRTMin:
		return "SIGRTMIN"
	case n == sigRTMax:
		return "SIGRTMAX"
	case n > sigRTMin && n < sigRTMax && n-sigRTMin <= 15:
		return "SIGRTMIN+" + strconv.Itoa(n-sigRTMin)
	case n > sigRTMin && n < sigRTMax:
		return "SIGRTMAX-" + strconv.Itoa(sigRTMax-n)
	}
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return strconv.Itoa(int(sig))
}
