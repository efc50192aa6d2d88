package apiserver

import (
	"strings"
	"testing"
)

func TestEventsBothAPIs(t *testing.T) {
	srv, _ := newTestAPI(t)
	r := do(t, srv, "POST", "/api/v1/namespaces/default/events", "application/json",
		`{"apiVersion":"v1","kind":"Event","metadata":{"name":"e1"},"involvedObject":{"kind":"Pod","name":"web","namespace":"default"},
"reason":"Scheduled","message":"Successfully assigned default/web to node1","type":"Normal","source":{"component":"default-scheduler"},"count":1}`)
	if r.code != 201 {
		t.Fatalf("core create: %d %s", r.code, r.body)
	}
	const v1 = "/apis/events.k8s.io/v1/namespaces/default/events"
	r = do(t, srv, "GET", v1+"/e1", "", "")
	if r.code != 200 || r.obj["apiVersion"] != "events.k8s.io/v1" || r.obj["note"] != "Successfully assigned default/web to node1" ||
		jfield(r.obj, "regarding", "name") != "web" || jfield(r.obj, "deprecatedSource", "component") != "default-scheduler" || r.obj["deprecatedCount"] != float64(1) {
		t.Fatalf("v1 get: %d %s", r.code, r.body)
	}
	// events.k8s.io validation is the strict one.
	r = do(t, srv, "POST", v1, "application/json", `{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"bad"},"type":"Odd"}`)
	for _, want := range []string{"eventTime", "reportingController", "reportingInstance", "action", "reason", "type"} {
		if r.code != 422 || !strings.Contains(r.body, want) {
			t.Errorf("v1 422 lacks %s: %d %s", want, r.code, r.body)
		}
	}
	r = do(t, srv, "POST", v1, "application/json", `{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e2"},
"eventTime":"2024-01-01T00:00:00.000000Z","reportingController":"peapod.io/agent","reportingInstance":"node1","action":"Pulling",
"reason":"Pulling","note":"Pulling image busybox","type":"Normal","regarding":{"kind":"Pod","name":"web","namespace":"default"},
"series":{"count":3,"lastObservedTime":"2024-01-01T00:01:00.000000Z"}}`)
	if r.code != 201 {
		t.Fatalf("v1 create: %d %s", r.code, r.body)
	}
	r = do(t, srv, "GET", "/api/v1/namespaces/default/events/e2", "", "")
	if r.code != 200 || r.obj["message"] != "Pulling image busybox" || r.obj["reportingComponent"] != "peapod.io/agent" ||
		jfield(r.obj, "involvedObject", "name") != "web" || jfield(r.obj, "series", "count") != float64(3) {
		t.Fatalf("core get of v1 event: %d %s", r.code, r.body)
	}
	r = do(t, srv, "GET", v1+"?fieldSelector=regarding.name%3Dweb", "", "")
	if r.code != 200 || r.obj["kind"] != "EventList" || len(r.obj["items"].([]interface{})) != 2 {
		t.Fatalf("v1 list: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", v1+"/e1", "application/merge-patch+json", `{"note":"patched"}`)
	if r.code != 200 {
		t.Fatalf("v1 patch: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", "/api/v1/namespaces/default/events/e1", "", ""); r.obj["message"] != "patched" || r.obj["apiVersion"] != "v1" {
		t.Fatalf("core after v1 patch: %s", r.body)
	}
	r = do(t, srv, "GET", v1, "", "", "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	for _, want := range []string{`"Last Seen"`, `"pod/web"`, `"Pulling image busybox"`, `"Scheduled"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("table lacks %s: %s", want, r.body)
		}
	}
}
