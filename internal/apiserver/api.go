package apiserver

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"github.com/peapod/peapod/internal/storage"
)

// api is the HTTP handler: authentication, routing, and the generic REST
// verbs over a storage.Store. It holds no global state.
type api struct {
	scheme    *runtime.Scheme
	codecs    serializer.CodecFactory
	storeCode runtime.Serializer
	jsonInfo  runtime.SerializerInfo
	store     storage.Store
	authn     Authenticator
	authz     Authorizer
	metrics   *metrics
	log       *slog.Logger
	// eventTTL is how long the store keeps an object of an Expires kind
	// after its last write.
	eventTTL time.Duration
	now      func() time.Time

	resources []*Resource
	byGVR     map[schema.GroupVersionResource]*Resource
	// groups lists the served group versions in discovery order.
	groups []schema.GroupVersion

	// bookmarkInterval is how often idle watches get a BOOKMARK.
	bookmarkInterval time.Duration
	// serverAddress is announced in /api.
	serverAddress string
	// advertise is where pods reach this server through the kubernetes
	// Service (kubernetes_endpoints.go); ip is empty when unknown.
	advertise kubernetesEndpoint
	caPEM     []byte
	ready     func() bool
	openapi   *openAPI

	// services allocates ClusterIPs and NodePorts (services.go).
	services *serviceAllocators
	// repairs keep the allocation bitmaps true to the Services; the first
	// pass runs at bootstrap, the rest in the background (service_repair.go).
	repairs []*allocationRepair
	// terminating tracks namespaces whose content is being deleted.
	terminating sync.Map
	// managers are the server-side apply field managers (ssa.go).
	managers fieldManagers
}

// apiOptions configures newAPI.
type apiOptions struct {
	Store            storage.Store
	Authn            Authenticator
	Authz            Authorizer
	Logger           *slog.Logger
	BookmarkInterval time.Duration
	ServerAddress    string
	Advertise        kubernetesEndpoint
	CAPEM            []byte
	Metrics          *metrics
	// ServiceCIDR is the IPv4 range ClusterIPs come from; default
	// 10.96.0.0/12. NodePortRange defaults to 30000-32767.
	ServiceCIDR, NodePortRange string
	// ReservedServiceIPs are never handed out to a Service that asks for
	// no particular ClusterIP (see Config.ReservedServiceIPs).
	ReservedServiceIPs []string
	// EventTTL: see Config.EventTTL; 0 is the default, 1h.
	EventTTL time.Duration
}

// DefaultEventTTL is kube-apiserver's --event-ttl default.
const DefaultEventTTL = time.Hour

func newAPI(opts apiOptions) *api {
	s := newScheme()
	codecs, storeCodec := newCodecs(s)
	info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	a := &api{
		scheme: s, codecs: codecs, storeCode: storeCodec, jsonInfo: info,
		store: opts.Store, authn: opts.Authn, authz: opts.Authz,
		metrics: opts.Metrics, log: opts.Logger, now: time.Now,
		byGVR:            map[schema.GroupVersionResource]*Resource{},
		bookmarkInterval: opts.BookmarkInterval,
		serverAddress:    opts.ServerAddress,
		advertise:        opts.Advertise,
		caPEM:            opts.CAPEM,
		ready:            func() bool { return true },
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.metrics == nil {
		a.metrics = newMetrics()
	}
	if a.authz == nil {
		a.authz = MastersAuthorizer{}
	}
	a.eventTTL = opts.EventTTL
	if a.eventTTL == 0 {
		a.eventTTL = DefaultEventTTL
	}
	if a.bookmarkInterval == 0 {
		a.bookmarkInterval = time.Minute
	}
	a.store = instrumentStore(a.store, a.metrics)
	for _, r := range builtinResources() {
		a.register(r)
	}
	a.openapi = newOpenAPI(a)
	a.services = newServiceAllocators(a, opts.ServiceCIDR, opts.NodePortRange, opts.ReservedServiceIPs)
	return a
}

// register adds a resource to the table; later registrations of the same
// GVR replace earlier ones.
func (a *api) register(r *Resource) {
	if _, ok := a.byGVR[r.GVR]; !ok {
		a.resources = append(a.resources, r)
	}
	a.byGVR[r.GVR] = r
	gv := r.GVR.GroupVersion()
	for _, g := range a.groups {
		if g == gv {
			return
		}
	}
	a.groups = append(a.groups, gv)
}

// resourceFor finds a resource by group, version and plural name.
func (a *api) resourceFor(group, version, resource string) *Resource {
	return a.byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: resource}]
}

