package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/version"
)

// readyzEtcdTimeout bounds /readyz's read of the store.
const readyzEtcdTimeout = 2 * time.Second

// KubernetesVersion is the Kubernetes API version peapod serves.
const KubernetesVersion = "v1.32.0"

// GitVersion is reported by /version.
var gitVersion = KubernetesVersion + "+peapod"

func (a *api) serveNonResource(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/healthz" || p == "/livez" || strings.HasPrefix(p, "/healthz/") || strings.HasPrefix(p, "/livez/"):
		writeText(w, http.StatusOK, "ok")
	case p == "/readyz" || strings.HasPrefix(p, "/readyz/"):
		if !a.ready() {
			writeText(w, http.StatusServiceUnavailable, "[-]bootstrap not finished\nreadyz check failed")
			return
		}
		// As kube-apiserver's etcd check: a server that cannot reach its
		// store answers nothing useful, so clients that balance between
		// servers (agents) must move away from it.
		ctx, cancel := context.WithTimeout(r.Context(), readyzEtcdTimeout)
		_, err := a.store.CurrentRevision(ctx)
		cancel()
		if err != nil {
			writeText(w, http.StatusServiceUnavailable, "[-]etcd failed: "+err.Error()+"\nreadyz check failed")
			return
		}
		writeText(w, http.StatusOK, "ok")
	case p == "/version" || p == "/version/":
		info := version.Info{Major: "1", Minor: "32", GitVersion: gitVersion, GitCommit: "peapod", GitTreeState: "clean",
			BuildDate: "1970-01-01T00:00:00Z", GoVersion: runtime.Version(), Compiler: runtime.Compiler,
			Platform: runtime.GOOS + "/" + runtime.GOARCH}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info)
	case p == "/metrics":
		promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	case strings.HasPrefix(p, "/openapi/"):
		a.openapi.serve(w, r)
	default:
		if !a.serveDiscovery(w, r) {
			writeNoRoute(w)
		}
	}
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write([]byte(s))
}
