package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/peapod/peapod/internal/wsbinary"
)

// queryBool reads a boolean query parameter ("true", "1", ...); absent is
// false.
func queryBool(q url.Values, key string) (bool, error) {
	v := q.Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, apierrors.NewBadRequest(fmt.Sprintf("invalid value %q for %s: %v", v, key, err))
	}
	return b, nil
}

// logParams turns a pods/log query (PodLogOptions) into the agent's
// containerLogs query, validating it as Kubernetes does: parse errors are
// 400, invalid values 422.
func logParams(q url.Values) (url.Values, error) {
	out := url.Values{}
	for _, k := range []string{"follow", "previous", "timestamps"} {
		b, err := queryBool(q, k)
		if err != nil {
			return nil, err
		}
		if b {
			out.Set(k, "true")
		}
	}
	var errs field.ErrorList
	ints := map[string]int64{}
	for _, k := range []string{"sinceSeconds", "tailLines", "limitBytes"} {
		v := q.Get(k)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid value %q for %s: %v", v, k, err))
		}
		ints[k] = n
		out.Set(k, v)
	}
	if n, ok := ints["tailLines"]; ok && n < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), n, "must be greater than or equal to 0"))
	}
	if n, ok := ints["limitBytes"]; ok && n < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), n, "must be greater than 0"))
	}
	if n, ok := ints["sinceSeconds"]; ok && n < 1 {
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), n, "must be greater than 0"))
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid value %q for sinceTime: %v", v, err))
		}
		if _, ok := ints["sinceSeconds"]; ok {
			errs = append(errs, field.Forbidden(field.NewPath("sinceSeconds"), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
		}
		out.Set("sinceTime", t.UTC().Format(time.RFC3339))
	}
	if v := q.Get("stream"); v != "" {
		switch v {
		case "All", "Stdout", "Stderr":
			out.Set("stream", v)
		default:
			errs = append(errs, field.NotSupported(field.NewPath("stream"), v, []string{"All", "Stdout", "Stderr"}))
		}
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "PodLogOptions"}, "", errs)
	}
	return out, nil
}

// kubeletStreamParam maps the API's exec/attach flags to the kubelet's
// own query names (corev1.ExecStdinParam and friends).
var kubeletStreamParam = map[string]string{"stdin": corev1.ExecStdinParam, "stdout": corev1.ExecStdoutParam,
	"stderr": corev1.ExecStderrParam, "tty": corev1.ExecTTYParam}

// streamParams turns an exec or attach query into the agent's query:
// command (exec, repeated, required) and each requested stream as "1",
// under both the kubelet's names (input, output, error, tty: what the
// kubelet's streaming library reads) and the API's (stdin, stdout,
// stderr), so either kind of agent understands it.
func streamParams(q url.Values, exec bool) (url.Values, error) {
	out := url.Values{}
	any := false
	for _, k := range []string{"stdin", "stdout", "stderr", "tty"} {
		b, err := queryBool(q, k)
		if err != nil {
			return nil, err
		}
		if b {
			out.Set(k, "1")
			out.Set(kubeletStreamParam[k], "1")
			any = any || k != "tty"
		}
	}
	if !any {
		return nil, apierrors.NewBadRequest("you must specify at least 1 of stdin, stdout, stderr")
	}
	if exec {
		cmd := q["command"]
		if len(cmd) == 0 {
			return nil, apierrors.NewBadRequest("you must specify at least one command for the container")
		}
		for _, c := range cmd {
			out.Add("command", c)
		}
	}
	return out, nil
}

// portForwardParams turns a pods/portforward query into the agent's: the
// API's ports (PodPortForwardOptions; repeated, or comma-separated) as
// the kubelet's one comma-separated port parameter, which WebSocket
// clients need (SPDY clients name ports per stream instead). An earlier
// peapod's port parameter is read too.
func portForwardParams(q url.Values) (url.Values, error) {
	var ports []string
	for _, k := range []string{"ports", "port"} {
		for _, v := range q[k] {
			for _, p := range strings.Split(v, ",") {
				n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
				if err != nil || n == 0 {
					return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid port %q in %s: must be a number from 1 to 65535", p, k))
				}
				ports = append(ports, strconv.FormatUint(n, 10))
			}
		}
	}
	params := url.Values{}
	if len(ports) > 0 {
		params.Set(corev1.PortHeader, strings.Join(ports, ","))
	}
	return params, nil
}

// streamLogs GETs the agent's containerLogs and copies the body to w,
// flushing after every read so `logs -f` sees lines as they come, or, to
// a WebSocket client, as binary.k8s.io or base64.binary.k8s.io messages
// (as kube-apiserver streams pods/log; the agent's side stays a plain
// stream). An agent error becomes a metav1.Status with the agent's code
// and message, before any upgrade.
func (p *nodeProxy) streamLogs(w http.ResponseWriter, r *http.Request, loc *url.URL, cr connectRequest) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		p.api.writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		p.api.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error dialing backend: %v", err)))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		p.api.writeError(w, r, agentError(resp.StatusCode, strings.TrimSpace(string(msg)), cr.pod))
		return
	}
	if wsstream.IsWebSocketRequest(r) {
		// Cancelling the agent request ends a follow the client left.
		if err := wsbinary.Copy(w, r, resp.Body, cancel); err != nil {
			p.api.log.Debug("log stream over websocket", "pod", cr.namespace+"/"+cr.pod, "err", err)
		}
		return
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && r.Context().Err() == nil {
				p.api.log.Debug("log stream ended", "pod", cr.namespace+"/"+cr.pod, "err", err)
			}
			return
		}
	}
}

// agentError maps an agent's error response to an API status.
func agentError(code int, msg, pod string) error {
	if msg == "" {
		msg = http.StatusText(code)
	}
	reason := metav1.StatusReasonInternalError
	switch code {
	case http.StatusBadRequest:
		reason = metav1.StatusReasonBadRequest
	case http.StatusNotFound:
		reason = metav1.StatusReasonNotFound
	case http.StatusForbidden:
		reason = metav1.StatusReasonForbidden
	case http.StatusUnauthorized:
		reason = metav1.StatusReasonUnauthorized
	case http.StatusServiceUnavailable:
		reason = metav1.StatusReasonServiceUnavailable
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: int32(code), Reason: reason,
		Message: msg, Details: &metav1.StatusDetails{Name: pod, Kind: "pods"}}}
}
