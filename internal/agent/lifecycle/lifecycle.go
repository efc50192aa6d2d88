package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/agent/probe"
)

// HookError is the failure of a lifecycle hook. Its Error text is the
// kubelet's FailedPostStartHook / FailedPreStopHook event message without
// the pod; EventMessage adds it.
type HookError struct {
	// Handler is "Exec", "HTTP", "Sleep", or "" when the hook has no
	// handler the kubelet can run.
	Handler string
	// Detail is what the kubelet prints in parentheses: the exec command,
	// the httpGet path or the sleep seconds.
	Detail    string
	Container string
	// Output is the exec hook's combined output, if any.
	Output string
	Err    error
}

// Error returns, for example, `Exec lifecycle hook ([sh -c exit 3]) for
// Container "app" failed - error: command 'sh -c exit 3' exited with 3: ,
// message: ""`.
func (e *HookError) Error() string { return e.message("") }

// Unwrap returns the underlying error.
func (e *HookError) Unwrap() error { return e.Err }

// EventMessage returns the kubelet's event message for this failure in pod
// (its "name_namespace(uid)" form, as the kubelet prints it).
func (e *HookError) EventMessage(pod string) string { return e.message(pod) }

func (e *HookError) message(pod string) string {
	if e.Handler == "" {
		return fmt.Sprintf("Cannot run handler: %v", e.Err)
	}
	who := fmt.Sprintf("Container %q", e.Container)
	if pod != "" {
		who += fmt.Sprintf(" in Pod %q", pod)
	}
	msg := fmt.Sprintf("%s lifecycle hook (%s) for %s failed - error: %v", e.Handler, e.Detail, who, e.Err)
	if e.Handler == "Exec" {
		msg += fmt.Sprintf(", message: %q", e.Output)
	}
	return msg
}

// Run runs the postStart or preStop handler h of container c as the
// kubelet does, and returns a *HookError when it fails:
//
//   - exec: t.Exec runs the command; it fails if it cannot run or exits
//     non-zero ("command '...' exited with N: output").
//   - httpGet: a GET built like a probe's (host default t.PodIP, port by
//     number or name, headers, User-Agent "kube-lifecycle/<version>") on a
//     client that skips TLS verification; an HTTPS request answered in
//     plain HTTP is retried over HTTP. Like the kubelet, only a request
//     that cannot be made fails: the response status is not checked.
//   - sleep: waits h.Sleep.Seconds; it fails if ctx ends first.
//
// There is no timeout besides ctx: the caller bounds a preStop hook by the
// grace period. The HTTP body is read (at most 10 KiB) and discarded.
func Run(ctx context.Context, h *corev1.LifecycleHandler, c *corev1.Container, t probe.Target) error {
	name := ""
	if c != nil {
		name = c.Name
	}
	switch {
	case h == nil:
		return &HookError{Container: name, Err: errors.New("invalid handler: nil")}
	case h.Exec != nil:
		return runExec(ctx, h.Exec.Command, name, t)
	case h.HTTPGet != nil:
		if err := runHTTP(ctx, h.HTTPGet, c, t.PodIP); err != nil {
			return &HookError{Handler: "HTTP", Detail: h.HTTPGet.Path, Container: name, Err: err}
		}
		return nil
	case h.Sleep != nil:
		if err := sleep(ctx, h.Sleep.Seconds); err != nil {
			return &HookError{Handler: "Sleep", Detail: fmt.Sprint(h.Sleep.Seconds), Container: name, Err: err}
		}
		return nil
	default:
		return &HookError{Container: name, Err: fmt.Errorf("invalid handler: %v", h)}
	}
}

func runExec(ctx context.Context, cmd []string, container string, t probe.Target) error {
	fail := func(out []byte, err error) error {
		return &HookError{Handler: "Exec", Detail: fmt.Sprint(cmd), Container: container, Output: string(out), Err: err}
	}
	if t.Exec == nil {
		return fail(nil, errors.New("no exec function"))
	}
	if len(cmd) == 0 {
		return fail(nil, errors.New("empty command"))
	}
	out, code, err := t.Exec(ctx, cmd)
	if err != nil {
		return fail(out, err)
	}
	if code != 0 {
		return fail(out, fmt.Errorf("command '%s' exited with %d: %s", strings.Join(cmd, " "), code, out))
	}
	return nil
}

func runHTTP(ctx context.Context, a *corev1.HTTPGetAction, c *corev1.Container, podIP string) error {
	req, err := probe.NewHTTPGetRequest(ctx, a, c, podIP, "lifecycle")
	if err != nil {
		return err
	}
	client := probe.NewHTTPClient(0)
	resp, err := client.Do(req)
	discard(resp)
	if isHTTPResponseError(err) {
		// The kubelet retries an HTTPS hook over HTTP when the server
		// answered in plain HTTP, without any Authorization header.
		req = req.Clone(ctx)
		req.URL.Scheme = "http"
		req.Header.Del("Authorization")
		resp, herr := client.Do(req)
		discard(resp)
		if herr == nil {
			err = nil
		}
	}
	return err
}

// discard reads and closes a response body so the hook completes as the
// server sent it.
func discard(resp *http.Response) {
	if resp == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
}

func isHTTPResponseError(err error) bool {
	var uerr *url.Error
	return errors.As(err, &uerr) && strings.Contains(uerr.Err.Error(), "server gave HTTP response to HTTPS client")
}

func sleep(ctx context.Context, seconds int64) error {
	t := time.NewTimer(time.Duration(seconds) * time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return errors.New("container terminated before sleep hook finished")
	case <-t.C:
		return nil
	}
}
