package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/peapod/peapod/internal/storage"
	"github.com/peapod/peapod/internal/testutil"
)

// panickingStore panics on List, as a bug below a handler would.
type panickingStore struct{ storage.Store }

func (panickingStore) List(context.Context, string, storage.ListOptions) (storage.ListResult, error) {
	panic("list exploded")
}

func TestPanickingHandlerIsAnswered(t *testing.T) {
	mem := storage.NewMemory()
	defer mem.Close()
	var logs testutil.SyncBuffer
	a := newAPI(apiOptions{Store: mem, BookmarkInterval: time.Minute,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Authn:  NewTokenAuthenticator(map[string]User{adminToken: {Name: "admin", Groups: []string{"system:masters"}}})})
	if err := a.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.store = panickingStore{mem}
	srv := httptest.NewServer(a.recoverPanics(a))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/namespaces/default/pods", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("a panicking handler left the request unanswered: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d (%s), want 500", res.StatusCode, body)
	}
	var st struct {
		Kind, Reason, Message string
		Code                  int
	}
	if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" || st.Code != 500 || !strings.Contains(st.Message, panicMessage) {
		t.Fatalf("answer is not kube-apiserver's panic Status: %s (%v)", body, err)
	}
	if got := promtest.ToFloat64(a.metrics.panics.WithLabelValues("LIST", "pods")); got != 1 {
		t.Fatalf("apiserver_request_panics_total{LIST,pods} = %v, want 1", got)
	}
	if got := promtest.ToFloat64(a.metrics.requests.WithLabelValues("LIST", "pods", "500")); got != 1 {
		t.Fatalf("apiserver_request_total{LIST,pods,500} = %v, want 1", got)
	}
	log := logs.String()
	for _, want := range []string{`"level":"ERROR"`, `"verb":"LIST"`, `"resource":"pods"`, `"user":"admin"`, `list exploded`, `panickingStore.List`} {
		if !strings.Contains(log, want) {
			t.Errorf("panic log lacks %s:\n%s", want, log)
		}
	}

	// The server goes on answering.
	a.store = mem
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/api/v1/namespaces/default/pods", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("after the panic: status %d", res.StatusCode)
	}
}

// A strategic-merge patch whose list merge key holds an object made
// apimachinery's strategicpatch panic, and the connection close without
// an answer; it is the client's error, a 400 naming the field.
func TestMalformedStrategicPatchIsAnswered(t *testing.T) {
	srv, _ := newTestAPI(t)
	const pods = "/api/v1/namespaces/default/pods"
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x","ports":[{"containerPort":80}]}]}}`
	if r := do(t, srv, "POST", pods, "application/json", pod); r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	for _, tc := range []struct {
		ct, patch, field string
	}{
		{"application/strategic-merge-patch+json", `{"spec":{"containers":[{"name":"c","ports":[{"containerPort":{}}]}]}}`, "containerPort"},
		{"application/strategic-merge-patch+json", `{"spec":{"containers":[{"name":{}}]}}`, "name"},
		{"application/strategic-merge-patch+json", `{"spec":{"containers":{"name":"c"}}}`, ""},
		{"application/merge-patch+json", `{"spec":{"containers":[{"name":"c","ports":[{"containerPort":{}}]}]}}`, "containerPort"},
		{"application/json-patch+json", `[{"op":"replace","path":"/spec/containers/0/ports/0/containerPort","value":{}}]`, "containerPort"},
		{"application/json-patch+json", `[{"op":"frobnicate","path":"/spec"}]`, ""},
	} {
		r := do(t, srv, "PATCH", pods+"/p", tc.ct, tc.patch)
		if r.code < 400 || r.code >= 500 {
			t.Errorf("%s %s: %d %s, want a 4xx", tc.ct, tc.patch, r.code, r.body)
			continue
		}
		if tc.field != "" && !strings.Contains(r.body, tc.field) {
			t.Errorf("%s %s: %s does not name %s", tc.ct, tc.patch, r.body, tc.field)
		}
	}
	// The scale subresource takes strategic patches through the same path.
	deploy := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`
	if r := do(t, srv, "POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", deploy); r.code != 201 {
		t.Fatalf("create deployment: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale", "application/strategic-merge-patch+json", `{"spec":{"replicas":{}}}`); r.code != 400 || !strings.Contains(r.body, "replicas") {
		t.Fatalf("scale patch: %d %s, want 400 naming replicas", r.code, r.body)
	}
	// Unknown fields in a patch are dropped unless fieldValidation=Strict
	// asks them refused, as for a create.
	if r := do(t, srv, "PATCH", pods+"/p", "application/merge-patch+json", `{"metadata":{"labels":{"l":"v"}},"bogus":1}`); r.code != 200 {
		t.Errorf("patch with an unknown field: %d %s, want 200", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", pods+"/p?fieldValidation=Strict", "application/merge-patch+json", `{"bogus":1}`); r.code != 400 || !strings.Contains(r.body, "bogus") {
		t.Errorf("strict patch with an unknown field: %d %s, want 400 naming it", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", pods+"/p?fieldManager=m", "application/apply-patch+yaml", "null"); r.code != 400 || strings.Contains(r.body, "<nil>") {
		t.Errorf("null apply patch: %d %s, want 400 saying why", r.code, r.body)
	}
	// Nothing was stored from the refused patches.
	r := do(t, srv, "GET", pods+"/p", "", "")
	if r.code != 200 || jfield(r.obj, "metadata", "resourceVersion") == nil {
		t.Fatalf("get after refused patches: %d %s", r.code, r.body)
	}
	if !strings.Contains(r.body, `"containerPort":80`) {
		t.Fatalf("pod changed by refused patches: %s", r.body)
	}
}