// requestInfo is a parsed resource request.
type requestInfo struct {
	res         *Resource
	verb        string
	namespace   string
	name        string
	subresource string
}

// parseResourcePath parses /api/v1/... and /apis/<g>/<v>/... paths.
// ok=false means the path is not a resource path.
func (a *api) parseResourcePath(r *http.Request) (requestInfo, bool, error) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var group, version string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		version, parts = parts[1], parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, version, parts = parts[1], parts[2], parts[3:]
	default:
		return requestInfo{}, false, nil
	}
	legacyWatch := false
	if parts[0] == "watch" {
		legacyWatch, parts = true, parts[1:]
	}
	if !a.servesGroupVersion(schema.GroupVersion{Group: group, Version: version}) {
		return requestInfo{}, true, errNoRoute
	}
	var info requestInfo
	if len(parts) >= 3 && parts[0] == "namespaces" {
		if res := a.resourceFor(group, version, parts[2]); res != nil && res.Namespaced {
			info.namespace, info.res, parts = parts[1], res, parts[3:]
		}
	}
	if info.res == nil {
		if len(parts) == 0 {
			return requestInfo{}, false, nil
		}
		info.res = a.resourceFor(group, version, parts[0])
		if info.res == nil {
			return requestInfo{}, true, errNoSuchPath()
		}
		parts = parts[1:]
	}
	if len(parts) > 0 {
		info.name, parts = parts[0], parts[1:]
	}
	if len(parts) > 0 {
		info.subresource, parts = parts[0], parts[1:]
	}
	if len(parts) > 0 {
		return info, true, errNoSuchPath()
	}
	q := r.URL.Query()
	isWatch := legacyWatch || q.Get("watch") == "true" || q.Get("watch") == "1"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case info.name != "" && !isWatch:
			info.verb = "get"
		case isWatch:
			info.verb = "watch"
		default:
			info.verb = "list"
		}
	case http.MethodPost:
		info.verb = "create"
	case http.MethodPut:
		info.verb = "update"
	case http.MethodPatch:
		info.verb = "patch"
	case http.MethodDelete:
		info.verb = "delete"
		if info.name == "" {
			info.verb = "deletecollection"
		}
	default:
		return info, true, apierrors.NewMethodNotSupported(info.res.GVR.GroupResource(), r.Method)
	}
	if info.verb == "watch" && info.name != "" {
		// A watch of one object is a watch with a name field selector.
		q.Set("fieldSelector", joinSelector(q.Get("fieldSelector"), "metadata.name="+info.name))
		r.URL.RawQuery = q.Encode()
		info.name = ""
	}
	if info.res.Namespaced && info.namespace == "" && info.name != "" {
		return info, true, errNoSuchPath() // a namespaced object has no cluster-wide path
	}
	return info, true, nil
}

