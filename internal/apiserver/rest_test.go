package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/storage"
)

const adminToken = "admin-token"

// newTestAPI serves the API over the in-memory store, authenticating the
// bearer token adminToken as a system:masters member.
func newTestAPI(t *testing.T) (*httptest.Server, *storage.Memory) {
	t.Helper()
	mem := storage.NewMemory()
	a := newAPI(apiOptions{Store: mem, BookmarkInterval: 200 * time.Millisecond,
		Authn: NewTokenAuthenticator(map[string]User{adminToken: {Name: "admin", Groups: []string{"system:masters"}},
			"nobody": {Name: "nobody"}})})
	if err := a.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(func() { srv.Close(); mem.Close() })
	return srv, mem
}

type resp struct {
	code int
	body string
	obj  map[string]interface{}
}

func do(t *testing.T, srv *httptest.Server, method, path, ct, body string, hdr ...string) resp {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{code: res.StatusCode, body: string(b)}
	json.Unmarshal(b, &r.obj)
	return r
}

func jfield(obj map[string]interface{}, path ...string) interface{} {
	var cur interface{} = obj
	for _, p := range path {
		m, ok := cur.(map[string]interface{})
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

const podJSON = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1","labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}}`

func TestHandlersCRUD(t *testing.T) {
	srv, _ := newTestAPI(t)
	const pods = "/api/v1/namespaces/default/pods"
	r := do(t, srv, "POST", pods, "application/json", podJSON)
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	if jfield(r.obj, "metadata", "uid") == nil || jfield(r.obj, "spec", "restartPolicy") != "Always" ||
		jfield(r.obj, "status", "phase") != "Pending" || jfield(r.obj, "metadata", "generation") != float64(1) {
		t.Fatalf("create defaults: %s", r.body)
	}
	rv := jfield(r.obj, "metadata", "resourceVersion").(string)
	if r := do(t, srv, "POST", pods, "application/json", podJSON); r.code != 409 || jfield(r.obj, "reason") != "AlreadyExists" {
		t.Fatalf("create twice: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", "/api/v1/namespaces/nope/pods", "application/json", podJSON); r.code != 404 {
		t.Fatalf("create in missing namespace: %d %s", r.code, r.body)
	}
	// generateName
	r = do(t, srv, "POST", pods, "application/yaml", "apiVersion: v1\nkind: Pod\nmetadata: {generateName: gen-}\nspec: {containers: [{name: c, image: x}]}\n")
	if r.code != 201 || !strings.HasPrefix(jfield(r.obj, "metadata", "name").(string), "gen-") {
		t.Fatalf("generateName: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods+"/p1", "", ""); r.code != 200 || jfield(r.obj, "metadata", "resourceVersion") != rv {
		t.Fatalf("get: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods+"/p1", "", "", "Accept", "application/yaml"); r.code != 200 || !strings.Contains(r.body, "name: p1") {
		t.Fatalf("get yaml: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods+"/p1", "", "", "Accept", "application/vnd.kubernetes.protobuf"); r.code != 200 || !strings.HasPrefix(r.body, "k8s\x00") {
		t.Fatalf("get protobuf: %d %q", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods+"/missing", "", ""); r.code != 404 || jfield(r.obj, "reason") != "NotFound" {
		t.Fatalf("get missing: %d %s", r.code, r.body)
	}
	// list with selectors and paging
	r = do(t, srv, "GET", pods+"?labelSelector=app%3Da", "", "")
	if items := r.obj["items"].([]interface{}); r.code != 200 || len(items) != 1 {
		t.Fatalf("list label: %d %s", r.code, r.body)
	}
	r = do(t, srv, "GET", "/api/v1/pods?fieldSelector=metadata.namespace%3Ddefault,status.phase%3DPending&limit=1", "", "")
	cont, _ := jfield(r.obj, "metadata", "continue").(string)
	if r.code != 200 || len(r.obj["items"].([]interface{})) != 1 || cont == "" {
		t.Fatalf("list page 1: %d %s", r.code, r.body)
	}
	r = do(t, srv, "GET", "/api/v1/pods?fieldSelector=metadata.namespace%3Ddefault,status.phase%3DPending&limit=1&continue="+cont, "", "")
	if r.code != 200 || len(r.obj["items"].([]interface{})) != 1 || jfield(r.obj, "metadata", "continue") != nil {
		t.Fatalf("list page 2: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods+"?fieldSelector=spec.bogus%3Dx", "", ""); r.code != 400 {
		t.Fatalf("bad field selector: %d %s", r.code, r.body)
	}
	// update with a stale resourceVersion conflicts; with the current one succeeds
	upd := strings.Replace(podJSON, `"name":"p1"`, `"name":"p1","resourceVersion":"1"`, 1)
	if r := do(t, srv, "PUT", pods+"/p1", "application/json", upd); r.code != 409 || jfield(r.obj, "reason") != "Conflict" {
		t.Fatalf("stale update: %d %s", r.code, r.body)
	}
	upd = strings.Replace(podJSON, `"name":"p1"`, `"name":"p1","resourceVersion":"`+rv+`"`, 1)
	upd = strings.Replace(upd, "busybox:1.36", "busybox:1.37", 1)
	r = do(t, srv, "PUT", pods+"/p1", "application/json", upd)
	if r.code != 200 || jfield(r.obj, "metadata", "resourceVersion") == rv || jfield(r.obj, "metadata", "generation") != float64(2) {
		t.Fatalf("update: %d %s", r.code, r.body)
	}
	// patches
	r = do(t, srv, "PATCH", pods+"/p1", "application/merge-patch+json", `{"metadata":{"labels":{"x":"y"}}}`)
	if r.code != 200 || jfield(r.obj, "metadata", "labels", "x") != "y" {
		t.Fatalf("merge patch: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", pods+"/p1", "application/strategic-merge-patch+json", `{"spec":{"containers":[{"name":"c","image":"busybox:1.38"}]}}`)
	if r.code != 200 || jfield(r.obj, "spec", "containers").([]interface{})[0].(map[string]interface{})["image"] != "busybox:1.38" {
		t.Fatalf("strategic patch: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", pods+"/p1", "application/json-patch+json", `[{"op":"replace","path":"/metadata/labels/x","value":"z"}]`)
	if r.code != 200 || jfield(r.obj, "metadata", "labels", "x") != "z" {
		t.Fatalf("json patch: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PATCH", pods+"/p1/status", "application/merge-patch+json", `{"status":{"phase":"Running"},"spec":{"nodeName":"ignored"}}`)
	if r.code != 200 || jfield(r.obj, "status", "phase") != "Running" || jfield(r.obj, "spec", "nodeName") != nil {
		t.Fatalf("status patch: %d %s", r.code, r.body)
	}
	// unscheduled pods are deleted at once
	if r := do(t, srv, "DELETE", pods+"/p1", "", ""); r.code != 200 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods+"/p1", "", ""); r.code != 404 {
		t.Fatalf("after delete: %d", r.code)
	}
}

func TestGracefulDeleteAndFinalizers(t *testing.T) {
	srv, _ := newTestAPI(t)
	const pods = "/api/v1/namespaces/default/pods"
	body := strings.Replace(podJSON, `"spec":{`, `"spec":{"nodeName":"n1",`, 1)
	if r := do(t, srv, "POST", pods, "application/json", body); r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	r := do(t, srv, "DELETE", pods+"/p1", "", "")
	if r.code != 200 || jfield(r.obj, "metadata", "deletionTimestamp") == nil || jfield(r.obj, "metadata", "deletionGracePeriodSeconds") != float64(30) {
		t.Fatalf("graceful delete: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods+"/p1", "", "", "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"); !strings.Contains(r.body, "Terminating") {
		t.Fatalf("table while terminating: %s", r.body)
	}
	if r := do(t, srv, "DELETE", pods+"/p1?gracePeriodSeconds=0", "", ""); r.code != 200 {
		t.Fatalf("delete grace 0: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", pods+"/p1", "", ""); r.code != 404 {
		t.Fatalf("pod still there: %d", r.code)
	}
	// finalizers keep an object until removed
	cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","finalizers":["example.com/keep"]},"data":{"k":"v"}}`
	if r := do(t, srv, "POST", "/api/v1/namespaces/default/configmaps", "application/json", cm); r.code != 201 {
		t.Fatalf("create cm: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "DELETE", "/api/v1/namespaces/default/configmaps/c", "", ""); r.code != 200 || jfield(r.obj, "metadata", "deletionTimestamp") == nil {
		t.Fatalf("delete with finalizer: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", "/api/v1/namespaces/default/configmaps/c", "application/merge-patch+json", `{"metadata":{"finalizers":null}}`); r.code != 200 {
		t.Fatalf("remove finalizer: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "GET", "/api/v1/namespaces/default/configmaps/c", "", ""); r.code != 404 {
		t.Fatalf("cm still there after finalizer removal: %d %s", r.code, r.body)
	}
}

func TestInvalidAndMalformed(t *testing.T) {
	srv, _ := newTestAPI(t)
	const pods = "/api/v1/namespaces/default/pods"
	bad := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"volumes":[{"name":"v","nfs":{"server":"s","path":"/p"}}],
	  "containers":[{"name":"a","image":"x","volumeMounts":[{"name":"nope","mountPath":"/m"}],"ports":[{"containerPort":70000}]},{"name":"a"}]}}`
	r := do(t, srv, "POST", pods, "application/json", bad)
	if r.code != 422 || jfield(r.obj, "reason") != "Invalid" {
		t.Fatalf("invalid: %d %s", r.code, r.body)
	}
	var paths []string
	for _, c := range jfield(r.obj, "details", "causes").([]interface{}) {
		paths = append(paths, c.(map[string]interface{})["field"].(string))
	}
	for _, want := range []string{"metadata.name", "spec.containers[1].name", "spec.containers[1].image",
		"spec.containers[0].volumeMounts[0].name", "spec.containers[0].ports[0].containerPort", "spec.volumes[0]"} {
		if !strings.Contains(strings.Join(paths, " "), want) {
			t.Errorf("causes %v lack %s", paths, want)
		}
	}
	if !strings.Contains(r.body, "not supported by peapod") {
		t.Errorf("unsupported volume not named: %s", r.body)
	}
	if r := do(t, srv, "POST", pods, "application/json", `{"apiVersion":"v1","kind":"Pod",`); r.code != 400 {
		t.Fatalf("malformed json: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", pods, "application/yaml", "apiVersion: v1\nkind: Pod\nmetadata: [\n"); r.code != 400 {
		t.Fatalf("malformed yaml: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", pods, "application/json", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`); r.code != 400 {
		t.Fatalf("wrong kind: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", pods+"?fieldValidation=Strict", "application/json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"s"},"bogus":1,"spec":{"containers":[{"name":"c","image":"x"}]}}`); r.code != 400 || !strings.Contains(r.body, "bogus") {
		t.Fatalf("strict: %d %s", r.code, r.body)
	}
	// The server still works.
	if r := do(t, srv, "POST", pods, "application/json", podJSON); r.code != 201 {
		t.Fatalf("after bad input: %d %s", r.code, r.body)
	}
}

func TestAuthn(t *testing.T) {
	srv, _ := newTestAPI(t)
	for _, tc := range []struct {
		token string
		path  string
		code  int
	}{
		{"", "/api/v1/pods", 401},
		{"wrong", "/api/v1/pods", 401},
		{"nobody", "/api/v1/pods", 403},
		{"", "/healthz", 200},
		{"", "/version", 200},
		{"", "/api", 401},
		{adminToken, "/api/v1/pods", 200},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d: %s", tc.token, tc.path, res.StatusCode, tc.code, b)
		}
		if tc.code == 401 && !strings.Contains(string(b), `"reason":"Unauthorized"`) {
			t.Errorf("401 body not a Status: %s", b)
		}
	}
}

// watchLines opens a watch and returns a channel of decoded events.
func watchLines(t *testing.T, srv *httptest.Server, path string) <-chan map[string]interface{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("watch %s: %d %s", path, res.StatusCode, b)
	}
	ch := make(chan map[string]interface{}, 100)
	go func() {
		defer res.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev map[string]interface{}
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				ch <- ev
			}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan map[string]interface{}, skipBookmarks bool) map[string]interface{} {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("watch closed")
			}
			if skipBookmarks && ev["type"] == "BOOKMARK" {
				continue
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no watch event")
		}
	}
}

