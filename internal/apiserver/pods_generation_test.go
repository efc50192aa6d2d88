package apiserver

import (
	"fmt"
	"strings"
	"testing"
)

// TestPodGenerationLifecycle follows Kubernetes' pod generation rules
// through the REST handlers: 1 at creation whatever the client sent, +1
// per spec change only (not metadata, status, binding or a client-set
// generation), +1 when graceful deletion starts and not again when the
// grace period is shortened.
func TestPodGenerationLifecycle(t *testing.T) {
	srv, _ := newTestAPI(t)
	const pod = "/api/v1/namespaces/default/pods/g"
	gen := func(r resp) string { return fmt.Sprint(jfield(r.obj, "metadata", "generation")) }
	step := func(what string, r resp, wantCode int, wantGen string) resp {
		t.Helper()
		if r.code != wantCode {
			t.Fatalf("%s: code %d, want %d: %s", what, r.code, wantCode, r.body)
		}
		if got := gen(do(t, srv, "GET", pod, "", "")); got != wantGen {
			t.Fatalf("%s: generation %s, want %s", what, got, wantGen)
		}
		return r
	}
	merge := "application/merge-patch+json"
	step("create with generation 100", do(t, srv, "POST", "/api/v1/namespaces/default/pods", "application/json",
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"g","generation":100},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`), 201, "1")
	step("label change", do(t, srv, "PATCH", pod, merge, `{"metadata":{"labels":{"a":"b"}}}`), 200, "1")
	step("status change", do(t, srv, "PATCH", pod+"/status", merge, `{"status":{"message":"hi"}}`), 200, "1")
	step("image change", do(t, srv, "PATCH", pod, "application/strategic-merge-patch+json", `{"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}`), 200, "2")
	step("client-set generation", do(t, srv, "PATCH", pod, merge, `{"metadata":{"generation":7}}`), 200, "2")
	step("client-set generation with a spec change", do(t, srv, "PATCH", pod, merge, `{"metadata":{"generation":7},"spec":{"activeDeadlineSeconds":100}}`), 200, "3")
	step("binding", do(t, srv, "POST", pod+"/binding", "application/json",
		`{"apiVersion":"v1","kind":"Binding","metadata":{"name":"g","annotations":{"bound-by":"test"}},"target":{"kind":"Node","name":"n1"}}`), 201, "3")
	got := do(t, srv, "GET", pod, "", "")
	if jfield(got.obj, "spec", "nodeName") != "n1" || jfield(got.obj, "metadata", "annotations", "bound-by") != "test" {
		t.Fatalf("binding not applied: %s", got.body)
	}
	conds, _ := jfield(got.obj, "status", "conditions").([]interface{})
	if len(conds) != 1 || fmt.Sprintf("%v %v %v", conds[0].(map[string]interface{})["type"], conds[0].(map[string]interface{})["status"],
		conds[0].(map[string]interface{})["observedGeneration"]) != "PodScheduled True 3" {
		t.Fatalf("binding did not set PodScheduled=True at generation 3: %v", conds)
	}
	step("graceful delete", do(t, srv, "DELETE", pod+"?gracePeriodSeconds=60", "", ""), 200, "4")
	step("shorter grace period", do(t, srv, "DELETE", pod+"?gracePeriodSeconds=30", "", ""), 200, "4")
}

// TestBindingRefusals: a pod is bound once, never while gated, and only
// when the Binding's UID matches.
func TestBindingRefusals(t *testing.T) {
	srv, _ := newTestAPI(t)
	const pods = "/api/v1/namespaces/default/pods"
	create := func(name, extra string) string {
		r := do(t, srv, "POST", pods, "application/json",
			`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"`+name+`"},"spec":{`+extra+`"containers":[{"name":"c","image":"busybox"}]}}`)
		if r.code != 201 {
			t.Fatalf("create %s: %d %s", name, r.code, r.body)
		}
		return fmt.Sprint(jfield(r.obj, "metadata", "uid"))
	}
	bind := func(name, uid string) resp {
		return do(t, srv, "POST", pods+"/"+name+"/binding", "application/json",
			`{"apiVersion":"v1","kind":"Binding","metadata":{"name":"`+name+`","uid":"`+uid+`"},"target":{"name":"n1"}}`)
	}
	create("gated", `"schedulingGates":[{"name":"example.com/wait"}],`)
	if r := bind("gated", ""); r.code != 409 || !strings.Contains(r.body, "has non-empty .spec.schedulingGates") {
		t.Fatalf("binding a gated pod: %d %s", r.code, r.body)
	}
	uid := create("once", "")
	if r := bind("once", "wrong-uid"); r.code != 409 || !strings.Contains(r.body, "Precondition failed: UID in precondition") {
		t.Fatalf("binding with a wrong UID: %d %s", r.code, r.body)
	}
	if r := bind("once", uid); r.code != 201 {
		t.Fatalf("binding: %d %s", r.code, r.body)
	}
	if r := bind("once", uid); r.code != 409 || !strings.Contains(r.body, `pod once is already assigned to node \"n1\"`) {
		t.Fatalf("binding twice: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", pods+"/missing/binding", "application/json", `{"target":{"name":"n1"}}`); r.code != 404 {
		t.Fatalf("binding a missing pod: %d %s", r.code, r.body)
	}
}

// TestGatedPodCondition: a pod created with gates says SchedulingGated;
// kubectl's STATUS column shows it.
func TestGatedPodCondition(t *testing.T) {
	srv, _ := newTestAPI(t)
	r := do(t, srv, "POST", "/api/v1/namespaces/default/pods", "application/json",
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"gated"},"spec":{"schedulingGates":[{"name":"example.com/wait"}],"containers":[{"name":"c","image":"busybox"}]}}`)
	if r.code != 201 || !strings.Contains(r.body, `"type":"PodScheduled","status":"False"`) || !strings.Contains(r.body, `"reason":"SchedulingGated","message":"Scheduling is blocked due to non-empty scheduling gates"`) {
		t.Fatalf("create gated pod: %d %s", r.code, r.body)
	}
	table := do(t, srv, "GET", "/api/v1/namespaces/default/pods/gated", "", "", "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	if !strings.Contains(table.body, `"SchedulingGated"`) {
		t.Fatalf("table does not show SchedulingGated: %s", table.body)
	}
}

// TestUnknownPathsAnswer404 checks both kinds of 404 Kubernetes gives:
// plain text for groups and versions it does not serve, a NotFound
// Status without details for unknown resources and paths of served ones.
func TestUnknownPathsAnswer404(t *testing.T) {
	srv, _ := newTestAPI(t)
	const plain = "404 page not found\n"
	const status = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}`
	tests := []struct {
		method, path, want string
	}{
		{"POST", "/apis/example.peapod.io/v1/namespaces/default/widgets", plain},
		{"GET", "/apis/example.peapod.io/v1/namespaces/default/widgets", plain},
		{"GET", "/apis/example.peapod.io/v1/namespaces/default/widgets/x", plain},
		{"DELETE", "/apis/example.peapod.io/v1/namespaces/default/widgets/x", plain},
		{"GET", "/apis/example.peapod.io/v1/widgets", plain},
		{"GET", "/apis/example.peapod.io/v1", plain},
		{"GET", "/apis/example.peapod.io", plain},
		{"GET", "/apis/apps/v1beta1/deployments", plain},
		{"GET", "/apis/apps/v1beta1", plain},
		{"GET", "/api/v2/pods", plain},
		{"GET", "/api/v2", plain},
		{"GET", "/no/such/path", plain},
		{"GET", "/api/v1/foos", status},
		{"POST", "/api/v1/namespaces/default/foos", status},
		{"PUT", "/api/v1/namespaces/default/foos/x", status},
		{"GET", "/apis/apps/v1/foos", status},
		{"GET", "/apis/apps/v1/namespaces/default/foos/x", status},
		{"GET", "/api/v1/pods/x", status},
		{"GET", "/api/v1/namespaces/default/pods/x/foo", status},
		{"PUT", "/api/v1/namespaces/default/pods/x/foo", status},
		{"POST", "/api/v1/namespaces/default/pods/x/foo", status},
		{"GET", "/api/v1/namespaces/default/nodes", status},
		{"GET", "/api/v1/namespaces/default/pods/x/status/more", status},
	}
	for _, tc := range tests {
		r := do(t, srv, tc.method, tc.path, "application/json", "{}")
		if r.code != 404 || strings.TrimSpace(r.body) != strings.TrimSpace(tc.want) {
			t.Errorf("%s %s: %d %q, want 404 %q", tc.method, tc.path, r.code, r.body, tc.want)
		}
	}
	// A served path with the wrong verb stays 405.
	if r := do(t, srv, "GET", "/api/v1/namespaces/default/pods/x/binding", "", ""); r.code != 405 {
		t.Errorf("GET pods/x/binding: %d %s, want 405", r.code, r.body)
	}
}
