package apiserver

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// Kubernetes' input limits, answered in Kubernetes' words: ConfigMap and
// Secret data at most 1 MiB (422 naming data), annotations at most 256
// KiB (422), a body over 3 MiB (413), an object the state store refuses
// as too large (413, never 500), and nesting too deep to decode (400).
// Nothing refused is stored, and the server goes on answering.
func TestInputLimits(t *testing.T) {
	srv, _ := newTestAPI(t)
	const ns = "/api/v1/namespaces/default"
	mib := 1 << 20

	causes := func(r resp) string {
		var fields []string
		if cs, ok := jfield(r.obj, "details", "causes").([]interface{}); ok {
			for _, c := range cs {
				fields = append(fields, fmt.Sprint(c.(map[string]interface{})["field"]))
			}
		}
		return strings.Join(fields, " ")
	}
	for _, tc := range []struct {
		name, path, body string
		code             int
		field, reason    string
	}{
		{"configmap over 1 MiB", ns + "/configmaps",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":%q,"b":"x"}}`, strings.Repeat("x", mib)),
			422, "data", "Invalid"},
		{"configmap binaryData counts too", ns + "/configmaps",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bin"},"data":{"a":%q},"binaryData":{"b":%q}}`,
				strings.Repeat("x", mib/2), base64.StdEncoding.EncodeToString(make([]byte, mib/2+1))),
			422, "data", "Invalid"},
		{"secret stringData over 1 MiB", ns + "/secrets",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"big"},"stringData":{"a":%q}}`, strings.Repeat("x", mib+1)),
			422, "data", "Invalid"},
		{"annotations over 256 KiB", ns + "/configmaps",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ann","annotations":{"a":%q}}}`, strings.Repeat("x", 256<<10)),
			422, "metadata.annotations", "Invalid"},
		{"body over 3 MiB", ns + "/configmaps",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"huge"},"data":{"a":%q}}`, strings.Repeat("x", 3*mib)),
			413, "", "RequestEntityTooLarge"},
		{"object larger than the store takes", ns + "/pods",
			fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"big"},"spec":{"containers":[{"name":"c","image":"x","env":[{"name":"E","value":%q}]}]}}`, strings.Repeat("x", 2*mib)),
			413, "", "RequestEntityTooLarge"},
		{"json nested too deep", ns + "/configmaps",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`,
			400, "", "BadRequest"},
	} {
		r := do(t, srv, "POST", tc.path, "application/json", tc.body)
		if r.code != tc.code || jfield(r.obj, "reason") != tc.reason {
			t.Errorf("%s: %d %s %.300s, want %d %s", tc.name, r.code, jfield(r.obj, "reason"), r.body, tc.code, tc.reason)
			continue
		}
		if tc.field != "" && !strings.Contains(causes(r), tc.field) {
			t.Errorf("%s: causes %q do not name %s: %.300s", tc.name, causes(r), tc.field, r.body)
		}
	}
	r := do(t, srv, "POST", ns+"/configmaps", "application/yaml",
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deepyaml\nx: "+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+"\n")
	if r.code != 400 || !strings.Contains(r.body, "depth") {
		t.Errorf("yaml nested too deep: %d %.300s, want 400 naming the depth", r.code, r.body)
	}

	// At the limits, accepted.
	if r := do(t, srv, "POST", ns+"/configmaps", "application/json",
		fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"max"},"data":{"a":%q}}`, strings.Repeat("x", mib))); r.code != 201 {
		t.Fatalf("configmap of exactly 1 MiB: %d %.300s", r.code, r.body)
	}
	// Growing it past the limit by a patch is refused the same way.
	if r := do(t, srv, "PATCH", ns+"/configmaps/max", "application/merge-patch+json", `{"data":{"b":"y"}}`); r.code != 422 {
		t.Fatalf("patch past 1 MiB: %d %.300s", r.code, r.body)
	}
	if r := do(t, srv, "GET", ns+"/configmaps/max", "", ""); jfield(r.obj, "data", "b") != nil {
		t.Fatalf("refused patch was stored: %.300s", r.body)
	}
	// Deep nesting in a patch is the client's error too.
	for _, ct := range []string{"application/merge-patch+json", "application/strategic-merge-patch+json"} {
		if r := do(t, srv, "PATCH", ns+"/configmaps/max", ct, `{"x":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`}`); r.code != 400 {
			t.Errorf("%s nested too deep: %d %.300s, want 400", ct, r.code, r.body)
		}
	}

	// Nothing refused was stored.
	for _, p := range []string{ns + "/configmaps/big", ns + "/configmaps/bin", ns + "/configmaps/ann", ns + "/configmaps/huge",
		ns + "/configmaps/deep", ns + "/configmaps/deepyaml", ns + "/secrets/big", ns + "/pods/big"} {
		if r := do(t, srv, "GET", p, "", ""); r.code != 404 {
			t.Fatalf("%s after its refusal: %d", p, r.code)
		}
	}
}
