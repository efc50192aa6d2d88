package apiserver

import (
	"context"
	"strings"
	"testing"

	"github.com/peapod/peapod/internal/storage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeGraph answers from fixed tables.
type fakeGraph struct {
	podNode map[string]string // ns/name -> node
	refs    map[string]string // resource/ns/name -> node
}

func (g fakeGraph) PodNodeName(_ context.Context, ns, name string) (string, bool, error) {
	n, ok := g.podNode[ns+"/"+name]
	return n, ok, nil
}

func (g fakeGraph) NodeReferences(_ context.Context, node, resource, ns, name string) (bool, error) {
	return g.refs[resource+"/"+ns+"/"+name] == node, nil
}

func (g fakeGraph) VolumeOnNode(_ context.Context, node, name string) (bool, error) {
	return g.refs["persistentvolumes/"+name] == node, nil
}

func TestNodeAuthorizer(t *testing.T) {
	nodeA := User{Name: "system:node:a", Groups: []string{NodesGroup, "system:authenticated"}}
	g := fakeGraph{
		podNode: map[string]string{"default/pa": "a", "default/pb": "b", "default/unbound": ""},
		refs: map[string]string{"secrets/default/sa": "a", "configmaps/default/cb": "b",
			"persistentvolumeclaims/default/data": "a", "persistentvolumes/pv-a": "a", "persistentvolumes/pv-b": "b"},
	}
	z := NodeAuthorizer{Graph: g}
	type tc struct {
		name   string
		user   User
		attrs  Attributes
		nr     nodeRequest
		allow  bool
		reason string
	}
	at := func(verb, group, resource, sub, ns, name string) Attributes {
		return Attributes{Verb: verb, Group: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	cases := []tc{
		{name: "read pods", attrs: at("list", "", "pods", "", "", ""), allow: true},
		{name: "watch nodes", attrs: at("watch", "", "nodes", "", "", ""), allow: true},
		{name: "get service", attrs: at("get", "", "services", "", "default", "kubernetes"), allow: true},
		{name: "list endpointslices", attrs: at("list", "discovery.k8s.io", "endpointslices", "", "", ""), allow: true},
		{name: "get runtimeclass", attrs: at("get", "node.k8s.io", "runtimeclasses", "", "", "crun"), allow: true},
		{name: "create own node", attrs: at("create", "", "nodes", "", "", ""), nr: nodeRequest{objectName: "a"}, allow: true},
		{name: "create other node", attrs: at("create", "", "nodes", "", "", ""), nr: nodeRequest{objectName: "b"}, reason: `not allowed to modify node "b"`},
		{name: "create node without parsed name", attrs: at("create", "", "nodes", "", "", ""), reason: "not allowed"},
		{name: "update own node status", attrs: at("update", "", "nodes", "status", "", "a"), allow: true},
		{name: "patch own node", attrs: at("patch", "", "nodes", "", "", "a"), allow: true},
		{name: "patch other node status", attrs: at("patch", "", "nodes", "status", "", "b"), reason: "not allowed"},
		{name: "delete other node", attrs: at("delete", "", "nodes", "", "", "b"), reason: "not allowed"},
		{name: "update own pod status", attrs: at("update", "", "pods", "status", "default", "pa"), allow: true},
		{name: "patch own pod status", attrs: at("patch", "", "pods", "status", "default", "pa"), allow: true},
		{name: "update other pod status", attrs: at("update", "", "pods", "status", "default", "pb"), reason: "spec.nodeName set to itself"},
		{name: "update unbound pod status", attrs: at("update", "", "pods", "status", "default", "unbound"), reason: "spec.nodeName"},
		{name: "update missing pod status (404 from handler)", attrs: at("update", "", "pods", "status", "default", "gone"), allow: true},
		{name: "delete own pod", attrs: at("delete", "", "pods", "", "default", "pa"), allow: true},
		{name: "delete other pod", attrs: at("delete", "", "pods", "", "default", "pb"), reason: "can only delete pods"},
		{name: "update pod spec", attrs: at("update", "", "pods", "", "default", "pa"), reason: "can only read pods"},
		{name: "create pod", attrs: at("create", "", "pods", "", "default", ""), nr: nodeRequest{objectName: "x"}, reason: "can only read pods"},
		{name: "exec", attrs: at("create", "", "pods", "exec", "default", "pa"), reason: "can only read pods"},
		{name: "bind pod", attrs: at("create", "", "pods", "binding", "default", "pa"), reason: "can only read pods"},
		{name: "referenced secret", attrs: at("get", "", "secrets", "", "default", "sa"), allow: true},
		{name: "secret of another node", attrs: at("get", "", "configmaps", "", "default", "cb"), reason: "no relationship"},
		{name: "list all secrets", attrs: at("list", "", "secrets", "", "default", ""), reason: "individual secrets"},
		{name: "watch one referenced secret", attrs: at("watch", "", "secrets", "", "default", ""), nr: nodeRequest{fieldSelected: "sa"}, allow: true},
		{name: "referenced claim", attrs: at("get", "", "persistentvolumeclaims", "", "default", "data"), allow: true},
		{name: "claim of no pod of the node", attrs: at("get", "", "persistentvolumeclaims", "", "default", "other"), reason: "no relationship"},
		{name: "list claims", attrs: at("list", "", "persistentvolumeclaims", "", "default", ""), reason: "individual persistentvolumeclaims"},
		{name: "watch volumes", attrs: at("watch", "", "persistentvolumes", "", "", ""), allow: true},
		{name: "delete own volume", attrs: at("delete", "", "persistentvolumes", "", "", "pv-a"), allow: true},
		{name: "delete other node's volume", attrs: at("delete", "", "persistentvolumes", "", "", "pv-b"), reason: "pinned to it"},
		{name: "update volume", attrs: at("update", "", "persistentvolumes", "", "", "pv-a"), reason: "can only read persistentvolumes"},
		{name: "get network settings", attrs: at("get", "", "configmaps", "", "kube-system", "peapod-network"), allow: true},
		{name: "watch network settings", attrs: at("watch", "", "configmaps", "", "kube-system", ""), nr: nodeRequest{fieldSelected: "peapod-network"}, allow: true},
		{name: "list network settings", attrs: at("list", "", "configmaps", "", "kube-system", ""), nr: nodeRequest{fieldSelected: "peapod-network"}, allow: true},
		{name: "list kube-system configmaps", attrs: at("list", "", "configmaps", "", "kube-system", ""), reason: "individual configmaps"},
		{name: "other kube-system configmap", attrs: at("get", "", "configmaps", "", "kube-system", "other"), reason: "no relationship"},
		{name: "peapod-network elsewhere", attrs: at("get", "", "configmaps", "", "default", "peapod-network"), reason: "no relationship"},
		{name: "update network settings", attrs: at("update", "", "configmaps", "", "kube-system", "peapod-network"), reason: "not allowed"},
		{name: "update secret", attrs: at("update", "", "secrets", "", "default", "sa"), reason: "not allowed"},
		{name: "create own lease", attrs: at("create", "coordination.k8s.io", "leases", "", NodeLeaseNamespace, ""), nr: nodeRequest{objectName: "a"}, allow: true},
		{name: "update own lease", attrs: at("update", "coordination.k8s.io", "leases", "", NodeLeaseNamespace, "a"), allow: true},
		{name: "update other lease", attrs: at("update", "coordination.k8s.io", "leases", "", NodeLeaseNamespace, "b"), reason: "its own lease"},
		{name: "lease elsewhere", attrs: at("get", "coordination.k8s.io", "leases", "", "kube-system", "a"), reason: "not allowed"},
		{name: "create event", attrs: at("create", "", "events", "", "default", ""), allow: true},
		{name: "patch events.k8s.io event", attrs: at("patch", "events.k8s.io", "events", "", "default", "e"), allow: true},
		{name: "delete event", attrs: at("delete", "", "events", "", "default", "e"), reason: "not allowed"},
		{name: "deployments", attrs: at("list", "apps", "deployments", "", "", ""), reason: "not allowed"},
		{name: "discovery", attrs: Attributes{Verb: "get", Path: "/apis/apps/v1"}, allow: true},
		{name: "metrics path", attrs: Attributes{Verb: "get", Path: "/metrics"}, reason: "may not access path"},
		{name: "not a node", user: User{Name: "system:node:a"}, attrs: at("get", "", "pods", "", "default", "pa")},
		{name: "admin is not decided here", user: User{Name: "admin", Groups: []string{"system:masters"}}, attrs: at("delete", "", "pods", "", "default", "pb")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.user.Name == "" {
				c.user = nodeA
			}
			c.attrs.User = c.user
			ok, reason, err := z.Authorize(withNodeRequest(context.Background(), c.nr), c.attrs)
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.allow || !strings.Contains(reason, c.reason) {
				t.Errorf("got allow=%v reason=%q, want allow=%v reason containing %q", ok, reason, c.allow, c.reason)
			}
		})
	}
	// The default authorizer lets admins do anything, nodes their share.
	u := Union{MastersAuthorizer{}, z}
	if ok, _, _ := u.Authorize(context.Background(), Attributes{User: User{Name: "admin", Groups: []string{"system:masters"}}, Verb: "delete", Resource: "pods", Namespace: "default", Name: "pb"}); !ok {
		t.Error("admin denied")
	}
}

func TestPodReferences(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
		Volumes: []corev1.Volume{
			{Name: "v1", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}}}},
			{Name: "v2", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec-vol"}}},
			{Name: "v3", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-proj"}}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-proj"}}},
			}}}},
		},
		InitContainers: []corev1.Container{{Name: "i", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-envfrom"}}}}}},
		Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-env"}, Key: "k"}}}}}},
	}}
	for _, c := range []struct {
		resource, name string
		want           bool
	}{
		{"secrets", "pull", true}, {"configmaps", "cm-vol", true}, {"secrets", "sec-vol", true},
		{"secrets", "sec-proj", true}, {"configmaps", "cm-proj", true}, {"secrets", "sec-envfrom", true},
		{"configmaps", "cm-env", true}, {"configmaps", "sec-vol", false}, {"secrets", "cm-env", false},
		{"configmaps", "pull", false}, {"secrets", "other", false},
	} {
		if got := podReferences(pod, c.resource, c.name); got != c.want {
			t.Errorf("podReferences(%s %s) = %v", c.resource, c.name, got)
		}
	}
}

