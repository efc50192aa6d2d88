package apiserver

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/peapod/peapod/internal/storage"
)

var (
	testKeyOnce sync.Once
	testKeys    [2]*rsa.PrivateKey
)

// testKey returns one of two RSA keys shared by the tests (generating
// 2048-bit keys is slow on a busy machine).
func testKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	testKeyOnce.Do(func() {
		for j := range testKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			testKeys[j] = k
		}
	})
	return testKeys[i]
}

// fakeObjects serves service accounts and pods from maps keyed "ns/name".
type fakeObjects struct {
	sas  map[string]*corev1.ServiceAccount
	pods map[string]*corev1.Pod
}

func (f fakeObjects) ServiceAccount(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	if sa, ok := f.sas[ns+"/"+name]; ok {
		return sa, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccounts"}, name)
}

func (f fakeObjects) Pod(_ context.Context, ns, name string) (*corev1.Pod, error) {
	if p, ok := f.pods[ns+"/"+name]; ok {
		return p, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest("GET", "/api/v1/pods", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestServiceAccountTokenAuthenticator(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	issuer, err := NewServiceAccountTokens(testKey(t, 0), "", clock)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewServiceAccountTokens(testKey(t, 1), "", clock)
	foreign, _ := NewServiceAccountTokens(testKey(t, 1), "https://elsewhere", clock)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot", Namespace: "ns1", UID: "sa-uid"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns1", UID: "pod-uid"}}
	objs := fakeObjects{sas: map[string]*corev1.ServiceAccount{"ns1/robot": sa}, pods: map[string]*corev1.Pod{"ns1/p": pod}}
	authn := &ServiceAccountTokenAuthenticator{Tokens: issuer, Objects: objs}

	mint := func(iss *ServiceAccountTokens, spec tokenSpec) string {
		t.Helper()
		if spec.ServiceAccount == nil {
			spec.ServiceAccount = sa
		}
		if spec.Audiences == nil {
			spec.Audiences = []string{DefaultServiceAccountIssuer}
		}
		if spec.TTL == 0 {
			spec.TTL = time.Hour
		}
		tok, exp, err := iss.issue(spec)
		if err != nil {
			t.Fatal(err)
		}
		if !exp.Equal(now.Add(spec.TTL)) {
			t.Fatalf("expiry %v", exp)
		}
		return tok
	}
	goodPod := mint(issuer, tokenSpec{Pod: pod, Node: &objectRef{Name: "node-a", UID: "n-uid"}})
	cases := []struct {
		name    string
		tok     string
		at      time.Time
		objs    *fakeObjects
		wantOK  bool
		wantErr string
	}{
		{name: "good", tok: mint(issuer, tokenSpec{}), wantOK: true},
		{name: "good bound to pod", tok: goodPod, wantOK: true},
		{name: "extra audience", tok: mint(issuer, tokenSpec{Audiences: []string{"vault", DefaultServiceAccountIssuer}}), wantOK: true},
		{name: "expired", tok: mint(issuer, tokenSpec{}), at: t0.Add(time.Hour + 2*time.Minute), wantErr: "expired"},
		{name: "within leeway", tok: mint(issuer, tokenSpec{}), at: t0.Add(time.Hour + 30*time.Second), wantOK: true},
		{name: "not yet valid", tok: mint(issuer, tokenSpec{}), at: t0.Add(-5 * time.Minute), wantErr: "not valid yet"},
		{name: "wrong audience", tok: mint(issuer, tokenSpec{Audiences: []string{"vault"}}), wantErr: "audiences"},
		{name: "bad signature", tok: mint(other, tokenSpec{}), wantErr: "signature"},
		{name: "tampered claims", tok: tamper(t, mint(issuer, tokenSpec{})), wantErr: "signature"},
		{name: "other issuer left to others", tok: mint(foreign, tokenSpec{})},
		{name: "not a JWT left to others", tok: "abcdef.0123456789abcdef"},
		{name: "bound pod deleted", tok: goodPod, objs: &fakeObjects{sas: objs.sas}, wantErr: "has been deleted"},
		{name: "bound pod recreated", tok: goodPod, objs: &fakeObjects{sas: objs.sas, pods: map[string]*corev1.Pod{
			"ns1/p": {ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns1", UID: "new-uid"}}}}, wantErr: "uid differs"},
		{name: "bound pod deleting (recently)", tok: goodPod, objs: &fakeObjects{sas: objs.sas, pods: map[string]*corev1.Pod{
			"ns1/p": {ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns1", UID: "pod-uid", DeletionTimestamp: &metav1.Time{Time: t0.Add(-10 * time.Second)}}}}}, wantOK: true},
		{name: "bound pod deleting (long ago)", tok: goodPod, objs: &fakeObjects{sas: objs.sas, pods: map[string]*corev1.Pod{
			"ns1/p": {ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns1", UID: "pod-uid", DeletionTimestamp: &metav1.Time{Time: t0.Add(-2 * time.Minute)}}}}}, wantErr: "being deleted"},
		{name: "service account deleted", tok: mint(issuer, tokenSpec{}), objs: &fakeObjects{}, wantErr: "service account ns1/robot has been deleted"},
		{name: "service account recreated", tok: mint(issuer, tokenSpec{}), objs: &fakeObjects{sas: map[string]*corev1.ServiceAccount{
			"ns1/robot": {ObjectMeta: metav1.ObjectMeta{Name: "robot", Namespace: "ns1", UID: "other"}}}}, wantErr: "uid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now = t0
			if !tc.at.IsZero() {
				now = tc.at
			}
			a := authn
			if tc.objs != nil {
				a = &ServiceAccountTokenAuthenticator{Tokens: issuer, Objects: *tc.objs}
			}
			u, ok, err := a.Authenticate(bearer(tc.tok))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ok != tc.wantOK {
				t.Fatalf("ok=%v err=%v, want ok=%v", ok, err, tc.wantOK)
			}
			if ok {
				want := User{Name: "system:serviceaccount:ns1:robot", UID: "sa-uid",
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"}}
				if u.Name != want.Name || u.UID != want.UID || strings.Join(u.Groups, ",") != strings.Join(want.Groups, ",") {
					t.Fatalf("user %+v", u)
				}
			}
		})
	}

	// The claims are Kubernetes'.
	now = t0
	var c map[string]any
	if _, err := parseJWTUnverified(goodPod, &c); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(c)
	for _, want := range []string{`"iss":"https://kubernetes.default.svc.cluster.local"`, `"sub":"system:serviceaccount:ns1:robot"`,
		`"aud":["https://kubernetes.default.svc.cluster.local"]`, `"exp":1893557045`, `"iat":1893553445`, `"nbf":1893553445`,
		`"kubernetes.io":{"namespace":"ns1","node":{"name":"node-a","uid":"n-uid"},"pod":{"name":"p","uid":"pod-uid"},"serviceaccount":{"name":"robot","uid":"sa-uid"}}`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("claims %s lack %s", got, want)
		}
	}
	var hdr map[string]any
	json.Unmarshal(mustB64(t, strings.Split(goodPod, ".")[0]), &hdr)
	if hdr["alg"] != "RS256" || hdr["kid"] != issuer.kid || issuer.kid == "" {
		t.Errorf("header %v", hdr)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tamper rewrites the token's namespace claim, keeping the signature.
func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	body := strings.Replace(string(mustB64(t, parts[1])), `"sub":"system:serviceaccount:ns1:robot"`, `"sub":"system:serviceaccount:ns1:robot2"`, 1)
	return parts[0] + "." + b64.EncodeToString([]byte(body)) + "." + parts[2]
}

func TestServiceAccountKeyPersisted(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pki")
	k1, err := LoadOrCreateServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateServiceAccountKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k2.Public()) {
		t.Fatal("key not reused")
	}
	if alg := jwsAlgorithm(k1.Public()); alg != "ES256" {
		t.Errorf("a new key signs %q, want ES256", alg)
	}
	st, err := os.Stat(filepath.Join(dir, ServiceAccountKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, st)
	}
	os.WriteFile(filepath.Join(dir, ServiceAccountKeyFile), []byte("junk"), 0o600)
	if _, err := LoadOrCreateServiceAccountKey(dir); err == nil {
		t.Fatal("junk key accepted")
	}
}

func TestServiceAccountAuthorizer(t *testing.T) {
	sa := ServiceAccountUser("ns1", "default", "u")
	cases := []struct {
		a    Attributes
		want bool
	}{
		{Attributes{User: sa, Verb: "get", Path: "/api"}, true},
		{Attributes{User: sa, Verb: "get", Path: "/apis/apps/v1"}, true},
		{Attributes{User: sa, Verb: "post", Path: "/api"}, false},
		{Attributes{User: sa, Verb: "list", Resource: "pods", Namespace: "ns1"}, true},
		{Attributes{User: sa, Verb: "watch", Group: "apps", Resource: "deployments", Namespace: "ns1"}, true},
		{Attributes{User: sa, Verb: "get", Resource: "pods", Subresource: "log", Namespace: "ns1", Name: "p"}, true},
		{Attributes{User: sa, Verb: "get", Resource: "secrets", Namespace: "ns1", Name: "s"}, false},
		{Attributes{User: sa, Verb: "list", Resource: "pods", Namespace: "ns2"}, false},
		{Attributes{User: sa, Verb: "list", Resource: "pods"}, false},
		{Attributes{User: sa, Verb: "create", Resource: "pods", Namespace: "ns1"}, false},
		{Attributes{User: sa, Verb: "get", Resource: "pods", Subresource: "exec", Namespace: "ns1", Name: "p"}, false},
		{Attributes{User: User{Name: "system:serviceaccount:ns1:default"}, Verb: "list", Resource: "pods", Namespace: "ns1"}, false},
		{Attributes{User: User{Name: "alice", Groups: []string{"system:serviceaccounts"}}, Verb: "list", Resource: "pods", Namespace: "ns1"}, false},
	}
	for i, tc := range cases {
		got, _, err := ServiceAccountAuthorizer{}.Authorize(context.Background(), tc.a)
		if err != nil || got != tc.want {
			t.Errorf("%d %+v: %v %v, want %v", i, tc.a, got, err, tc.want)
		}
	}
	node := User{Name: "system:node:n1", Groups: []string{NodesGroup}}
	for _, tc := range []struct {
		a    Attributes
		want bool
	}{
		{Attributes{User: node, Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: "ns1", Name: "default"}, true},
		{Attributes{User: node, Verb: "create", Resource: "serviceaccounts", Namespace: "ns1"}, false},
		{Attributes{User: node, Verb: "get", Resource: "serviceaccounts", Subresource: "token", Namespace: "ns1", Name: "default"}, false},
		{Attributes{User: sa, Verb: "create", Resource: "serviceaccounts", Subresource: "token", Namespace: "ns1", Name: "default"}, false},
	} {
		got, _, _ := NodeTokenRequestAuthorizer{}.Authorize(context.Background(), tc.a)
		if got != tc.want {
			t.Errorf("node %+v: %v, want %v", tc.a, got, tc.want)
		}
	}
}

// newTokenTestAPI serves the API over the in-memory store with the
// TokenRequest API, the service-account authenticator and the default
// authorizers. Static tokens: adminToken (system:masters), "node-a" and
// "node-b" (system:node:<name>).
func newTokenTestAPI(t *testing.T, admission bool) (*httptest.Server, *api) {
	t.Helper()
	mem := storage.NewMemory()
	tokens, err := NewServiceAccountTokens(testKey(t, 0), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	saAuthn := &ServiceAccountTokenAuthenticator{Tokens: tokens}
	static := NewTokenAuthenticator(map[string]User{
		adminToken: {Name: "admin", Groups: []string{"system:masters"}},
		"node-a":   {Name: "system:node:node-a", Groups: []string{NodesGroup}},
		"node-b":   {Name: "system:node:node-b", Groups: []string{NodesGroup}},
	})
	a := newAPI(apiOptions{Store: mem, BookmarkInterval: 200 * time.Millisecond, Authn: Authenticators{saAuthn, static}})
	a.authz = Union{MastersAuthorizer{}, NodeAuthorizer{Graph: newAPIGraph(a)}, NodeTokenRequestAuthorizer{}, ServiceAccountAuthorizer{}}
	saAuthn.Objects = apiObjects{a}
	enableServiceAccountTokens(a, tokens)
	if admission {
		enableServiceAccountAdmission(a)
	}
	if err := a.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(func() { srv.Close(); mem.Close() })
	return srv, a
}

// doAs is do with another bearer token.
func doAs(t *testing.T, srv *httptest.Server, token, method, path, body string) resp {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{code: res.StatusCode, body: string(b)}
	json.Unmarshal([]byte(r.body), &r.obj)
	return r
}

func tokenRequestBody(t *testing.T, spec authenticationv1.TokenRequestSpec) string {
	t.Helper()
	b, err := json.Marshal(authenticationv1.TokenRequest{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest"}, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTokenRequestAPI(t *testing.T) {
	srv, _ := newTokenTestAPI(t, false)
	const tokenPath = "/api/v1/namespaces/default/serviceaccounts/default/token"
	mkPod := func(name, node, sa string) string {
		t.Helper()
		body := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"` + name + `"},"spec":{"nodeName":"` + node +
			`","serviceAccountName":"` + sa + `","containers":[{"name":"c","image":"busybox:1.36"}]}}`
		r := do(t, srv, "POST", "/api/v1/namespaces/default/pods", "application/json", body)
		if r.code != 201 {
			t.Fatalf("create pod %s: %d %s", name, r.code, r.body)
		}
		return jfield(r.obj, "metadata", "uid").(string)
	}
	uidA := mkPod("pa", "node-a", "default")
	mkPod("pb", "node-b", "default")
	r := do(t, srv, "POST", "/api/v1/namespaces/default/serviceaccounts", "application/json",
		`{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"robot"}}`)
	if r.code != 201 {
		t.Fatalf("create sa: %d %s", r.code, r.body)
	}
	mkPod("pr", "node-a", "robot")

	// An unbound token with the defaults.
	r = do(t, srv, "POST", tokenPath, "application/json", tokenRequestBody(t, authenticationv1.TokenRequestSpec{}))
	if r.code != 201 || jfield(r.obj, "kind") != "TokenRequest" || jfield(r.obj, "apiVersion") != "authentication.k8s.io/v1" {
		t.Fatalf("token request: %d %s", r.code, r.body)
	}
	if jfield(r.obj, "spec", "expirationSeconds") != float64(3600) ||
		jfield(r.obj, "spec", "audiences").([]any)[0] != DefaultServiceAccountIssuer {
		t.Fatalf("defaults: %s", r.body)
	}
	exp, _ := time.Parse(time.RFC3339, jfield(r.obj, "status", "expirationTimestamp").(string))
	if d := time.Until(exp); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("expirationTimestamp %v", exp)
	}
	unbound := jfield(r.obj, "status", "token").(string)

	// The token authenticates; its service account reads its own namespace only.
	if r := doAs(t, srv, unbound, "GET", "/api/v1/namespaces/default/pods", ""); r.code != 200 {
		t.Fatalf("list pods with token: %d %s", r.code, r.body)
	}
	if r := doAs(t, srv, unbound, "GET", "/api", ""); r.code != 200 {
		t.Fatalf("discovery with token: %d %s", r.code, r.body)
	}
	for _, p := range []string{"/api/v1/namespaces/default/secrets", "/api/v1/namespaces/kube-system/pods", "/api/v1/pods"} {
		if r := doAs(t, srv, unbound, "GET", p, ""); r.code != 403 {
			t.Fatalf("GET %s with token: %d %s", p, r.code, r.body)
		}
	}
	if r := doAs(t, srv, unbound+"x", "GET", "/api/v1/namespaces/default/pods", ""); r.code != 401 {
		t.Fatalf("bad signature: %d %s", r.code, r.body)
	}

	// A token for another audience is not accepted by the API.
	r = do(t, srv, "POST", tokenPath, "application/json", tokenRequestBody(t, authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}}))
	if r.code != 201 {
		t.Fatalf("vault token: %d %s", r.code, r.body)
	}
	if r := doAs(t, srv, jfield(r.obj, "status", "token").(string), "GET", "/api/v1/namespaces/default/pods", ""); r.code != 401 {
		t.Fatalf("vault token against the API: %d %s", r.code, r.body)
	}

	// Bound to a pod: valid while the pod lives.
	secs := int64(600)
	r = do(t, srv, "POST", tokenPath, "application/json", tokenRequestBody(t, authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs,
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "pa"}}))
	if r.code != 201 || jfield(r.obj, "spec", "boundObjectRef", "uid") != uidA {
		t.Fatalf("bound token: %d %s", r.code, r.body)
	}
	bound := jfield(r.obj, "status", "token").(string)
	if r := doAs(t, srv, bound, "GET", "/api/v1/namespaces/default/pods/pa", ""); r.code != 200 {
		t.Fatalf("bound token: %d %s", r.code, r.body)
	}

	// Invalid requests.
	for _, tc := range []struct {
		path string
		spec authenticationv1.TokenRequestSpec
		code int
		msg  string
	}{
		{tokenPath, authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo(int64(60))}, 422, "less than 10 minutes"},
		{tokenPath, authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Secret", Name: "x"}}, 422, "spec.boundObjectRef.kind"},
		{tokenPath, authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", Name: "pa", UID: "nope"}}, 409, "does not match"},
		{tokenPath, authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", Name: "ghost"}}, 404, "not found"},
		{tokenPath, authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", Name: "pr"}}, 400, "different serviceaccount"},
		{"/api/v1/namespaces/default/serviceaccounts/ghost/token", authenticationv1.TokenRequestSpec{}, 404, "not found"},
	} {
		r := do(t, srv, "POST", tc.path, "application/json", tokenRequestBody(t, tc.spec))
		if r.code != tc.code || !strings.Contains(r.body, tc.msg) {
			t.Errorf("%+v: %d %s, want %d %q", tc.spec, r.code, r.body, tc.code, tc.msg)
		}
	}

	// Node restriction: only tokens bound to pods on the node.
	for _, tc := range []struct {
		node, pod string
		code      int
		msg       string
	}{
		{"node-a", "pa", 201, ""},
		{"node-a", "pb", 403, "scheduled on a different node"},
		{"node-b", "pb", 201, ""},
		{"node-a", "", 403, "not bound to a pod"},
	} {
		spec := authenticationv1.TokenRequestSpec{}
		if tc.pod != "" {
			spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: tc.pod}
		}
		r := doAs(t, srv, tc.node, "POST", tokenPath, tokenRequestBody(t, spec))
		if r.code != tc.code || !strings.Contains(r.body, tc.msg) {
			t.Errorf("%s for %q: %d %s, want %d %q", tc.node, tc.pod, r.code, r.body, tc.code, tc.msg)
		}
	}
	if r := doAs(t, srv, "node-a", "POST", "/api/v1/namespaces/default/serviceaccounts/robot/token",
		tokenRequestBody(t, authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", Name: "pr"}})); r.code != 201 {
		t.Errorf("node-a token for robot bound to pr: %d %s", r.code, r.body)
	}

	// Deleting the bound pod invalidates the bound token, not the unbound one.
	if r := do(t, srv, "DELETE", "/api/v1/namespaces/default/pods/pa?gracePeriodSeconds=0", "", ""); r.code != 200 {
		t.Fatalf("delete pod: %d %s", r.code, r.body)
	}
	if r := doAs(t, srv, bound, "GET", "/api/v1/namespaces/default/pods", ""); r.code != 401 {
		t.Fatalf("token of a deleted pod: %d %s", r.code, r.body)
	}
	if r := doAs(t, srv, unbound, "GET", "/api/v1/namespaces/default/pods", ""); r.code != 200 {
		t.Fatalf("unbound token after pod delete: %d %s", r.code, r.body)
	}
	// Deleting the service account invalidates every token of it.
	if r := do(t, srv, "DELETE", "/api/v1/namespaces/default/serviceaccounts/default", "", ""); r.code != 200 {
		t.Fatalf("delete sa: %d %s", r.code, r.body)
	}
	if r := doAs(t, srv, unbound, "GET", "/api/v1/namespaces/default/pods", ""); r.code != 401 {
		t.Fatalf("token of a deleted service account: %d %s", r.code, r.body)
	}
}

func ptrTo[T any](v T) *T { return &v }

// Tokens of a P-256 key (what peapod generates) and of an RSA key (what an
// older data dir holds) verify with their own key only, and a token cannot
// pick another algorithm than its key's.
func TestServiceAccountTokensES256AndRS256(t *testing.T) {
	ec, err := LoadOrCreateServiceAccountKey(filepath.Join(tempDir(t), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "robot", UID: "u1"}}
	spec := tokenSpec{ServiceAccount: sa, Audiences: []string{"a"}, TTL: time.Hour}
	tokens := map[string]string{}
	issuers := map[string]*ServiceAccountTokens{}
	for alg, key := range map[string]crypto.Signer{"ES256": ec, "RS256": testKey(t, 0)} {
		iss, err := NewServiceAccountTokens(key, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := iss.issue(spec)
		if err != nil {
			t.Fatal(err)
		}
		var claims saClaims
		hdr, err := parseJWTUnverified(tok, &claims)
		if err != nil || hdr.Alg != alg {
			t.Fatalf("%s key: header %+v, %v", alg, hdr, err)
		}
		if _, err := iss.verify(tok, []string{"a"}); err != nil {
			t.Errorf("%s token does not verify: %v", alg, err)
		}
		if _, err := iss.verify(tamper(t, tok), []string{"a"}); err == nil {
			t.Errorf("tampered %s token verifies", alg)
		}
		tokens[alg], issuers[alg] = tok, iss
	}
	if _, err := issuers["ES256"].verify(tokens["RS256"], []string{"a"}); err == nil {
		t.Error("an RS256 token verifies against the ES256 key")
	}
	if _, err := issuers["RS256"].verify(tokens["ES256"], []string{"a"}); err == nil {
		t.Error("an ES256 token verifies against the RSA key")
	}
}
