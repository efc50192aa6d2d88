package apiserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/proxy"
)

// resourceProxy serves the proxy subresources of pods, services and
// nodes, as kube-apiserver's ProxyREST does:
//
//	/api/v1/namespaces/NS/pods/[SCHEME:]NAME[:PORT]/proxy[/PATH]      → the pod's IP (proxy_locations.go)
//	/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy[/PATH]  → a ready endpoint's IP and target port
//	/api/v1/nodes/[SCHEME:]NAME[:PORT]/proxy[/PATH]                   → the node agent, or another port of the node
//
// Every HTTP method is passed on with the path under /proxy, the query
// (upgrades included, unlike kube-apiserver), the body and the headers but
// the caller's credentials; the response
// comes back with its status and headers, Location headers and HTML links
// rewritten to stay under the proxy path (apimachinery's proxy.Transport),
// and upgrades (WebSocket, SPDY) are passed through. A request for
// .../proxy with no path is redirected to .../proxy/.
//
// Authorization is Kubernetes': verb from the method (get, create,
// update, patch, delete) on resource pods, services or nodes, subresource
// proxy, named by the path segment as given (NAME:PORT included).
//
// Pods and services are reached from this process: on the node it runs
// on, or through the pod network across nodes.
type resourceProxy struct {
	api *api
	// kubelet reaches node agents (the API server's client certificate,
	// the agent's certificate verified against the cluster CA).
	kubelet *http.Transport
	// direct reaches pods, services' endpoints and nodes' other ports. As
	// kube-apiserver's proxy transport it does not verify https backends'
	// certificates: pods serve certificates no cluster CA signed.
	direct *http.Transport
	// endpoints resolves a Service to its ready backends.
	endpoints EndpointsResolver
	// addressAllowed vets a pod's IP and a node's addresses before they
	// are proxied to: globalUnicast, as kube-apiserver refuses loopback
	// and link-local addresses there (tests loosen it).
	addressAllowed func(net.IP) error
}

func newResourceProxy(a *api, np *nodeProxy) *resourceProxy {
	return &resourceProxy{
		api:     a,
		kubelet: np.transport,
		direct: &http.Transport{
			// No environment proxy: pod IPs are reached directly.
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
		},
		endpoints:      selectorEndpoints{a},
		addressAllowed: globalUnicast,
	}
}

// proxyRequest is a parsed proxy subresource path.
type proxyRequest struct {
	resource  string // pods, services or nodes
	namespace string // "" for nodes
	id        string // NAME, NAME:PORT or SCHEME:NAME:PORT, as given
	path      string // what follows /proxy: "" or starting with "/"
}

// parseProxyPath recognises the proxy subresource paths of pods, services
// and nodes.
func parseProxyPath(p string) (proxyRequest, bool) {
	rest, ok := strings.CutPrefix(p, "/api/v1/")
	if !ok {
		return proxyRequest{}, false
	}
	var pr proxyRequest
	var parts []string
	if strings.HasPrefix(rest, "namespaces/") {
		// namespaces/NS/RESOURCE/ID/proxy[/PATH]
		parts = strings.SplitN(rest, "/", 6)
		if len(parts) < 5 || (parts[2] != "pods" && parts[2] != "services") {
			return proxyRequest{}, false
		}
		pr = proxyRequest{resource: parts[2], namespace: parts[1], id: parts[3]}
		parts = parts[4:]
	} else {
		// nodes/ID/proxy[/PATH]
		parts = strings.SplitN(rest, "/", 4)
		if len(parts) < 3 || parts[0] != "nodes" {
			return proxyRequest{}, false
		}
		pr = proxyRequest{resource: "nodes", id: parts[1]}
		parts = parts[2:]
	}
	if parts[0] != "proxy" || pr.id == "" || (pr.resource != "nodes" && pr.namespace == "") {
		return proxyRequest{}, false
	}
	if len(parts) == 2 {
		pr.path = "/" + parts[1]
	}
	return pr, true
}

// proxyVerb is the authorization verb of a proxied request's method, as
// kube-apiserver's RequestInfo derives it.
func proxyVerb(method string) (string, bool) {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get", true
	case http.MethodPost:
		return "create", true
	case http.MethodPut:
		return "update", true
	case http.MethodPatch:
		return "patch", true
	case http.MethodDelete:
		return "delete", true
	case http.MethodOptions:
		return "", true // kube-apiserver leaves it empty too
	}
	return "", false
}