func TestWatch(t *testing.T) {
	srv, mem := newTestAPI(t)
	const pods = "/api/v1/namespaces/default/pods"
	r := do(t, srv, "POST", pods, "application/json", podJSON)
	rv := jfield(r.obj, "metadata", "resourceVersion").(string)

	// Watch-list: initial ADDED, then the initial-events-end bookmark, then changes.
	wl := watchLines(t, srv, pods+"?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
	if ev := next(t, wl, false); ev["type"] != "ADDED" || jfield(ev, "object", "metadata", "name") != "p1" {
		t.Fatalf("initial event: %v", ev)
	}
	if ev := next(t, wl, false); ev["type"] != "BOOKMARK" || jfield(ev, "object", "metadata", "annotations", "k8s.io/initial-events-end") != "true" {
		t.Fatalf("initial-events-end bookmark: %v", ev)
	}
	// Resume from rv: the label change arrives as MODIFIED; a selector watch sees it leave as DELETED.
	w := watchLines(t, srv, pods+"?watch=true&resourceVersion="+rv)
	ws := watchLines(t, srv, pods+"?watch=true&labelSelector=app%3Da&resourceVersion="+rv)
	do(t, srv, "PATCH", pods+"/p1", "application/merge-patch+json", `{"metadata":{"labels":{"app":"b"}}}`)
	if ev := next(t, w, true); ev["type"] != "MODIFIED" {
		t.Fatalf("resume: %v", ev)
	}
	if ev := next(t, ws, true); ev["type"] != "DELETED" {
		t.Fatalf("selector leave: %v", ev)
	}
	if ev := next(t, wl, true); ev["type"] != "MODIFIED" {
		t.Fatalf("watch-list change: %v", ev)
	}
	do(t, srv, "DELETE", pods+"/p1", "", "")
	if ev := next(t, w, true); ev["type"] != "DELETED" {
		t.Fatalf("delete event: %v", ev)
	}
	// Bookmarks flow when asked for.
	wb := watchLines(t, srv, pods+"?watch=true&allowWatchBookmarks=true&resourceVersion="+rv)
	for {
		ev := next(t, wb, false)
		if ev["type"] == "BOOKMARK" {
			break
		}
	}
	// A compacted resourceVersion is 410 Gone.
	cur, _ := mem.CurrentRevision(context.Background())
	mem.Compact(cur)
	wg := watchLines(t, srv, pods+"?watch=true&resourceVersion="+rv)
	ev := next(t, wg, false)
	if ev["type"] != "ERROR" || jfield(ev, "object", "code") != float64(410) {
		t.Fatalf("compacted watch: %v", ev)
	}
	if r := do(t, srv, "GET", pods+"?resourceVersion="+rv+"&resourceVersionMatch=Exact", "", ""); r.code != 410 {
		t.Fatalf("compacted list: %d %s", r.code, r.body)
	}
}

func TestDiscoveryAndTables(t *testing.T) {
	srv, _ := newTestAPI(t)
	r := do(t, srv, "GET", "/api/v1", "", "")
	if r.code != 200 || !strings.Contains(r.body, `"shortNames":["po"]`) || !strings.Contains(r.body, `"pods/status"`) {
		t.Fatalf("/api/v1: %s", r.body)
	}
	r = do(t, srv, "GET", "/apis", "", "", "Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
	if r.code != 200 || jfield(r.obj, "kind") != "APIGroupDiscoveryList" || !strings.Contains(r.body, "coordination.k8s.io") {
		t.Fatalf("aggregated /apis: %s", r.body)
	}
	r = do(t, srv, "GET", "/api/v1/namespaces", "", "", "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	if r.code != 200 || jfield(r.obj, "kind") != "Table" || !strings.Contains(r.body, "kube-system") || !strings.Contains(r.body, "Active") {
		t.Fatalf("namespace table: %s", r.body)
	}
	if r := do(t, srv, "GET", "/metrics", "", ""); !strings.Contains(r.body, "apiserver_request_total") || !strings.Contains(r.body, "etcd_request_duration_seconds") {
		t.Fatalf("metrics: %s", r.body)
	}
}

// A watch event written while more were queued reaches the client even when
// every event after it is filtered out (kubectl delete's wait hung a minute,
// until the next bookmark, on this).
func TestWatchFlushesBeforeFilteredEvents(t *testing.T) {
	srv, _ := newTestAPI(t)
	const pods = "/api/v1/namespaces/default/pods"
	r := do(t, srv, "POST", pods, "application/json", podJSON)
	rv := jfield(r.obj, "metadata", "resourceVersion").(string)
	do(t, srv, "POST", pods, "application/json", strings.Replace(podJSON, `"p1"`, `"other"`, 1))
	do(t, srv, "DELETE", pods+"/p1", "", "")
	for i := 0; i < 50; i++ {
		do(t, srv, "PATCH", pods+"/other", "application/merge-patch+json", fmt.Sprintf(`{"metadata":{"labels":{"n":"%d"}}}`, i))
	}
	// Replaying from rv queues the deletion ahead of 50 filtered events.
	w := watchLines(t, srv, pods+"?watch=true&fieldSelector=metadata.name%3Dp1&resourceVersion="+rv)
	if ev := next(t, w, true); ev["type"] != "DELETED" {
		t.Fatalf("want p1's deletion, got %v", ev)
	}
}
