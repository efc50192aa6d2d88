package apiserver

import (
	"bytes"
	"io"
	"net/http"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
)

// front is the server's outermost handler. In front of the generic REST
// handler it serves:
//   - GET /cacerts: the cluster CA (PEM), anonymously, for joining nodes
//     that check it against the hash in their join token;
//   - POST /peapod/v1/join: the node join endpoint (node_join.go);
//   - pods/log, pods/exec, pods/attach and pods/portforward, proxied to
//     the pod's node agent (proxy.go);
//   - the proxy subresources of pods, services and nodes
//     (proxy_resources.go);
//
// and for requests carrying a node's client certificate it records in the
// request context what the node authorizer needs beyond Attributes (the
// name inside a create's body, the metadata.name of a field selector).
// It holds no mutable state.
type front struct {
	api   *api
	pki   *PKI
	proxy *nodeProxy
	// resources serves pods/proxy, services/proxy and nodes/proxy.
	resources *resourceProxy
}

// Paths served by front itself.
const (
	CACertsPath = "/cacerts"
	JoinPath    = "/peapod/v1/join"
)

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case CACertsPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(f.pki.CAPEM)
		return
	case JoinPath:
		f.serveJoin(w, r)
		return
	}
	if f.proxy != nil {
		if cr, ok := parseConnectPath(r.URL.Path); ok {
			f.proxy.serve(w, r, cr)
			return
		}
	}
	if f.resources != nil {
		if pr, ok := parseProxyPath(r.URL.Path); ok {
			f.resources.serve(w, r, pr)
			return
		}
	}
	if claimsNodeCert(r) {
		r = f.withNodeRequest(r)
	}
	f.api.ServeHTTP(w, r)
}

// claimsNodeCert reports whether the (not yet verified) client certificate
// says system:nodes. It only selects requests for extra parsing; the
// generic handler still authenticates them, so it grants nothing.
func claimsNodeCert(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	return slices.Contains(r.TLS.PeerCertificates[0].Subject.Organization, NodesGroup)
}

// withNodeRequest parses a node's request for the node authorizer: the
// metadata.name of a create's body (the body is kept for the handler) and
// of a list or watch's field selector. Parse failures leave fields empty,
// so the authorizer denies and the handler reports the real error.
func (f *front) withNodeRequest(r *http.Request) *http.Request {
	probe := r.Clone(r.Context())
	info, isResource, err := f.api.parseResourcePath(probe)
	if !isResource || err != nil || info.res == nil {
		return r
	}
	var nr nodeRequest
	switch info.verb {
	case "create":
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil || len(body) > maxBody {
			return r
		}
		if obj, err := f.api.decodeBytes(r, body, info.res); err == nil {
			if m, err := meta.Accessor(obj); err == nil {
				nr.objectName = m.GetName()
			}
		}
	case "list", "watch":
		if sel, err := fields.ParseSelector(probe.URL.Query().Get("fieldSelector")); err == nil {
			nr.fieldSelected, _ = sel.RequiresExactMatch("metadata.name")
		}
	default:
		return r
	}
	return r.WithContext(withNodeRequest(r.Context(), nr))
}
