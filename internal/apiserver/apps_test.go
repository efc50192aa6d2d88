package apiserver

import (
	"strings"
	"testing"
)

const deployJSON = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
"spec":{"containers":[{"name":"nginx","image":"nginx:1.25"}]}}}}`

func TestDeploymentDefaultsScaleStatus(t *testing.T) {
	srv, _ := newTestAPI(t)
	const base = "/apis/apps/v1/namespaces/default/deployments"
	r := do(t, srv, "POST", base, "application/json", deployJSON)
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	for _, c := range []struct {
		path []string
		want interface{}
	}{
		{[]string{"spec", "replicas"}, float64(1)},
		{[]string{"spec", "revisionHistoryLimit"}, float64(10)},
		{[]string{"spec", "progressDeadlineSeconds"}, float64(600)},
		{[]string{"spec", "strategy", "type"}, "RollingUpdate"},
		{[]string{"spec", "strategy", "rollingUpdate", "maxSurge"}, "25%"},
		{[]string{"spec", "strategy", "rollingUpdate", "maxUnavailable"}, "25%"},
		{[]string{"spec", "template", "spec", "restartPolicy"}, "Always"},
		{[]string{"spec", "template", "spec", "dnsPolicy"}, "ClusterFirst"},
		{[]string{"spec", "template", "spec", "tolerations"}, nil},
		{[]string{"spec", "template", "spec", "serviceAccountName"}, nil},
		{[]string{"metadata", "generation"}, float64(1)},
	} {
		if got := jfield(r.obj, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	if !strings.Contains(r.body, `"imagePullPolicy":"IfNotPresent"`) {
		t.Errorf("template container not defaulted: %s", r.body)
	}

	// scale: GET, merge PATCH (kubectl scale) and PUT with a stale RV.
	r = do(t, srv, "GET", base+"/web/scale", "", "")
	if r.code != 200 || r.obj["kind"] != "Scale" || r.obj["apiVersion"] != "autoscaling/v1" ||
		jfield(r.obj, "spec", "replicas") != float64(1) || jfield(r.obj, "status", "selector") != "app=web" {
		t.Fatalf("get scale: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", base+"/web/scale", "application/merge-patch+json", `{"spec":{"replicas":3}}`)
	if r.code != 200 || jfield(r.obj, "spec", "replicas") != float64(3) {
		t.Fatalf("patch scale: %d %s", r.code, r.body)
	}
	r = do(t, srv, "GET", base+"/web", "", "")
	if jfield(r.obj, "spec", "replicas") != float64(3) || jfield(r.obj, "metadata", "generation") != float64(2) {
		t.Fatalf("after scale: %s", r.body)
	}
	if r := do(t, srv, "PUT", base+"/web/scale", "application/json",
		`{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"web","resourceVersion":"1"},"spec":{"replicas":2}}`); r.code != 409 {
		t.Fatalf("stale scale put: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PUT", base+"/web/scale", "application/json",
		`{"kind":"Scale","apiVersion":"autoscaling/v1","metadata":{"name":"web"},"spec":{"replicas":-1}}`); r.code != 422 || !strings.Contains(r.body, "spec.replicas") {
		t.Fatalf("negative scale: %d %s", r.code, r.body)
	}

	// status: observedGeneration is written through /status only and does
	// not bump generation; the main resource ignores status.
	r = do(t, srv, "PATCH", base+"/web/status", "application/merge-patch+json", `{"status":{"observedGeneration":2,"replicas":3,"readyReplicas":2,"updatedReplicas":3,"availableReplicas":2}}`)
	if r.code != 200 || jfield(r.obj, "status", "observedGeneration") != float64(2) || jfield(r.obj, "metadata", "generation") != float64(2) {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", base+"/web", "application/merge-patch+json", `{"status":{"replicas":9}}`)
	if r.code != 200 || jfield(r.obj, "status", "replicas") != float64(3) {
		t.Fatalf("main resource changed status: %d %s", r.code, r.body)
	}
	// strategic merge patch of the template (kubectl set image) bumps generation.
	r = do(t, srv, "PATCH", base+"/web", "application/strategic-merge-patch+json",
		`{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}}`)
	if r.code != 200 || jfield(r.obj, "metadata", "generation") != float64(3) || !strings.Contains(r.body, "nginx:1.26") {
		t.Fatalf("set image: %d %s", r.code, r.body)
	}
	// the selector is immutable
	r = do(t, srv, "PATCH", base+"/web", "application/merge-patch+json", `{"spec":{"selector":{"matchLabels":{"app":"web","x":"y"}},"template":{"metadata":{"labels":{"x":"y"}}}}}`)
	if r.code != 422 || !strings.Contains(r.body, "field is immutable") {
		t.Fatalf("selector change: %d %s", r.code, r.body)
	}
	// table
	r = do(t, srv, "GET", base, "", "", "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	for _, col := range []string{`"Ready"`, `"Up-to-date"`, `"Available"`, `"Containers"`, `"Images"`, `"Selector"`, `"2/3"`, `"app=web"`} {
		if !strings.Contains(r.body, col) {
			t.Errorf("table lacks %s: %s", col, r.body)
		}
	}
}

func TestWorkloadValidation(t *testing.T) {
	srv, _ := newTestAPI(t)
	bad := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bad"},
"spec":{"replicas":-1,"selector":{"matchLabels":{"app":"other"}},"strategy":{"type":"Recreate","rollingUpdate":{}},
"template":{"metadata":{"labels":{"app":"web"}},"spec":{"restartPolicy":"Never","containers":[{"name":"c"},{"name":"c","image":"x"}]}}}}`
	r := do(t, srv, "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", bad)
	if r.code != 422 {
		t.Fatalf("invalid deployment: %d %s", r.code, r.body)
	}
	for _, want := range []string{"spec.replicas", "spec.template.metadata.labels", "spec.strategy.rollingUpdate",
		"spec.template.spec.restartPolicy", "spec.template.spec.containers[0].image", "spec.template.spec.containers[1].name"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("422 lacks %s: %s", want, r.body)
		}
	}
	if r := do(t, srv, "POST", "/apis/apps/v1/namespaces/default/replicasets", "application/json",
		`{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"rs"},"spec":{"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`); r.code != 422 || !strings.Contains(r.body, "spec.selector: Required") {
		t.Fatalf("rs without selector: %d %s", r.code, r.body)
	}
	sts := `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},"spec":{"serviceName":"db","selector":{"matchLabels":{"app":"db"}},
"template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"c","image":"x"}]}}VCT}}`
	r = do(t, srv, "POST", "/apis/apps/v1/namespaces/default/statefulsets", "application/json",
		strings.Replace(sts, "VCT", `,"volumeClaimTemplates":[{"metadata":{"name":"data"}}]`, 1))
	if r.code != 422 || !strings.Contains(r.body, "spec.volumeClaimTemplates[0].spec.accessModes: Required value") ||
		!strings.Contains(r.body, "spec.volumeClaimTemplates[0].spec.resources[storage]: Required value") {
		t.Fatalf("sts with an incomplete volumeClaimTemplate: %d %s", r.code, r.body)
	}
	r = do(t, srv, "POST", "/apis/apps/v1/namespaces/default/statefulsets", "application/json", strings.Replace(sts, "VCT", "", 1))
	if r.code != 201 || jfield(r.obj, "spec", "podManagementPolicy") != "OrderedReady" || jfield(r.obj, "spec", "updateStrategy", "type") != "RollingUpdate" ||
		jfield(r.obj, "spec", "updateStrategy", "rollingUpdate", "partition") != float64(0) || jfield(r.obj, "spec", "revisionHistoryLimit") != float64(10) {
		t.Fatalf("sts defaults: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", "/apis/apps/v1/namespaces/default/statefulsets/db", "application/merge-patch+json", `{"spec":{"serviceName":"other"}}`)
	if r.code != 422 || !strings.Contains(r.body, "updates to statefulset spec for fields other than") {
		t.Fatalf("sts immutable: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", "/apis/apps/v1/namespaces/default/statefulsets/db/scale", "application/merge-patch+json", `{"spec":{"replicas":4}}`); r.code != 200 {
		t.Fatalf("sts scale: %d %s", r.code, r.body)
	}
	// ReplicationControllers take selector and labels from the template.
	r = do(t, srv, "POST", "/api/v1/namespaces/default/replicationcontrollers", "application/json",
		`{"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"rc"},"spec":{"template":{"metadata":{"labels":{"app":"rc"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`)
	if r.code != 201 || jfield(r.obj, "spec", "selector", "app") != "rc" || jfield(r.obj, "metadata", "labels", "app") != "rc" || jfield(r.obj, "spec", "replicas") != float64(1) {
		t.Fatalf("rc defaults: %d %s", r.code, r.body)
	}
	r = do(t, srv, "GET", "/api/v1/namespaces/default/replicationcontrollers/rc/scale", "", "")
	if r.code != 200 || jfield(r.obj, "status", "selector") != "app=rc" {
		t.Fatalf("rc scale: %d %s", r.code, r.body)
	}
}

func TestDeleteCollectionReturnsList(t *testing.T) {
	srv, _ := newTestAPI(t)
	const pods = "/api/v1/namespaces/default/pods"
	for _, n := range []string{"a", "b", "c"} {
		if r := do(t, srv, "POST", pods, "application/json", strings.Replace(podJSON, `"p1"`, `"`+n+`"`, 1)); r.code != 201 {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
	}
	r := do(t, srv, "DELETE", pods+"?labelSelector=app%3Da", "", "")
	if r.code != 200 || r.obj["kind"] != "PodList" || len(r.obj["items"].([]interface{})) != 3 {
		t.Fatalf("deletecollection: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods, "", ""); len(r.obj["items"].([]interface{})) != 0 {
		t.Fatalf("pods left: %s", r.body)
	}
}
