package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// mutatedSeeds are valid manifests of several kinds in namespace fz, the
// starting points of the mutations.
var mutatedSeeds = []struct{ collection, manifest string }{
	{"/api/v1/namespaces/fz/pods", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app":"a"},"annotations":{"x":"y"}},"spec":{"containers":[{"name":"c","image":"busybox","command":["sleep","1"],"ports":[{"containerPort":80,"name":"http"}],"env":[{"name":"A","value":"1"}],"resources":{"limits":{"cpu":"100m","memory":"64Mi"}}}],"restartPolicy":"Never"}}`},
	{"/api/v1/namespaces/fz/configmaps", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"k":"v","n":"1"}}`},
	{"/api/v1/namespaces/fz/secrets", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"stringData":{"k":"v"},"type":"Opaque"}`},
	{"/api/v1/namespaces/fz/services", `{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},"spec":{"selector":{"app":"a"},"ports":[{"port":80,"targetPort":"http","protocol":"TCP"}]}}`},
	{"/apis/apps/v1/namespaces/fz/deployments", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":0,"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}`},
}

// mutator changes manifests the ways a fuzzer would: values of the wrong
// type, missing and duplicated fields, deep nesting, huge numbers, and
// broken bytes.
type mutator struct{ r *rand.Rand }

var oddValues = []any{nil, true, -1, 1 << 62, 1e308, "", "x", strings.Repeat("a", 300), []any{}, []any{map[string]any{}}, map[string]any{}, map[string]any{"$patch": "delete"}, "$(VAR)", "../../etc"}

func (m mutator) value() any {
	if m.r.Intn(10) == 0 {
		var v any = "deep"
		for i := 0; i < 50+m.r.Intn(200); i++ {
			v = []any{v}
		}
		return v
	}
	return oddValues[m.r.Intn(len(oddValues))]
}

// tree replaces, deletes or adds one value somewhere in v.
func (m mutator) tree(v any) any {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 || m.r.Intn(6) == 0 {
			t[fmt.Sprintf("f%d", m.r.Intn(5))] = m.value()
			return t
		}
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		k := keys[m.r.Intn(len(keys))]
		switch m.r.Intn(4) {
		case 0:
			t[k] = m.value()
		case 1:
			delete(t, k)
		default:
			t[k] = m.tree(t[k])
		}
		return t
	case []any:
		if len(t) == 0 || m.r.Intn(5) == 0 {
			return append(t, m.value())
		}
		i := m.r.Intn(len(t))
		if m.r.Intn(3) == 0 {
			t = append(t, t[i]) // a duplicate list entry (merge keys)
		} else {
			t[i] = m.tree(t[i])
		}
		return t
	default:
		return m.value()
	}
}

// bytes breaks raw bytes: flips, cuts and splices.
func (m mutator) bytes(b []byte) []byte {
	b = append([]byte(nil), b...)
	for n := 1 + m.r.Intn(4); n > 0 && len(b) > 0; n-- {
		i := m.r.Intn(len(b))
		switch m.r.Intn(3) {
		case 0:
			b[i] ^= byte(1 << m.r.Intn(8))
		case 1:
			b = append(b[:i], b[i+m.r.Intn(len(b)-i):]...)
		default:
			b = append(b[:i], append([]byte(`{"[`), b[i:]...)...)
		}
	}
	return b
}

