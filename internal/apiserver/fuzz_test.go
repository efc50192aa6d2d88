package apiserver

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/storage"
)

// fuzzAPI is an API over the in-memory store, bootstrapped once per fuzz
// target: the inputs, not the set-up, are what is fuzzed.
func fuzzAPI(f *testing.F) *api {
	mem := storage.NewMemory()
	f.Cleanup(func() { mem.Close() })
	a := newAPI(apiOptions{Store: mem, BookmarkInterval: time.Minute,
		Authn: NewTokenAuthenticator(map[string]User{adminToken: {Name: "admin", Groups: []string{"system:masters"}}})})
	if err := a.bootstrap(context.Background()); err != nil {
		f.Fatal(err)
	}
	return a
}

// fuzzTargets are the collections the fuzzers write to, with one object
// each that the patch fuzzer patches.
var fuzzTargets = []struct{ collection, name, object string }{
	{"/api/v1/namespaces/default/pods", "p", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x","ports":[{"containerPort":80,"name":"http"}],"env":[{"name":"A","value":"1"}]}]}}`},
	{"/api/v1/namespaces/default/configmaps", "cm", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"k":"v"}}`},
	{"/api/v1/namespaces/default/services", "svc", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},"spec":{"selector":{"a":"b"},"ports":[{"port":80,"targetPort":"http"}]}}`},
	{"/apis/apps/v1/namespaces/default/deployments", "d", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`},
	{"/api/v1/namespaces", "ns1", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns1"}}`},
}

var fuzzBodyTypes = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}

var fuzzPatchTypes = []string{"application/json-patch+json", "application/merge-patch+json",
	"application/strategic-merge-patch+json", "application/apply-patch+yaml"}

// serveFuzz sends one request to a and fails on a 5xx: malformed input is
// the client's error, answered with a 4xx naming the cause.
func serveFuzz(t *testing.T, a *api, method, path, ct string, body []byte) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", ct)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s (%s) %q: %d %s", method, path, ct, body, rec.Code, rec.Body.String())
	}
}

// FuzzCreate: any body, in any of the API's encodings, posted to any of
// several kinds, is answered without a 5xx or a panic.
func FuzzCreate(f *testing.F) {
	a := fuzzAPI(f)
	for i, tg := range fuzzTargets {
		f.Add([]byte(tg.object), uint8(0), uint8(i))
	}
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata: {a: b}\n"), uint8(1), uint8(1))
	f.Add([]byte("k8s\x00\n\x02v1\x12\tConfigMap\x12\x00"), uint8(2), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, ct, target uint8) {
		tg := fuzzTargets[int(target)%len(fuzzTargets)]
		serveFuzz(t, a, http.MethodPost, tg.collection, fuzzBodyTypes[int(ct)%len(fuzzBodyTypes)], body)
	})
}

// FuzzPatch: any patch of any type, sent to an existing object of several
// kinds, is answered without a 5xx or a panic.
func FuzzPatch(f *testing.F) {
	a := fuzzAPI(f)
	for _, tg := range fuzzTargets {
		req := httptest.NewRequest(http.MethodPost, tg.collection, bytes.NewReader([]byte(tg.object)))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			f.Fatalf("create %s: %d %s", tg.name, rec.Code, rec.Body.String())
		}
	}
	f.Add([]byte(`[{"op":"replace","path":"/metadata/labels/a","value":"c"}]`), uint8(0), uint8(0))
	f.Add([]byte(`{"metadata":{"labels":{"a":null}}}`), uint8(1), uint8(1))
	f.Add([]byte(`{"spec":{"containers":[{"name":"c","ports":[{"containerPort":{}}]}]}}`), uint8(2), uint8(0))
	f.Add([]byte(`{"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"name":"c","image":"y"}]}}`), uint8(2), uint8(0))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  k: w\n"), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, patch []byte, pt, target uint8) {
		tg := fuzzTargets[int(target)%len(fuzzTargets)]
		path := tg.collection + "/" + tg.name
		ct := fuzzPatchTypes[int(pt)%len(fuzzPatchTypes)]
		if ct == "application/apply-patch+yaml" {
			path += "?fieldManager=fuzz&force=true"
		}
		serveFuzz(t, a, http.MethodPatch, path, ct, patch)
	})
}

// FuzzSelectors: any label and field selector in a list is answered
// without a 5xx or a panic.
func FuzzSelectors(f *testing.F) {
	a := fuzzAPI(f)
	f.Add("a=b,c!=d,e in (f,g),!h", "metadata.name=x,status.phase!=Running")
	f.Add("a", "spec.nodeName=")
	f.Fuzz(func(t *testing.T, label, field string) {
		q := "/api/v1/namespaces/default/pods?labelSelector=" + url.QueryEscape(label) + "&fieldSelector=" + url.QueryEscape(field)
		serveFuzz(t, a, http.MethodGet, q, "", nil)
	})
}
