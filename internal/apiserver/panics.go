package apiserver

import (
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/peapod/peapod/internal/httprecover"
)

// panicMessage is kube-apiserver's answer to a request whose handler
// panicked: the details are in the server's log, not in the response.
const panicMessage = "This request caused apiserver to panic. Look in the logs for details."

// recoverPanics wraps the server's whole handler (the API, the node
// proxies, join and /cacerts), so that no request is left without an
// answer: a panic anywhere below is a 500 Status, an error in the log with
// the verb, resource and user, and a count in
// apiserver_request_panics_total.
func (a *api) recoverPanics(next http.Handler) http.Handler {
	return httprecover.Handler(next, a.answerPanic)
}

func (a *api) answerPanic(w http.ResponseWriter, r *http.Request, p httprecover.Panic, started bool) {
	verb, resource := a.describeRequest(r)
	user := a.requestUser(r)
	a.metrics.panics.WithLabelValues(verb, resource).Inc()
	a.log.Error("request handler panicked", "verb", verb, "resource", resource, "path", r.URL.Path,
		"user", user, "panic", fmt.Sprint(p.Value), "responseStarted", started, "stack", string(p.Stack))
	if started {
		return
	}
	a.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("%s", panicMessage)))
}

// describeRequest names a request's verb and resource as the request
// metrics do: the API verb and resource[/subresource] for resource paths,
// the HTTP method alone for the rest.
func (a *api) describeRequest(r *http.Request) (verb, resource string) {
	info, isResource, err := a.parseResourcePath(r)
	if err != nil || !isResource || info.res == nil {
		return strings.ToUpper(r.Method), ""
	}
	resource = info.res.GVR.Resource
	if info.subresource != "" {
		resource += "/" + info.subresource
	}
	return strings.ToUpper(info.verb), resource
}

// requestUser names the caller for the panic log. The context the handler
// saw is gone with its stack, so the request is authenticated again; if
// that is what panicked, the user is unknown.
func (a *api) requestUser(r *http.Request) (name string) {
	defer func() {
		if recover() != nil {
			name = "<unknown: authentication panicked>"
		}
	}()
	u, ok, err := a.authn.Authenticate(r)
	if err != nil || !ok {
		return "system:anonymous"
	}
	return u.Name
}
