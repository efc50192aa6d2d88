package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Kind names a probe the way the kubelet's events do ("Liveness probe failed: ...").
type Kind string

// The three probe kinds of a container.
const (
	Liveness  Kind = "Liveness"
	Readiness Kind = "Readiness"
	Startup   Kind = "Startup"
)

// Result is the outcome of a probe, or the current state of a probed container.
type Result int

// Probe results. Unknown is the start state of a startup probe and the
// result of an attempt that could not be made at all.
const (
	Unknown Result = iota
	Success
	Failure
)

// String returns "Unknown", "Success" or "Failure".
func (r Result) String() string {
	switch r {
	case Success:
		return "Success"
	case Failure:
		return "Failure"
	default:
		return "Unknown"
	}
}

// KubeVersion is the Kubernetes minor version peapod reports; it goes into
// the probe and hook User-Agent ("kube-probe/1.32") as the kubelet's does.
const KubeVersion = "1.32"

// Default probe field values applied when a field is 0, as the API server's
// defaulting does.
const (
	DefaultPeriodSeconds    = 10
	DefaultTimeoutSeconds   = 1
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// Target is what a probe needs from the agent about one running container.
type Target struct {
	// PodIP is the pod's IP address, the default host of httpGet,
	// tcpSocket and grpc probes.
	PodIP string
	// Exec runs cmd in the container and returns its combined output and
	// exit code (err only when it could not run at all). It must return
	// when ctx is done.
	Exec func(ctx context.Context, cmd []string) (output []byte, exitCode int, err error)
}

// Run performs ONE attempt of probe p against container c, as the kubelet
// does, bounded by p.TimeoutSeconds (default 1 s) and by ctx:
//
//   - exec: exit code 0 is Success, anything else Failure; the output is
//     the message. A command that outlives the timeout is a Failure
//     ("command ... timed out").
//   - httpGet: 200 <= status < 400 is Success (see [HTTPGet]).
//   - tcpSocket: a TCP connect to host (default PodIP) and port.
//   - grpc: grpc.health.v1.Health/Check of p.GRPC.Service on PodIP:port;
//     SERVING is Success.
//
// Network failures, refused connections and timeouts are Failure with the
// kubelet's message, not errors. Run returns Unknown and an error only when
// the attempt could not be made (no handler, unknown port name, no pod IP,
// Exec could not run the command, ctx cancelled), so the caller should
// discard that attempt as the kubelet does.
func Run(ctx context.Context, p *corev1.Probe, c *corev1.Container, t Target) (Result, string, error) {
	if p == nil {
		return Unknown, "", errors.New("probe: nil probe")
	}
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = DefaultTimeoutSeconds * time.Second
	}
	h := p.ProbeHandler
	switch {
	case h.Exec != nil:
		return runExec(ctx, h.Exec.Command, timeout, t)
	case h.HTTPGet != nil:
		return runHTTP(ctx, h.HTTPGet, c, timeout, t)
	case h.TCPSocket != nil:
		return runTCP(ctx, h.TCPSocket, c, timeout, t)
	case h.GRPC != nil:
		return runGRPC(ctx, h.GRPC, timeout, t)
	default:
		return Unknown, "", errors.New("probe: missing probe handler")
	}
}

// runExec runs an exec probe through t.Exec with a timeout.
func runExec(ctx context.Context, cmd []string, timeout time.Duration, t Target) (Result, string, error) {
	if t.Exec == nil {
		return Unknown, "", errors.New("exec probe: no exec function")
	}
	if len(cmd) == 0 {
		return Unknown, "", errors.New("exec probe: empty command")
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, code, err := t.Exec(ectx, cmd)
	if ctx.Err() != nil {
		return Unknown, "", fmt.Errorf("exec probe %q: %w", strings.Join(cmd, " "), ctx.Err())
	}
	if ectx.Err() != nil {
		// The kubelet's message for an exec probe timeout.
		return Failure, fmt.Sprintf("command %q timed out", strings.Join(cmd, " ")), nil
	}
	if err != nil {
		return Unknown, "", fmt.Errorf("exec probe %q: %w", strings.Join(cmd, " "), err)
	}
	if code != 0 {
		return Failure, string(out), nil
	}
	return Success, string(out), nil
}

// runTCP connects to host:port and closes the connection.
func runTCP(ctx context.Context, a *corev1.TCPSocketAction, c *corev1.Container, timeout time.Duration, t Target) (Result, string, error) {
	port, err := ResolvePort(a.Port, c)
	if err != nil {
		return Unknown, "", fmt.Errorf("tcp probe: %w", err)
	}
	host := a.Host
	if host == "" {
		host = t.PodIP
	}
	if host == "" {
		return Unknown, "", errors.New("tcp probe: no pod IP")
	}
	d := dialer()
	d.Timeout = timeout
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if ctx.Err() != nil {
		return Unknown, "", fmt.Errorf("tcp probe: %w", ctx.Err())
	}
	if err != nil {
		return Failure, err.Error(), nil
	}
	_ = conn.Close()
	return Success, "", nil
}

// ResolvePort returns the port number of a probe or hook port: a number,
// or the name of one of the container's ports (or a number written as a
// string), as the kubelet resolves it. It fails outside 1..65535.
func ResolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	port := -1
	switch p.Type {
	case intstr.Int:
		port = p.IntValue()
	case intstr.String:
		found := false
		if c != nil {
			for _, cp := range c.Ports {
				if cp.Name == p.StrVal {
					port, found = int(cp.ContainerPort), true
					break
				}
			}
		}
		if !found {
			n, err := strconv.Atoi(p.StrVal)
			if err != nil {
				return -1, fmt.Errorf("port %s not found", p.StrVal)
			}
			port = n
		}
	default:
		return -1, fmt.Errorf("port %+v has no kind", p)
	}
	if port > 0 && port < 65536 {
		return port, nil
	}
	return port, fmt.Errorf("invalid port number: %d", port)
}

// dialer returns the kubelet's probe dialer: SO_LINGER with a 1 s linger so
// that frequent probes do not pile up sockets in TIME_WAIT.
func dialer() *net.Dialer {
	return &net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 1})
			})
		},
	}
}
