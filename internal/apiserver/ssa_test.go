package apiserver

import (
	"strings"
	"testing"
)

func TestServerSideApply(t *testing.T) {
	srv, _ := newTestAPI(t)
	const cm = "/api/v1/namespaces/default/configmaps/cfg"
	const ct = "application/apply-patch+yaml"
	r := do(t, srv, "PATCH", cm+"?fieldManager=alice", ct, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {x: '1', y: '2'}\n")
	if r.code != 201 || !strings.Contains(r.body, `"manager":"alice"`) || !strings.Contains(r.body, `"operation":"Apply"`) {
		t.Fatalf("apply create: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", cm, ct, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"); r.code != 422 || !strings.Contains(r.body, "fieldManager") {
		t.Fatalf("apply without manager: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", cm+"?fieldManager=bob", ct, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {x: '9'}\n")
	if r.code != 409 || !strings.Contains(r.body, "alice") || !strings.Contains(r.body, ".data.x") {
		t.Fatalf("conflicting apply: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", cm+"?fieldManager=bob&force=true", ct, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {x: '9'}\n")
	if r.code != 200 || jfield(r.obj, "data", "x") != "9" {
		t.Fatalf("forced apply: %d %s", r.code, r.body)
	}
	// alice stops applying y: it is pruned; x now belongs to bob and stays.
	r = do(t, srv, "PATCH", cm+"?fieldManager=alice", ct, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, labels: {a: b}}\n")
	if r.code != 200 || jfield(r.obj, "data", "y") != nil || jfield(r.obj, "data", "x") != "9" || jfield(r.obj, "metadata", "labels", "a") != "b" {
		t.Fatalf("prune: %d %s", r.code, r.body)
	}
	// A plain write to an applied object is tracked under its manager.
	r = do(t, srv, "PATCH", cm+"?fieldManager=editor", "application/merge-patch+json", `{"data":{"z":"3"}}`)
	if r.code != 200 || !strings.Contains(r.body, `"manager":"editor"`) || !strings.Contains(r.body, `"operation":"Update"`) {
		t.Fatalf("tracked update: %d %s", r.code, r.body)
	}
	// Typed kinds: a Deployment is created, defaulted and changed by apply.
	const dep = "/apis/apps/v1/namespaces/default/deployments/web"
	y := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: IMG}]}\n"
	r = do(t, srv, "PATCH", dep+"?fieldManager=kubectl", ct, strings.Replace(y, "IMG", "nginx:1.25", 1))
	if r.code != 201 || jfield(r.obj, "spec", "replicas") != float64(1) || jfield(r.obj, "spec", "template", "spec", "restartPolicy") != "Always" {
		t.Fatalf("apply deployment: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", dep+"?fieldManager=kubectl", ct, strings.Replace(y, "IMG", "nginx:1.26", 1))
	if r.code != 200 || !strings.Contains(r.body, "nginx:1.26") || jfield(r.obj, "metadata", "generation") != float64(2) {
		t.Fatalf("re-apply deployment: %d %s", r.code, r.body)
	}
	rv := jfield(r.obj, "metadata", "resourceVersion")
	r = do(t, srv, "PATCH", dep+"?fieldManager=kubectl", ct, strings.Replace(y, "IMG", "nginx:1.26", 1))
	if r.code != 200 || jfield(r.obj, "metadata", "resourceVersion") != rv {
		t.Fatalf("no-op apply changed the object: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", dep+"?fieldManager=kubectl", ct, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n"); r.code != 400 {
		t.Fatalf("wrong kind: %d %s", r.code, r.body)
	}
}
