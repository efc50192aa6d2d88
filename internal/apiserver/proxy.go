package apiserver

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/proxy"
)

// DefaultNodeAgentPort is the agent's HTTPS port when the Node does not
// announce status.daemonEndpoints.kubeletEndpoint.Port (the kubelet's).
const DefaultNodeAgentPort = 10250

// nodeProxy serves pods/log, pods/exec, pods/attach and pods/portforward
// by proxying to the pod's node agent on the kubelet's paths:
//
//	/containerLogs/<ns>/<pod>/<container>?follow=true&tailLines=...
//	/exec/<ns>/<pod>/<container>?command=...&input=1&output=1&error=1&tty=1 (also stdin=1...)
//	/attach/<ns>/<pod>/<container>?input=1&output=1&error=1&tty=1 (also stdin=1...)
//	/portForward/<ns>/<pod>?port=...
//
// It presents the API server's kubelet client certificate
// (CN=kube-apiserver-kubelet-client, O=system:masters) and verifies the
// agent's serving certificate against the cluster CA. Upgrades (SPDY and
// WebSocket, as kubectl tries them) are passed through unchanged, so a
// client falls back to SPDY when the agent refuses a WebSocket protocol.
type nodeProxy struct {
	api       *api
	transport *http.Transport
}

func newNodeProxy(a *api, pki *PKI) *nodeProxy {
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA)
	return &nodeProxy{api: a, transport: &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{pki.KubeletClient},
			RootCAs:      pool,
			MinVersion:   tls.VersionTLS12,
			// Upgrades need HTTP/1.1 end to end.
			NextProtos: []string{"http/1.1"},
		},
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// connectRequest is a parsed pods/<subresource> connect path.
type connectRequest struct {
	namespace, pod, subresource string
}

// parseConnectPath recognises /api/v1/namespaces/<ns>/pods/<name>/<sub>
// for the proxied subresources.
func parseConnectPath(p string) (connectRequest, bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) != 7 || parts[0] != "api" || parts[1] != "v1" || parts[2] != "namespaces" || parts[4] != "pods" {
		return connectRequest{}, false
	}
	switch parts[6] {
	case "log", "exec", "attach", "portforward":
		return connectRequest{namespace: parts[3], pod: parts[5], subresource: parts[6]}, true
	}
	return connectRequest{}, false
}

var podsGR = schema.GroupResource{Resource: "pods"}

func (p *nodeProxy) serve(w http.ResponseWriter, r *http.Request, cr connectRequest) {
	a := p.api
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	defer func() { a.metrics.observeRequest("CONNECT", "pods/"+cr.subresource, rw.code, time.Since(start)) }()
	user, ok, err := a.authn.Authenticate(r)
	if err != nil || !ok {
		a.writeError(rw, r, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	r = r.WithContext(withUser(r.Context(), user))
	verb := "create"
	if cr.subresource == "log" {
		verb = "get"
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.writeError(rw, r, apierrors.NewMethodNotSupported(podsGR, r.Method))
			return
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodPost {
		a.writeError(rw, r, apierrors.NewMethodNotSupported(podsGR, r.Method))
		return
	}
	if !a.allowed(rw, r, Attributes{User: user, Verb: verb, Resource: "pods", Subresource: cr.subresource,
		Namespace: cr.namespace, Name: cr.pod}) {
		return
	}
	// The agent must see the API server's identity only.
	r.Header.Del("Authorization")
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "impersonate-") {
			r.Header.Del(k)
		}
	}
	loc, err := p.location(r, cr)
	if err != nil {
		a.writeError(rw, r, err)
		return
	}
	if cr.subresource == "log" {
		p.streamLogs(hijackable{rw}, r, loc, cr)
		return
	}
	h := proxy.NewUpgradeAwareHandler(loc, p.transport, false, false, responder{a})
	// The upgrade hijacks the connection, so the handler gets the real
	// writer (status code recording stops at the upgrade).
	h.UseLocationHost = true
	h.FlushInterval = -1
	h.ServeHTTP(hijackable{rw}, r)
}

// hijackable exposes the underlying writer's Hijack through statusWriter,
// recording 101 for a successful upgrade.
type hijackable struct{ *statusWriter }

// Hijack implements http.Hijacker.
func (h hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("connection cannot be hijacked: %T", h.ResponseWriter)
	}
	h.code = http.StatusSwitchingProtocols
	return hj.Hijack()
}

// location resolves the agent URL for a connect request.
func (p *nodeProxy) location(r *http.Request, cr connectRequest) (*url.URL, error) {
	ctx := r.Context()
	obj, _, err := p.api.getObject(ctx, p.api.resourceFor("", "v1", "pods"), cr.namespace, cr.pod)
	if err != nil {
		return nil, err
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	q := r.URL.Query()
	var container string
	if cr.subresource != "portforward" {
		if container, err = podContainer(pod, q.Get("container")); err != nil {
			return nil, err
		}
	}
	var path string
	var params url.Values
	switch cr.subresource {
	case "log":
		if params, err = logParams(q); err != nil {
			return nil, err
		}
		path = fmt.Sprintf("/containerLogs/%s/%s/%s", cr.namespace, cr.pod, container)
	case "exec", "attach":
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot %s into a container in a completed pod; current phase is %s", cr.subresource, pod.Status.Phase))
		}
		if params, err = streamParams(q, cr.subresource == "exec"); err != nil {
			return nil, err
		}
		path = fmt.Sprintf("/%s/%s/%s/%s", cr.subresource, cr.namespace, cr.pod, container)
	case "portforward":
		if params, err = portForwardParams(q); err != nil {
			return nil, err
		}
		path = fmt.Sprintf("/portForward/%s/%s", cr.namespace, cr.pod)
	}
	host, err := p.nodeHost(r, pod.Spec.NodeName)
	if err != nil {
		return nil, err
	}
	return &url.URL{Scheme: "https", Host: host, Path: path, RawQuery: params.Encode()}, nil
}

// nodeHost returns <InternalIP or ExternalIP>:<agent port> of a node.
func (p *nodeProxy) nodeHost(r *http.Request, nodeName string) (string, error) {
	obj, _, err := p.api.getObject(r.Context(), p.api.resourceFor("", "v1", "nodes"), "", nodeName)
	if apierrors.IsNotFound(err) {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %q of the pod is not registered", nodeName))
	}
	if err != nil {
		return "", err
	}
	addr, port, err := nodeEndpoint(obj.(*corev1.Node))
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(addr, strconv.Itoa(port)), nil
}

// podContainer picks the named container (regular, init or ephemeral),
// or the only one when name is empty, with Kubernetes' error wording.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	var names, initNames []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		initNames = append(initNames, c.Name)
	}
	if name == "" {
		if len(names) == 1 {
			return names[0], nil
		}
		msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
		if len(initNames) > 0 {
			msg += fmt.Sprintf(" or one of the init containers: %v", initNames)
		}
		return "", apierrors.NewBadRequest(msg)
	}
	for _, n := range append(names, initNames...) {
		if n == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

// responder reports proxy setup errors as metav1.Status; it implements
// proxy.ErrorResponder.
type responder struct{ a *api }

func (r responder) Error(w http.ResponseWriter, req *http.Request, err error) {
	r.a.log.Debug("node proxy", "path", req.URL.Path, "err", err)
	r.a.writeError(w, req, apierrors.NewServiceUnavailable(fmt.Sprintf("error dialing backend: %v", err)))
}