func TestJoinTokenFormat(t *testing.T) {
	id, secret, err := GenerateBootstrapToken()
	if err != nil {
		t.Fatal(err)
	}
	if !bootstrapTokenRE.MatchString(id + "." + secret) {
		t.Fatalf("token %s.%s", id, secret)
	}
	p, err := LoadOrCreatePKI(tempDir(t), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := FormatJoinToken(p.CAPEM, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	h, bt, err := ParseJoinToken(tok)
	if err != nil || bt != id+"."+secret || len(h) != 64 || !strings.HasPrefix(tok, "K10"+h+"::") {
		t.Fatalf("parse %s: %s %s %v", tok, h, bt, err)
	}
	if h2, _ := CAHash(p.CAPEM); h2 != h {
		t.Fatalf("hash %s != %s", h2, h)
	}
	if h, bt, err := ParseJoinToken(id + "." + secret); err != nil || h != "" || bt != id+"."+secret {
		t.Fatalf("bare token: %q %q %v", h, bt, err)
	}
	for _, bad := range []string{"", "abc.def", "K10abc::" + id + "." + secret, "ABCDEF.0123456789abcdef", "K10" + strings.Repeat("0", 64) + "::nope"} {
		if _, _, err := ParseJoinToken(bad); err == nil {
			t.Errorf("ParseJoinToken(%q) accepted", bad)
		}
	}
}

// The graph remembers which pod made a node's answer yes, and answers from
// storage again once that pod no longer does.
func TestAPIGraphRemembersReferrer(t *testing.T) {
	mem := storage.NewMemory()
	t.Cleanup(func() { mem.Close() })
	a := newAPI(apiOptions{Store: mem})
	ctx := context.Background()
	if err := a.bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	g := newAPIGraph(a)
	pods := a.resourceFor("", "v1", "pods")
	put := func(name, node string) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes:    []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}},
		}}
		if _, err := a.create(ctx, pods, "default", pod, false); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(want bool) {
		t.Helper()
		got, err := g.NodeReferences(ctx, "n1", "configmaps", "default", "cm")
		if err != nil || got != want {
			t.Fatalf("NodeReferences = %v, %v; want %v", got, err, want)
		}
	}
	put("a", "n1")
	put("b", "n1")
	ask(true)
	first := g.referrer[nodeRef{"n1", "configmaps", "default", "cm"}]
	if first == "" {
		t.Fatal("no referrer remembered")
	}
	if _, err := mem.Delete(ctx, pods.key("default", first), 0); err != nil {
		t.Fatal(err)
	}
	ask(true) // the other pod still references it
	if _, err := mem.Delete(ctx, pods.key("default", g.referrer[nodeRef{"n1", "configmaps", "default", "cm"}]), 0); err != nil {
		t.Fatal(err)
	}
	ask(false)
}
