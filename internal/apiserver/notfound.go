package apiserver

import (
	"errors"
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Kubernetes answers a path it does not serve in one of two ways, and
// clients (kubectl's "the server doesn't have a resource type", discovery
// fallbacks) rely on both being a 404:
//
//   - a group or version that is not served at all (/apis/batch/v1/...,
//     /api/v2, an unknown non-resource path) reaches the API server's last
//     handler, which writes Go's plain-text "404 page not found";
//   - a served group version without that resource, subresource or path
//     shape (/api/v1/foos, /api/v1/pods/x, pods/x/foo) is go-restful's
//     missing route, a NotFound Status saying "the server could not find
//     the requested resource" with empty details.

// errNoRoute is the first kind: writeError answers it in plain text.
var errNoRoute = errors.New("404 page not found")

// errNoSuchPath returns the second kind.
func errNoSuchPath() error {
	return apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "", 0, false)
}

// writeNoRoute writes what Go's http.NotFound writes.
func writeNoRoute(w http.ResponseWriter) {
	writeText(w, http.StatusNotFound, errNoRoute.Error()+"\n")
}

// servesGroupVersion reports whether any resource is served under gv.
func (a *api) servesGroupVersion(gv schema.GroupVersion) bool {
	return slices.Contains(a.groups, gv)
}

// subresourceError is the answer to a subresource request the handler of
// verb does not serve: 405 for a subresource the resource has (for
// another verb), the missing-route 404 for one it does not have.
func subresourceError(info requestInfo, verb string) error {
	if slices.Contains(subresourceNames(info.res), info.subresource) {
		return apierrors.NewMethodNotSupported(info.res.GVR.GroupResource(), verb)
	}
	return errNoSuchPath()
}