// TestMutatedRequestsOverHTTPS sends thousands of mutated manifests and
// patches, with every verb, in JSON, YAML and protobuf, with every patch
// type, to a real server over HTTPS: every request is answered, none with
// a 5xx; the server stays ready; nothing is stored from a refused
// request; and the Go heap comes back near its baseline once the objects
// are deleted.
func TestMutatedRequestsOverHTTPS(t *testing.T) {
	s, stop := startServer(t, tempDir(t))
	defer stop()
	rc, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fz"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pb := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	send := func(method, path, ct string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, rc.Host+path, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s (%s) got no answer: %v\nbody: %.500q", method, path, ct, err, body)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s (%s): %d %s\nbody: %.500q", method, path, ct, resp.StatusCode, out, body)
		}
		return resp.StatusCode, out
	}
	heap := func() uint64 {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}

	// The unmutated objects exist, so updates and patches have targets.
	for _, sd := range mutatedSeeds {
		if code, out := send(http.MethodPost, sd.collection, "application/json", []byte(sd.manifest)); code != http.StatusCreated {
			t.Fatalf("seed %s: %d %s", sd.collection, code, out)
		}
	}
	baseline := heap()

	m := mutator{rand.New(rand.NewSource(1))}
	const requests = 2400
	created := map[string]bool{} // collection/name of every 201
	codes := map[int]int{}
	for i := 0; i < requests; i++ {
		sd := mutatedSeeds[m.r.Intn(len(mutatedSeeds))]
		var obj map[string]any
		if err := json.Unmarshal([]byte(sd.manifest), &obj); err != nil {
			t.Fatal(err)
		}
		seedName := obj["metadata"].(map[string]any)["name"].(string)
		verb := m.r.Intn(10)
		if verb < 3 {
			// Creates make new objects; updates and patches keep the
			// seed's name, so their refusals are about the mutation.
			obj["metadata"].(map[string]any)["name"] = fmt.Sprintf("fz-%d", i)
		}
		for n := 1 + m.r.Intn(3); n > 0; n-- {
			obj = m.tree(obj).(map[string]any)
		}
		body, _ := json.Marshal(obj)
		if m.r.Intn(4) == 0 {
			body = m.bytes(body)
		}
		var method, path, ct string
		switch {
		case verb < 3: // create, in one of three encodings
			method, path, ct = http.MethodPost, sd.collection, "application/json"
			switch m.r.Intn(3) {
			case 1:
				if y, err := yaml.JSONToYAML(body); err == nil {
					body = y
				}
				ct = "application/yaml"
			case 2:
				if o, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(sd.manifest), nil, nil); err == nil {
					var buf bytes.Buffer
					if err := pb.Encode(o, &buf); err == nil {
						body = m.bytes(buf.Bytes())
					}
				}
				ct = "application/vnd.kubernetes.protobuf"
			}
		case verb < 4: // update of the seed object
			method, path, ct = http.MethodPut, sd.collection+"/"+seedName, "application/json"
		case verb < 8: // patch of the seed object, every type
			method, path = http.MethodPatch, sd.collection+"/"+seedName
			ct = fuzzPatchTypes[m.r.Intn(len(fuzzPatchTypes))]
			switch ct {
			case "application/json-patch+json":
				op := []map[string]any{{"op": []string{"add", "replace", "remove", "test", "move", "copy", "bogus"}[m.r.Intn(7)],
					"path": []string{"", "/", "/metadata/labels/a", "/spec/containers/0/ports/0/containerPort", "/spec/-", "/data/k", "/x~2y"}[m.r.Intn(7)],
					"from": "/metadata/name", "value": m.value()}}
				body, _ = json.Marshal(op)
			case "application/apply-patch+yaml":
				path += "?fieldManager=fz&force=true"
				md, ok := obj["metadata"].(map[string]any)
				if !ok {
					md = map[string]any{}
					obj["metadata"] = md
				}
				md["name"] = seedName
				body, _ = json.Marshal(obj)
			default:
				delete(obj, "apiVersion")
				delete(obj, "kind")
				body, _ = json.Marshal(m.tree(obj))
			}
			if m.r.Intn(5) == 0 {
				body = m.bytes(body)
			}
		case verb < 9: // list with mutated selectors
			sel := string(m.bytes([]byte("app=a,tier in (x,y),!gone")))
			method, path = http.MethodGet, sd.collection+"?labelSelector="+url.QueryEscape(sel)+"&fieldSelector="+url.QueryEscape(string(m.bytes([]byte("metadata.name=p"))))
			body = nil
		default: // delete with mutated options
			method, path, ct = http.MethodDelete, sd.collection+"/fz-nonexistent", "application/json"
			body = m.bytes([]byte(`{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":0,"propagationPolicy":"Background"}`))
		}
		code, out := send(method, path, ct, body)
		codes[code]++
		if method == http.MethodPost && code == http.StatusCreated {
			var meta struct {
				Metadata struct{ Name string } `json:"metadata"`
			}
			json.Unmarshal(out, &meta)
			created[sd.collection+"/"+meta.Metadata.Name] = true
		}
	}
	t.Logf("%d requests answered: %v", requests, codes)
	if codes[http.StatusCreated] == 0 || codes[http.StatusBadRequest]+codes[http.StatusUnprocessableEntity] == 0 {
		t.Fatalf("the mutations were all accepted or all refused (%v): the test exercises nothing", codes)
	}

	// Ready, and only what was acknowledged is stored.
	if code, out := send(http.MethodGet, "/readyz", "", nil); code != http.StatusOK {
		t.Fatalf("readyz after the storm: %d %s", code, out)
	}
	for _, sd := range mutatedSeeds {
		code, out := send(http.MethodGet, sd.collection, "", nil)
		var list struct {
			Items []struct {
				Metadata struct{ Name string } `json:"metadata"`
			} `json:"items"`
		}
		if code != http.StatusOK || json.Unmarshal(out, &list) != nil {
			t.Fatalf("list %s: %d %.300s", sd.collection, code, out)
		}
		for _, it := range list.Items {
			if strings.HasPrefix(it.Metadata.Name, "fz-") && !created[sd.collection+"/"+it.Metadata.Name] {
				t.Errorf("%s/%s is stored although its create was refused", sd.collection, it.Metadata.Name)
			}
		}
	}

	// Memory comes back once the objects are gone.
	if err := cs.CoreV1().Namespaces().Delete(ctx, "fz", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "fz", metav1.GetOptions{})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("namespace fz not deleted within 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	const slack = 48 << 20
	if after := heap(); after > baseline+slack {
		t.Fatalf("Go heap after cleanup %d MiB, baseline %d MiB: more than %d MiB kept", after>>20, baseline>>20, slack>>20)
	}
}