func joinSelector(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

// ServeHTTP authenticates, authorizes and dispatches a request.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	info, isResource, perr := a.parseResourcePath(r)
	verb, resource := strings.ToUpper(r.Method), ""
	if isResource && info.res != nil {
		verb, resource = strings.ToUpper(info.verb), info.res.GVR.Resource
		if info.subresource != "" {
			resource += "/" + info.subresource
		}
	}
	defer func() {
		if p := recover(); p != nil {
			// Counted as the 500 it becomes (unless it is a deliberate
			// abort); recoverPanics around the whole handler answers and
			// logs it.
			if p != http.ErrAbortHandler {
				a.metrics.observeRequest(verb, resource, http.StatusInternalServerError, 0)
			}
			panic(p)
		}
		if verb != "WATCH" {
			a.metrics.observeRequest(verb, resource, rw.code, time.Since(start))
		} else {
			a.metrics.observeRequest(verb, resource, rw.code, 0)
		}
	}()

	user, ok, err := a.authn.Authenticate(r)
	if err != nil || !ok {
		if !ok && err == nil && isPublicPath(r.URL.Path) {
			user = User{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}
		} else {
			a.writeError(rw, r, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
	}
	ctx := withUser(r.Context(), user)
	r = r.WithContext(ctx)

	if !isResource {
		if !isPublicPath(r.URL.Path) && !a.allowed(rw, r, Attributes{User: user, Verb: strings.ToLower(r.Method), Path: r.URL.Path}) {
			return
		}
		a.serveNonResource(rw, r)
		return
	}
	if perr != nil {
		a.writeError(rw, r, perr)
		return
	}
	attrs := Attributes{User: user, Verb: info.verb, Group: info.res.GVR.Group, Resource: info.res.GVR.Resource,
		Subresource: info.subresource, Namespace: info.namespace, Name: info.name}
	if !a.allowed(rw, r, attrs) {
		return
	}
	a.serveResource(rw, r, info)
}

func (a *api) allowed(w http.ResponseWriter, r *http.Request, attrs Attributes) bool {
	ok, reason, err := a.authz.Authorize(r.Context(), attrs)
	if err != nil {
		a.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("authorize: %w", err)))
		return false
	}
	if !ok {
		var gr schema.GroupResource
		msg := fmt.Sprintf("User %q cannot %s path %q", attrs.User.Name, attrs.Verb, attrs.Path)
		if attrs.Resource != "" {
			// Kubernetes' wording: the subresource with its resource
			// (pods/proxy), and where.
			gr = schema.GroupResource{Group: attrs.Group, Resource: attrs.Resource}
			resource := attrs.Resource
			if attrs.Subresource != "" {
				resource += "/" + attrs.Subresource
			}
			msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q", attrs.User.Name, attrs.Verb, resource, attrs.Group)
			if attrs.Namespace != "" {
				msg += fmt.Sprintf(" in the namespace %q", attrs.Namespace)
			} else {
				msg += " at the cluster scope"
			}
		}
		if reason != "" {
			msg += ": " + reason
		}
		err := apierrors.NewForbidden(gr, attrs.Name, fmt.Errorf("%s", msg))
		a.writeError(w, r, err)
		return false
	}
	return true
}

// isPublicPath reports the paths anonymous clients may read, as
// system:public-info-viewer allows on Kubernetes.
func isPublicPath(p string) bool {
	switch p {
	case "/healthz", "/livez", "/readyz", "/version", "/version/":
		return true
	}
	return false
}

func (a *api) serveResource(w http.ResponseWriter, r *http.Request, info requestInfo) {
	ctx := r.Context()
	var err error
	switch info.verb {
	case "get":
		err = a.handleGet(ctx, w, r, info)
	case "list":
		err = a.handleList(ctx, w, r, info)
	case "watch":
		err = a.handleWatch(ctx, w, r, info)
	case "create":
		err = a.handleCreate(ctx, w, r, info)
	case "update":
		err = a.handleUpdate(ctx, w, r, info)
	case "patch":
		err = a.handlePatch(ctx, w, r, info)
	case "delete":
		err = a.handleDelete(ctx, w, r, info)
	case "deletecollection":
		err = a.handleDeleteCollection(ctx, w, r, info)
	}
	if err != nil {
		a.writeError(w, r, err)
	}
}

// statusWriter records the response code for metrics and keeps Flush.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
