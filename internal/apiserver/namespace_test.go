package apiserver

import (
	"strings"
	"testing"
	"time"
)

func TestNamespaceDeletion(t *testing.T) {
	srv, _ := newTestAPI(t)
	r := do(t, srv, "POST", "/api/v1/namespaces", "application/json", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"doomed"}}`)
	if r.code != 201 || !strings.Contains(r.body, `"finalizers":["kubernetes"]`) {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	pod := strings.Replace(podJSON, `"name":"p1"`, `"name":"p1","finalizers":["example.com/hold"]`, 1)
	if r := do(t, srv, "POST", "/api/v1/namespaces/doomed/pods", "application/json", pod); r.code != 201 {
		t.Fatalf("pod: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", "/api/v1/namespaces/doomed/services", "application/yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}], clusterIP: 10.96.0.50}\n"); r.code != 201 {
		t.Fatalf("service: %d %s", r.code, r.body)
	}
	r = do(t, srv, "DELETE", "/api/v1/namespaces/doomed", "", "")
	if r.code != 200 || jfield(r.obj, "status", "phase") != "Terminating" || jfield(r.obj, "metadata", "deletionTimestamp") == nil {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	// New content is refused while terminating, as NamespaceLifecycle does.
	r = do(t, srv, "POST", "/api/v1/namespaces/doomed/configmaps", "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`)
	if r.code != 403 || !strings.Contains(r.body, "because it is being terminated") {
		t.Fatalf("create in terminating namespace: %d %s", r.code, r.body)
	}
	waitFor(t, func() bool {
		r := do(t, srv, "GET", "/api/v1/namespaces/doomed/pods/p1", "", "")
		return r.code == 200 && jfield(r.obj, "metadata", "deletionTimestamp") != nil
	})
	// The pod's finalizer holds the namespace; the service and the seeded
	// objects are gone.
	for _, p := range []string{"services/s", "serviceaccounts/default", "configmaps/kube-root-ca.crt"} {
		waitFor(t, func() bool { return do(t, srv, "GET", "/api/v1/namespaces/doomed/"+p, "", "").code == 404 })
	}
	if r := do(t, srv, "GET", "/api/v1/namespaces/doomed", "", ""); r.code != 200 {
		t.Fatalf("namespace went before its content: %d", r.code)
	}
	if r := do(t, srv, "PATCH", "/api/v1/namespaces/doomed/pods/p1", "application/merge-patch+json", `{"metadata":{"finalizers":null}}`); r.code != 200 {
		t.Fatalf("drop finalizer: %d %s", r.code, r.body)
	}
	waitFor(t, func() bool { return do(t, srv, "GET", "/api/v1/namespaces/doomed", "", "").code == 404 })
	// The service's IP was released with it.
	if r := do(t, srv, "POST", "/api/v1/namespaces/default/services", "application/yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}], clusterIP: 10.96.0.50}\n"); r.code != 201 {
		t.Fatalf("IP not released: %d %s", r.code, r.body)
	}
	// A namespace can be created again under the same name.
	if r := do(t, srv, "POST", "/api/v1/namespaces", "application/json", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"doomed"}}`); r.code != 201 {
		t.Fatalf("recreate: %d %s", r.code, r.body)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
