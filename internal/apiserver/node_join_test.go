package apiserver

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func clientFor(t *testing.T, kubeconfig string) (kubernetes.Interface, *rest.Config) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

func readCert(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(pemData)
	if b == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestJoinNodeAndNodeAuthorization(t *testing.T) {
	dir := tempDir(t)
	s, stop := startServer(t, dir)
	t.Cleanup(stop)
	ctx := context.Background()
	admin, _ := clientFor(t, s.Kubeconfig())
	serverURL := "https://" + s.Addr()

	tok, err := CreateJoinTokenFromKubeconfig(ctx, s.Kubeconfig(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^K10[0-9a-f]{64}::[a-z0-9]{6}\.[a-z0-9]{16}$`).MatchString(tok) {
		t.Fatalf("join token %q", tok)
	}
	id := tok[len(tok)-23 : len(tok)-17]
	sec, err := admin.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+id, metav1.GetOptions{})
	if err != nil || sec.Type != BootstrapTokenType || string(sec.Data["token-id"]) != id || len(sec.Data["expiration"]) == 0 {
		t.Fatalf("bootstrap secret: %v %+v", err, sec)
	}

	// A wrong CA hash is refused before any credential is sent.
	badHash := "K10" + strings.Repeat("0", 64) + tok[67:]
	if _, err := JoinNode(ctx, serverURL, nil, badHash, "node-a", filepath.Join(dir, "bad")); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("wrong hash: %v", err)
	}
	// A wrong secret is refused by the server.
	badSecret := tok[:len(tok)-16] + strings.Repeat("x", 16)
	if _, err := JoinNode(ctx, serverURL, nil, badSecret, "node-a", filepath.Join(dir, "bad")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
	// An expired token is refused.
	expID, expSecret, _ := GenerateBootstrapToken()
	if _, err := admin.CoreV1().Secrets("kube-system").Create(ctx, BootstrapTokenSecret(expID, expSecret, time.Now().Add(-time.Minute), ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expTok, _ := FormatJoinToken(s.PKI().CAPEM, expID, expSecret)
	if _, err := JoinNode(ctx, serverURL, nil, expTok, "node-a", filepath.Join(dir, "bad")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("expired token: %v", err)
	}
	// A bootstrap token is good for joining only.
	bt := tok[strings.Index(tok, "::")+2:]
	btClient, err := kubernetes.NewForConfig(&rest.Config{Host: serverURL, BearerToken: bt,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.PKI().CAPEM}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := btClient.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("bootstrap token listing pods: %v", err)
	}

	// Join node-a with the CA discovered through the hash.
	dirA := filepath.Join(dir, "node-a")
	kcA, err := JoinNode(ctx, serverURL, nil, tok, "node-a", dirA)
	if err != nil {
		t.Fatal(err)
	}
	if kcA != filepath.Join(dirA, NodeKubeconfigFile) {
		t.Fatalf("kubeconfig path %s", kcA)
	}
	cfgA, err := clientcmd.LoadFromFile(kcA)
	if err != nil {
		t.Fatal(err)
	}
	leaf := readCert(t, cfgA.AuthInfos["system:node:node-a"].ClientCertificateData)
	if leaf.Subject.CommonName != "system:node:node-a" || !slices.Equal(leaf.Subject.Organization, []string{"system:nodes"}) {
		t.Fatalf("client cert subject %v", leaf.Subject)
	}
	servingPEM, err := os.ReadFile(filepath.Join(dirA, NodeServingCertFile))
	if err != nil {
		t.Fatal(err)
	}
	serving := readCert(t, servingPEM)
	if _, err := serving.Verify(x509.VerifyOptions{Roots: s.PKI().Pool, DNSName: "127.0.0.1",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("serving cert: %v", err)
	}
	if !slices.Contains(serving.DNSNames, "node-a") || !slices.ContainsFunc(serving.IPAddresses, net.IPv4(127, 0, 0, 1).Equal) {
		t.Fatalf("serving SANs %v %v", serving.DNSNames, serving.IPAddresses)
	}
	if ca, _ := os.ReadFile(filepath.Join(dirA, NodeCAFile)); !bytes.Equal(ca, s.PKI().CAPEM) {
		t.Fatal("ca.crt differs from the cluster CA")
	}
	// A restart reuses the credentials, with or without the token.
	before, _ := os.ReadFile(kcA)
	for _, tk := range []string{"", tok} {
		if _, err := JoinNode(ctx, serverURL, nil, tk, "node-a", dirA); err != nil {
			t.Fatalf("rejoin with %q: %v", tk, err)
		}
		if after, _ := os.ReadFile(kcA); !bytes.Equal(before, after) {
			t.Fatal("rejoin rewrote the kubeconfig")
		}
	}
	// With several servers: credentials from a join through one are
	// reused with the list, whatever its order; a fresh join goes through
	// the first server that answers.
	dead := "https://127.0.0.1:1"
	for _, servers := range [][]string{{dead, serverURL}, {serverURL, dead}} {
		if _, err := JoinNodeVia(ctx, servers, nil, "", "node-a", dirA); err != nil {
			t.Fatalf("rejoin via %v: %v", servers, err)
		}
	}
	if after, _ := os.ReadFile(kcA); !bytes.Equal(before, after) {
		t.Fatal("a rejoin with a server list rewrote the kubeconfig")
	}
	dirC := filepath.Join(dir, "node-c")
	kcC, err := JoinNodeVia(ctx, []string{dead, serverURL}, nil, tok, "node-c", dirC)
	if err != nil {
		t.Fatalf("join via a dead server then a live one: %v", err)
	}
	if cfgC, err := clientcmd.LoadFromFile(kcC); err != nil || cfgC.Clusters["peapod"].Server != serverURL {
		t.Fatalf("node-c's kubeconfig: %v %+v", err, cfgC)
	}
	if _, err := JoinNodeVia(ctx, []string{dead}, nil, tok, "node-d", filepath.Join(dir, "node-d")); err == nil || !strings.Contains(err.Error(), "via "+dead) {
		t.Fatalf("join with no live server: %v", err)
	}
	// A lost serving certificate is renewed with the node's own identity.
	os.Remove(filepath.Join(dirA, NodeServingCertFile))
	if _, err := JoinNode(ctx, serverURL, nil, "", "node-a", dirA); err != nil {
		t.Fatalf("renew serving cert: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirA, NodeServingCertFile)); err != nil {
		t.Fatal(err)
	}
	// Node b gets in-process credentials.
	kcB, err := s.WriteNodeCredentials("node-b", filepath.Join(dir, "node-b"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := clientFor(t, kcA)
	b, _ := clientFor(t, kcB)

	// Nodes register themselves, not each other.
	for _, c := range []struct {
		client kubernetes.Interface
		name   string
	}{{a, "node-a"}, {b, "node-b"}} {
		if _, err := c.client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: c.name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("register %s: %v", c.name, err)
		}
	}
	if _, err := a.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-c"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("node-a creating node-c: %v", err)
	}
	nb, err := a.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nb.Labels = map[string]string{"x": "y"}
	if _, err := a.CoreV1().Nodes().Update(ctx, nb, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("node-a updating node-b: %v", err)
	}
	if _, err := a.CoreV1().Nodes().UpdateStatus(ctx, nb, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("node-a updating node-b status: %v", err)
	}
	na, _ := a.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	na.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := a.CoreV1().Nodes().UpdateStatus(ctx, na, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node-a updating its status: %v", err)
	}
	// Leases: own only.
	lease := func(n string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n, Namespace: NodeLeaseNamespace}}
	}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: NodeLeaseNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := a.CoordinationV1().Leases(NodeLeaseNamespace).Create(ctx, lease("node-a"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("own lease: %v", err)
	}
	if _, err := a.CoordinationV1().Leases(NodeLeaseNamespace).Create(ctx, lease("node-b"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("other lease: %v", err)
	}

	// Pods: each node updates the status of and deletes only its own.
	for _, n := range []string{"sa", "other"} {
		if _, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: n}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkPod := func(name, node string) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node,
			Containers: []corev1.Container{{Name: "c", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "s", MountPath: "/s"}}}},
			Volumes:    []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sa"}}}}}}
		if _, err := admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkPod("pa", "node-a")
	mkPod("pb", "node-b")
	pb, err := a.CoreV1().Pods("default").Get(ctx, "pb", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("node reading a pod: %v", err)
	}
	pb.Status.Phase = corev1.PodFailed
	_, err = a.CoreV1().Pods("default").UpdateStatus(ctx, pb, metav1.UpdateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("node-a updating node-b's pod status: %v", err)
	}
	if !strings.Contains(err.Error(), `User "system:node:node-a" cannot update resource "pods/status"`) || !strings.Contains(err.Error(), "spec.nodeName set to itself") {
		t.Errorf("forbidden message: %v", err)
	}
	if err := a.CoreV1().Pods("default").Delete(ctx, "pb", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("node-a deleting node-b's pod: %v", err)
	}
	pa, _ := a.CoreV1().Pods("default").Get(ctx, "pa", metav1.GetOptions{})
	pa.Status.Phase = corev1.PodRunning
	if _, err := a.CoreV1().Pods("default").UpdateStatus(ctx, pa, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node-a updating its pod status: %v", err)
	}
	if _, err := b.CoreV1().Pods("default").UpdateStatus(ctx, pb, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node-b updating its pod status: %v", err)
	}
	if _, err := a.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "mirror"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("node creating a pod: %v", err)
	}

	// Secrets: only those its pods reference, one at a time.
	if _, err := a.CoreV1().Secrets("default").Get(ctx, "sa", metav1.GetOptions{}); err != nil {
		t.Fatalf("referenced secret: %v", err)
	}
	if _, err := a.CoreV1().Secrets("default").Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("unreferenced secret: %v", err)
	}
	if _, err := a.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing secrets: %v", err)
	}
	if l, err := a.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=sa"}); err != nil || len(l.Items) != 1 {
		t.Fatalf("listing the referenced secret: %v", err)
	}
	// Events are fine.
	if _, err := a.CoreV1().Events("default").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "pa", Namespace: "default"}, Reason: "Started"}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("event: %v", err)
	}
	// Its own pod it may delete.
	if err := a.CoreV1().Pods("default").Delete(ctx, "pa", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatalf("node-a deleting its pod: %v", err)
	}
	// The admin may do anything.
	if err := admin.CoreV1().Pods("default").Delete(ctx, "pb", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}

	// Node credentials cannot obtain another node's certificate.
	if _, err := JoinNode(ctx, serverURL, nil, "", "node-b", dirA); err == nil {
		t.Fatal("node-a's directory produced credentials for node-b without a token")
	}
	credA, err := loadNodeCredentials(dirA, []string{serverURL}, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	err = requestServingCert(ctx, serverURL, s.PKI().CAPEM, &credA.client, nil, "node-b", []string{"127.0.0.1"}, filepath.Join(dir, "steal"))
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("node-a asking for node-b's serving cert: %v", err)
	}
	// Serving certificates may not name anything but the node.
	err = requestServingCert(ctx, serverURL, s.PKI().CAPEM, &credA.client, nil, "node-a", []string{"kubernetes.default"}, filepath.Join(dir, "steal"))
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("serving cert for another name: %v", err)
	}
}