func (p *resourceProxy) serve(w http.ResponseWriter, r *http.Request, pr proxyRequest) {
	a := p.api
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	defer func() { a.metrics.observeRequest("CONNECT", pr.resource+"/proxy", rw.code, time.Since(start)) }()
	user, ok, err := a.authn.Authenticate(r)
	if err != nil || !ok {
		a.writeError(rw, r, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	r = r.WithContext(withUser(r.Context(), user))
	verb, ok := proxyVerb(r.Method)
	if !ok {
		a.writeError(rw, r, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: pr.resource}, r.Method))
		return
	}
	if !a.allowed(rw, r, Attributes{User: user, Verb: verb, Resource: pr.resource, Subresource: "proxy",
		Namespace: pr.namespace, Name: pr.id}) {
		return
	}
	// The backend must not see the caller's credentials, as
	// kube-apiserver's authentication and impersonation filters drop them.
	r.Header.Del("Authorization")
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "impersonate-") {
			r.Header.Del(k)
		}
	}
	loc, transport, err := p.location(r, pr)
	if err != nil {
		a.writeError(rw, r, err)
		return
	}
	loc.Path = utilnet.JoinPreservingTrailingSlash(loc.Path, pr.path)
	// The handler adds the query to plain requests only; an upgrade
	// (a WebSocket to a pod, an exec through nodes/proxy) needs it as
	// much. kube-apiserver drops it there (kubernetes#77142).
	loc.RawQuery = r.URL.RawQuery
	h := proxy.NewUpgradeAwareHandler(loc, transport, true, false, proxyResponder{a})
	h.ServeHTTP(hijackable{rw}, r)
}

// location resolves where a proxy request goes, and through which
// transport.
func (p *resourceProxy) location(r *http.Request, pr proxyRequest) (*url.URL, http.RoundTripper, error) {
	ctx := r.Context()
	scheme, name, port, valid := utilnet.SplitSchemeNamePort(pr.id)
	if !valid {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("invalid %s request %q", strings.TrimSuffix(pr.resource, "s"), pr.id))
	}
	switch pr.resource {
	case "pods":
		obj, _, err := p.api.getObject(ctx, p.api.resourceFor("", "v1", "pods"), pr.namespace, name)
		if err != nil {
			return nil, nil, err
		}
		loc, err := podLocation(obj.(*corev1.Pod), scheme, port, p.addressAllowed)
		return loc, p.direct, err
	case "services":
		obj, _, err := p.api.getObject(ctx, p.api.resourceFor("", "v1", "services"), pr.namespace, name)
		if err != nil {
			return nil, nil, err
		}
		svc := obj.(*corev1.Service)
		endpoints, err := p.endpoints.Endpoints(ctx, svc)
		if err != nil {
			return nil, nil, fmt.Errorf("endpoints of service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		loc, err := serviceLocation(svc, endpoints, pr.id, scheme, port, rand.IntN)
		return loc, p.direct, err
	default:
		obj, _, err := p.api.getObject(ctx, p.api.resourceFor("", "v1", "nodes"), "", name)
		if err != nil {
			return nil, nil, err
		}
		loc, toAgent, err := nodeLocation(ctx, obj.(*corev1.Node), scheme, port, p.addressAllowed)
		if err != nil {
			return nil, nil, err
		}
		if toAgent {
			return loc, p.kubelet, nil
		}
		return loc, p.direct, nil
	}
}

// proxyResponder reports a failure to reach the backend: an API status
// (proxy.Transport's "error trying to reach service") as it is, anything
// else as 503 ServiceUnavailable. It implements proxy.ErrorResponder.
type proxyResponder struct{ a *api }

func (r proxyResponder) Error(w http.ResponseWriter, req *http.Request, err error) {
	r.a.log.Debug("proxy", "path", req.URL.Path, "err", err)
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		r.a.writeError(w, req, err)
		return
	}
	r.a.writeError(w, req, apierrors.NewServiceUnavailable(err.Error()))
}
