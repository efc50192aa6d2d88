package apiserver

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const dsJSON = `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"agent"},
"spec":{"selector":{"matchLabels":{"app":"agent"}},"template":{"metadata":{"labels":{"app":"agent"}},
"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}`

// TestDaemonSetDefaultsAndTemplateGeneration: a DaemonSet is defaulted as
// apps/v1 does (RollingUpdate 1/0, revisionHistoryLimit 10), carries its
// template generation in the annotation Kubernetes uses, bumped by a
// template change only, and its status is written through /status.
func TestDaemonSetDefaultsAndTemplateGeneration(t *testing.T) {
	srv, _ := newTestAPI(t)
	const base = "/apis/apps/v1/namespaces/default/daemonsets"
	r := do(t, srv, "POST", base, "application/json", dsJSON)
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	for _, c := range []struct {
		path []string
		want interface{}
	}{
		{[]string{"spec", "updateStrategy", "type"}, "RollingUpdate"},
		{[]string{"spec", "updateStrategy", "rollingUpdate", "maxUnavailable"}, float64(1)},
		{[]string{"spec", "updateStrategy", "rollingUpdate", "maxSurge"}, float64(0)},
		{[]string{"spec", "revisionHistoryLimit"}, float64(10)},
		{[]string{"spec", "template", "spec", "restartPolicy"}, "Always"},
		{[]string{"metadata", "generation"}, float64(1)},
		{[]string{"metadata", "annotations", "deprecated.daemonset.template.generation"}, "1"},
	} {
		if got := jfield(r.obj, c.path...); got != c.want {
			t.Errorf("%v = %v, want %v", c.path, got, c.want)
		}
	}
	// A change outside the template bumps generation, not the template's.
	r = do(t, srv, "PATCH", base+"/agent", "application/merge-patch+json", `{"spec":{"minReadySeconds":3}}`)
	if r.code != 200 || jfield(r.obj, "metadata", "generation") != float64(2) ||
		jfield(r.obj, "metadata", "annotations", "deprecated.daemonset.template.generation") != "1" {
		t.Fatalf("minReadySeconds: %d %s", r.code, r.body)
	}
	// A template change bumps both; a client cannot set the annotation.
	r = do(t, srv, "PATCH", base+"/agent", "application/strategic-merge-patch+json",
		`{"metadata":{"annotations":{"deprecated.daemonset.template.generation":"9"}},"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:2"}]}}}}`)
	if r.code != 200 || jfield(r.obj, "metadata", "generation") != float64(3) ||
		jfield(r.obj, "metadata", "annotations", "deprecated.daemonset.template.generation") != "2" {
		t.Fatalf("template change: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", base+"/agent/status", "application/merge-patch+json", `{"status":{"desiredNumberScheduled":3,"numberReady":2,"observedGeneration":3}}`)
	if r.code != 200 || jfield(r.obj, "status", "numberReady") != float64(2) || jfield(r.obj, "metadata", "generation") != float64(3) {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", base+"/agent", "application/merge-patch+json", `{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}`)
	if r.code != 422 || !strings.Contains(r.body, "spec.selector") || !strings.Contains(r.body, "field is immutable") {
		t.Fatalf("selector change: %d %s", r.code, r.body)
	}
}

func TestDaemonSetValidation(t *testing.T) {
	srv, _ := newTestAPI(t)
	const base = "/apis/apps/v1/namespaces/default/daemonsets"
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"selector does not match", `"matchLabels":{"app":"agent"}`, `"matchLabels":{"app":"x"}`, []string{"spec.template.metadata.labels", "`selector` does not match template `labels`"}},
		{"surge and unavailable", `"selector"`, `"updateStrategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":1}},"selector"`,
			[]string{"spec.updateStrategy.rollingUpdate.maxSurge", "may not be set when maxUnavailable is non-zero"}},
		{"neither surge nor unavailable", `"selector"`, `"updateStrategy":{"rollingUpdate":{"maxSurge":0,"maxUnavailable":"0%"}},"selector"`,
			[]string{"spec.updateStrategy.rollingUpdate.maxUnavailable", "cannot be 0 when maxSurge is 0"}},
		{"bad strategy", `"selector"`, `"updateStrategy":{"type":"Recreate"},"selector"`, []string{"spec.updateStrategy.type", "Unsupported value"}},
		{"over 100%", `"selector"`, `"updateStrategy":{"rollingUpdate":{"maxUnavailable":"150%"}},"selector"`, []string{"spec.updateStrategy.rollingUpdate.maxUnavailable", "must not be greater than 100%"}},
		{"negative minReadySeconds", `"selector"`, `"minReadySeconds":-1,"selector"`, []string{"spec.minReadySeconds"}},
		{"restartPolicy", `"containers"`, `"restartPolicy":"OnFailure","containers"`, []string{"spec.template.spec.restartPolicy"}},
		{"empty selector", `"matchLabels":{"app":"agent"}`, `"matchLabels":{}`, []string{"spec.selector", "empty selector is invalid for daemonset"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(dsJSON, tc.from, tc.to, 1)
			r := do(t, srv, "POST", base, "application/json", body)
			if r.code != 422 {
				t.Fatalf("%d %s", r.code, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("422 lacks %q: %s", w, r.body)
				}
			}
		})
	}
	// maxSurge alone (maxUnavailable 0) is valid.
	body := strings.Replace(dsJSON, `"selector"`, `"updateStrategy":{"rollingUpdate":{"maxSurge":"50%","maxUnavailable":0}},"selector"`, 1)
	if r := do(t, srv, "POST", base, "application/json", body); r.code != 201 {
		t.Fatalf("surge only: %d %s", r.code, r.body)
	}
}

