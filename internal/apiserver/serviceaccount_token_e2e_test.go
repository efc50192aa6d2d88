package apiserver

import (
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// testEndToEndKubectlToken creates tokens with `kubectl create token` and
// uses them with `kubectl --token` against a real server (HTTPS), through
// a kubeconfig that carries no credentials of its own.
func testEndToEndKubectlToken(t *testing.T, start serverStarter) {
	dir := tempDir(t)
	s, stop := start(t)
	t.Cleanup(stop)
	admin := s.Kubeconfig()

	// A kubeconfig with the server and CA only.
	anon := filepath.Join(dir, "anon.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["peapod"] = &clientcmdapi.Cluster{Server: "https://" + s.Addr(), CertificateAuthorityData: s.PKI().CAPEM}
	cfg.AuthInfos["none"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["peapod"] = &clientcmdapi.Context{Cluster: "peapod", AuthInfo: "none", Namespace: "default"}
	cfg.CurrentContext = "peapod"
	if err := clientcmd.WriteToFile(*cfg, anon); err != nil {
		t.Fatal(err)
	}

	tok := strings.TrimSpace(mustKubectl(t, admin, "", "create", "token", "default"))
	if !looksLikeJWT(tok) {
		t.Fatalf("kubectl create token printed %q", tok)
	}
	out := mustKubectl(t, anon, "", "--token", tok, "get", "pods")
	if !strings.Contains(out, "No resources found in default namespace") {
		t.Fatalf("get pods with token: %s", out)
	}
	mustKubectl(t, admin, "", "run", "web", "--image=busybox:1.36", "--restart=Never")
	out = mustKubectl(t, anon, "", "--token", tok, "get", "pods")
	wantAll(t, "get pods with token", out, "NAME", "web", "Pending")
	if out, err := kubectl(t, anon, "", "--token", tok, "get", "secrets"); err == nil || !strings.Contains(out, `User "system:serviceaccount:default:default" cannot list resource "secrets"`) {
		t.Fatalf("get secrets with token: %v\n%s", err, out)
	}
	if out, err := kubectl(t, anon, "", "--token", tok, "get", "pods", "-n", "kube-system"); err == nil || !strings.Contains(out, "Forbidden") {
		t.Fatalf("get pods in kube-system with token: %v\n%s", err, out)
	}
	if out, err := kubectl(t, anon, "", "--token", tok+"x", "get", "pods"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Fatalf("get pods with a broken token: %v\n%s", err, out)
	}

	// A token bound to the pod stops working when the pod is deleted.
	bound := strings.TrimSpace(mustKubectl(t, admin, "", "create", "token", "default",
		"--bound-object-kind", "Pod", "--bound-object-name", "web", "--duration", "15m"))
	mustKubectl(t, anon, "", "--token", bound, "get", "pod", "web")
	// A token for another audience is not one the API accepts.
	vault := strings.TrimSpace(mustKubectl(t, admin, "", "create", "token", "default", "--audience", "vault"))
	if out, err := kubectl(t, anon, "", "--token", vault, "get", "pods"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Fatalf("get pods with a vault token: %v\n%s", err, out)
	}
	mustKubectl(t, admin, "", "delete", "pod", "web", "--grace-period=0", "--force")
	if out, err := kubectl(t, anon, "", "--token", bound, "get", "pods"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Fatalf("token of a deleted pod: %v\n%s", err, out)
	}
	mustKubectl(t, anon, "", "--token", tok, "get", "pods")
	if out, err := kubectl(t, admin, "", "create", "token", "ghost"); err == nil || !strings.Contains(out, "not found") {
		t.Fatalf("token for a missing service account: %v\n%s", err, out)
	}
}
