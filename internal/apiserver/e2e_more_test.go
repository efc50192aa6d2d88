package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const webDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
`

const dbStatefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: busybox}]}
---
apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  template:
    metadata: {labels: {app: legacy}}
    spec: {containers: [{name: c, image: busybox}]}
`

// wantAll fails unless out contains every string.
func wantAll(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// testEndToEndKubectlResources drives workloads, services, events and
// namespace deletion with the installed kubectl against a real server.
func testEndToEndKubectlResources(t *testing.T, start serverStarter) {
	s, stop := start(t)
	t.Cleanup(stop)
	kc := s.Kubeconfig()
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()

	// Deployments: apply, tables, scale, set image, rollout restart.
	wantAll(t, "apply", mustKubectl(t, kc, webDeployment, "apply", "-f", "-"), "deployment.apps/web created")
	wantAll(t, "get deploy", mustKubectl(t, kc, "", "get", "deploy"), "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "0/1")
	wantAll(t, "get deploy -o wide", mustKubectl(t, kc, "", "get", "deployments", "-o", "wide"), "CONTAINERS", "IMAGES", "SELECTOR", "nginx:1.25", "app=web")
	wantAll(t, "scale", mustKubectl(t, kc, "", "scale", "deployment", "web", "--replicas=3"), "deployment.apps/web scaled")
	if out := mustKubectl(t, kc, "", "get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"); out != "3 2" {
		t.Fatalf("after scale: %q", out)
	}
	if out, err := kubectl(t, kc, "", "scale", "deployment", "web", "--current-replicas=1", "--replicas=5"); err == nil {
		t.Fatalf("scale with a wrong precondition succeeded: %s", out)
	}
	wantAll(t, "set image", mustKubectl(t, kc, "", "set", "image", "deployment/web", "nginx=nginx:1.26"), "image updated")
	wantAll(t, "rollout restart", mustKubectl(t, kc, "", "rollout", "restart", "deployment/web"), "restarted")
	if out := mustKubectl(t, kc, "", "get", "deploy", "web", "-o", "yaml"); !strings.Contains(out, "kubectl.kubernetes.io/restartedAt") || !strings.Contains(out, "nginx:1.26") {
		t.Fatalf("after restart:\n%s", out)
	}
	if out := mustKubectl(t, kc, webDeployment, "apply", "-f", "-"); !strings.Contains(out, "configured") {
		t.Fatalf("re-apply: %s", out)
	}

	// rollout history/undo read ReplicaSets owned by the deployment, as
	// the deployment controller would have left them.
	d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for rev, image := range map[string]string{"1": "nginx:1.24", "2": d.Spec.Template.Spec.Containers[0].Image} {
		tmpl := d.Spec.Template.DeepCopy()
		tmpl.Labels = map[string]string{"app": "web", "pod-template-hash": "h" + rev}
		tmpl.Spec.Containers[0].Image = image
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web-h" + rev, Labels: tmpl.Labels,
				Annotations:     map[string]string{"deployment.kubernetes.io/revision": rev},
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: *tmpl},
		}
		if _, err := cs.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wantAll(t, "rollout history", mustKubectl(t, kc, "", "rollout", "history", "deployment/web"), "REVISION", "1", "2")
	wantAll(t, "rollout undo", mustKubectl(t, kc, "", "rollout", "undo", "deployment/web"), "rolled back")
	if out := mustKubectl(t, kc, "", "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); out != "nginx:1.24" {
		t.Fatalf("after undo: %q", out)
	}
	wantAll(t, "get rs", mustKubectl(t, kc, "", "get", "rs"), "DESIRED", "CURRENT", "READY", "web-h1")

	// StatefulSets and ReplicationControllers.
	wantAll(t, "apply sts,rc", mustKubectl(t, kc, dbStatefulSet, "apply", "-f", "-"), "statefulset.apps/db created", "replicationcontroller/legacy created")
	wantAll(t, "scale sts", mustKubectl(t, kc, "", "scale", "sts", "db", "--replicas=2"), "statefulset.apps/db scaled")
	wantAll(t, "scale rc", mustKubectl(t, kc, "", "scale", "rc", "legacy", "--replicas=4"), "replicationcontroller/legacy scaled")
	wantAll(t, "get sts,rc", mustKubectl(t, kc, "", "get", "sts,rc"), "0/2", "legacy", "4")
	if out, err := kubectl(t, kc, strings.Replace(dbStatefulSet, "serviceName: db", "serviceName: db\n  volumeClaimTemplates: [{metadata: {name: data}}]", 1), "apply", "-f", "-"); err == nil ||
		!strings.Contains(out, "spec.volumeClaimTemplates") {
		t.Fatalf("an incomplete volumeClaimTemplate accepted: %s", out)
	}

	// Services and EndpointSlices.
	wantAll(t, "create svc", mustKubectl(t, kc, "", "create", "service", "clusterip", "web", "--tcp=80:8080"), "service/web created")
	wantAll(t, "create nodeport", mustKubectl(t, kc, "", "create", "service", "nodeport", "np", "--tcp=80:80"), "service/np created")
	out := mustKubectl(t, kc, "", "get", "svc")
	wantAll(t, "get svc", out, "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "kubernetes", "10.96.0.1", "443/TCP", "80/TCP", "NodePort", "80:3")
	// The kubernetes Service's endpoint is the address pods reach the
	// server at (the default route's interface here), never loopback.
	wantAll(t, "get endpointslices", mustKubectl(t, kc, "", "get", "endpointslices"), "ADDRESSTYPE", "kubernetes", "IPv4", defaultRouteIPv4().String())
	wantAll(t, "get endpoints", mustKubectl(t, kc, "", "get", "endpoints", "kubernetes"), "ENDPOINTS", defaultRouteIPv4().String()+":")
	wantAll(t, "describe svc", mustKubectl(t, kc, "", "describe", "svc", "kubernetes"), "10.96.0.1", "443/TCP")
	wantAll(t, "get all", mustKubectl(t, kc, "", "get", "all"), "deployment.apps/web", "replicaset.apps/web-h1", "statefulset.apps/db", "service/np", "replicationcontroller/legacy")

	// Events through both APIs.
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.1"}, InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Name: "web", Namespace: "default"},
		Reason: "ScalingReplicaSet", Message: "Scaled up replica set web-h2 to 3", Type: corev1.EventTypeNormal,
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1, Source: corev1.EventSource{Component: "deployment-controller"}}
	if _, err := cs.CoreV1().Events("default").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantAll(t, "get events", mustKubectl(t, kc, "", "get", "events"), "LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE", "deployment/web", "Scaled up replica set web-h2 to 3")
	wantAll(t, "kubectl events", mustKubectl(t, kc, "", "events"), "ScalingReplicaSet", "Deployment/web")
	wantAll(t, "get events.events.k8s.io", mustKubectl(t, kc, "", "get", "events.events.k8s.io", "-o", "yaml"), "note: Scaled up replica set web-h2 to 3", "apiVersion: events.k8s.io/v1")

	// delete --all
	for _, n := range []string{"a", "b", "c"} {
		mustKubectl(t, kc, "", "run", n, "--image=busybox")
	}
	wantAll(t, "delete pods --all", mustKubectl(t, kc, "", "delete", "pods", "--all", "--timeout=20s"), `pod "a" deleted`, `pod "c" deleted`)
	if out := mustKubectl(t, kc, "", "get", "pods", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("pods left: %s", out)
	}

	// Namespace deletion: content goes, the namespace waits for it and
	// refuses new content meanwhile.
	mustKubectl(t, kc, "", "create", "namespace", "scratch")
	mustKubectl(t, kc, "", "-n", "scratch", "create", "configmap", "held")
	mustKubectl(t, kc, "", "-n", "scratch", "patch", "configmap", "held", "-p", `{"metadata":{"finalizers":["example.com/hold"]}}`)
	mustKubectl(t, kc, webDeployment, "-n", "scratch", "apply", "-f", "-")
	wantAll(t, "delete ns --wait=false", mustKubectl(t, kc, "", "delete", "namespace", "scratch", "--wait=false"), `namespace "scratch" deleted`)
	wantAll(t, "get ns", mustKubectl(t, kc, "", "get", "ns", "scratch"), "Terminating")
	out, err = kubectl(t, kc, "", "-n", "scratch", "create", "configmap", "late")
	if err == nil || !strings.Contains(out, "forbidden") || !strings.Contains(out, "because it is being terminated") {
		t.Fatalf("create in terminating namespace: %v %s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ = kubectl(t, kc, "", "-n", "scratch", "get", "deploy,sa", "-o", "name")
		if strings.TrimSpace(out) == "" || strings.Contains(out, "No resources") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace content not deleted: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustKubectl(t, kc, "", "-n", "scratch", "patch", "configmap", "held", "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	mustKubectl(t, kc, "", "wait", "--for=delete", "namespace/scratch", "--timeout=20s")
	wantAll(t, "recreate ns", mustKubectl(t, kc, "", "create", "namespace", "scratch"), "namespace/scratch created")
	wantAll(t, "delete ns", mustKubectl(t, kc, "", "delete", "namespace", "scratch", "--timeout=20s"), `namespace "scratch" deleted`)

	// Server-side apply: create, no-op, conflict with another manager,
	// forced takeover.
	ssa := strings.Replace(webDeployment, "name: web\n", "name: ssa\n", 1)
	wantAll(t, "apply --server-side", mustKubectl(t, kc, ssa, "apply", "--server-side", "-f", "-"), "deployment.apps/ssa serverside-applied")
	rv := mustKubectl(t, kc, "", "get", "deploy", "ssa", "-o", "jsonpath={.metadata.resourceVersion}")
	mustKubectl(t, kc, ssa, "apply", "--server-side", "-f", "-")
	if rv2 := mustKubectl(t, kc, "", "get", "deploy", "ssa", "-o", "jsonpath={.metadata.resourceVersion}"); rv2 != rv {
		t.Fatalf("second server-side apply changed the object: %s -> %s", rv, rv2)
	}
	changed := strings.Replace(ssa, "nginx:1.25", "nginx:1.27", 1)
	if out, err := kubectl(t, kc, changed, "apply", "--server-side", "--field-manager=other", "-f", "-"); err == nil || !strings.Contains(out, "conflict") {
		t.Fatalf("conflicting server-side apply: %v %s", err, out)
	}
	mustKubectl(t, kc, changed, "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-")
	if out := mustKubectl(t, kc, "", "get", "deploy", "ssa", "-o", "jsonpath={.spec.template.spec.containers[0].image}"); out != "nginx:1.27" {
		t.Fatalf("forced apply: %q", out)
	}

	// Discovery lists the new kinds with their short names.
	wantAll(t, "api-resources", mustKubectl(t, kc, "", "api-resources"), "deployments", "deploy", "statefulsets", "sts", "replicationcontrollers",
		"svc", "endpointslices", "events.k8s.io")
}