func TestControllerRevisionServed(t *testing.T) {
	srv, _ := newTestAPI(t)
	const base = "/apis/apps/v1/namespaces/default/controllerrevisions"
	if r := do(t, srv, "POST", base, "application/json", `{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"r"},"revision":1}`); r.code != 422 || !strings.Contains(r.body, "data") {
		t.Fatalf("without data: %d %s", r.code, r.body)
	}
	r := do(t, srv, "POST", base, "application/json", `{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"r"},"revision":1,"data":{"spec":{"template":{"$patch":"replace"}}}}`)
	if r.code != 201 || jfield(r.obj, "data", "spec", "template", "$patch") != "replace" {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", base+"/r", "application/merge-patch+json", `{"data":{"x":1}}`); r.code != 422 || !strings.Contains(r.body, "field is immutable") {
		t.Fatalf("data change: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", base+"/r", "application/merge-patch+json", `{"revision":2}`); r.code != 200 || jfield(r.obj, "revision") != float64(2) {
		t.Fatalf("revision change: %d %s", r.code, r.body)
	}
}

func TestDaemonSetTables(t *testing.T) {
	now := time.Unix(1000, 0)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", CreationTimestamp: metav1.Unix(1000-300, 0)},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{NodeSelector: map[string]string{"disk": "ssd"},
				Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}},
		},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 1, NumberAvailable: 2},
	}
	var head []string
	for _, c := range daemonSetTable.Columns() {
		if c.Priority == 0 {
			head = append(head, strings.ToUpper(c.Name))
		}
	}
	if got := strings.Join(head, " "); got != "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE" {
		t.Errorf("columns %s", got)
	}
	if got := fmt.Sprint(daemonSetTable.Cells(ds, now)); got != "[agent 3 3 2 1 2 disk=ssd 5m c busybox app=agent]" {
		t.Errorf("cells %s", got)
	}
	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "agent-abc", CreationTimestamp: metav1.Unix(1000-60, 0),
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", Controller: ptr.To(true)}}}, Revision: 4}
	if got := fmt.Sprint(controllerRevisionTable.Cells(cr, now)); got != "[agent-abc daemonset.apps/agent 4 60s]" {
		t.Errorf("revision cells %s", got)
	}
}
