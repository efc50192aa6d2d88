package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// maxBodyBytes is how much of a probe response body the kubelet keeps as
// the probe's message.
const maxBodyBytes = 10 << 10

// NewHTTPGetRequest builds the GET request the kubelet sends for an
// httpGet action of a probe or lifecycle hook:
//
//   - URL scheme://host:port/path from a.Scheme (default HTTP), a.Host
//     (default podIP), a.Port (a number or the name of one of c's ports,
//     see [ResolvePort]) and a.Path (a "?query" in it is kept as the query);
//   - a.HTTPHeaders in order; a "Host" header sets the request's Host;
//   - User-Agent "kube-<userAgentFragment>/<KubeVersion>" (for example
//     "kube-probe/1.32") and Accept "*/*" unless the headers set them (an
//     empty Accept removes it).
//
// The request carries ctx. It fails when the port cannot be resolved or
// there is no host.
func NewHTTPGetRequest(ctx context.Context, a *corev1.HTTPGetAction, c *corev1.Container, podIP, userAgentFragment string) (*http.Request, error) {
	scheme := strings.ToLower(string(a.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := a.Host
	if host == "" {
		host = podIP
	}
	if host == "" {
		return nil, errors.New("httpGet: no host and no pod IP")
	}
	port, err := ResolvePort(a.Port, c)
	if err != nil {
		return nil, fmt.Errorf("httpGet: %w", err)
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if i := strings.Index(a.Path, "?"); i >= 0 {
		u.Path, u.RawQuery = a.Path[:i], a.Path[i+1:]
	} else {
		u.Path = a.Path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("httpGet: %w", err)
	}
	headers := http.Header{}
	for _, h := range a.HTTPHeaders {
		headers.Add(h.Name, h.Value)
	}
	if _, ok := headers["User-Agent"]; !ok {
		headers.Set("User-Agent", "kube-"+userAgentFragment+"/"+KubeVersion)
	}
	if _, ok := headers["Accept"]; !ok {
		headers.Set("Accept", "*/*")
	} else if headers.Get("Accept") == "" {
		headers.Del("Accept")
	}
	req.Header = headers
	req.Host = headers.Get("Host")
	return req, nil
}

// NewHTTPClient returns a client configured like the kubelet's probe and
// hook clients: TLS without certificate verification, no proxy, no
// keep-alives (each attempt is a fresh connection, closed at once),
// redirects followed only to the same host name and at most 10 times (a
// redirect elsewhere returns the 3xx response itself), and an overall
// timeout (0: none, rely on the request's context).
func NewHTTPClient(timeout time.Duration) *http.Client {
	d := dialer()
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       d.DialContext,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet does not verify probe targets
			DisableKeepAlives: true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
}

// HTTPGet performs one httpGet probe attempt: the request of
// [NewHTTPGetRequest] sent with the client of [NewHTTPClient] and the given
// timeout. A status in [200, 400) is Success with the body (at most 10 KiB)
// as message; a 3xx (a redirect to another host, not followed) is Success
// with the kubelet's "Probe terminated redirects" message; any other status
// is Failure ("HTTP probe failed with statuscode: N"); a transport error
// or timeout is Failure with the error as message. Only a request that
// cannot be built, or a cancelled ctx, gives Unknown and an error.
func HTTPGet(ctx context.Context, a *corev1.HTTPGetAction, c *corev1.Container, podIP string, timeout time.Duration) (Result, string, error) {
	req, err := NewHTTPGetRequest(ctx, a, c, podIP, "probe")
	if err != nil {
		return Unknown, "", err
	}
	res, err := NewHTTPClient(timeout).Do(req)
	if ctx.Err() != nil {
		return Unknown, "", fmt.Errorf("httpGet %s: %w", req.URL, ctx.Err())
	}
	if err != nil {
		return Failure, err.Error(), nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxBodyBytes))
	if err != nil {
		return Failure, err.Error(), nil
	}
	body := string(b)
	if res.StatusCode >= http.StatusOK && res.StatusCode < http.StatusBadRequest {
		if res.StatusCode >= http.StatusMultipleChoices {
			return Success, "Probe terminated redirects, Response body: " + body, nil
		}
		return Success, body, nil
	}
	return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode), nil
}

func runHTTP(ctx context.Context, a *corev1.HTTPGetAction, c *corev1.Container, timeout time.Duration, t Target) (Result, string, error) {
	return HTTPGet(ctx, a, c, t.PodIP, timeout)
}
