package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ConfigMaps, Secrets, the downward API and the service account token
// reach containers as volumes and env, through the node's own credentials.
func TestConfigMapsSecretsDownwardAPIAndTokens(t *testing.T) {
	c := startCluster(t)
	c.must("create", "configmap", "app-config", "--from-literal=greeting=hello", "--from-literal=color=blue")
	c.must("create", "secret", "generic", "app-secret", "--from-literal=password=s3cret")
	c.apply(`
apiVersion: v1
kind: Pod
metadata:
  name: configured
  labels: {tier: demo}
spec:
  volumes:
  - name: config
    configMap: {name: app-config}
  - name: secret
    secret: {secretName: app-secret}
  - name: podinfo
    downwardAPI:
      items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: app-config, key: greeting}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: app-secret, key: password}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: MY_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    envFrom:
    - configMapRef: {name: app-config}
      prefix: CFG_
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: secret, mountPath: /etc/secret, readOnly: true}
    - {name: podinfo, mountPath: /etc/podinfo}
`)
	p := c.waitPod("default", "configured", 60*time.Second, "Running", running)
	checks := map[string]string{
		"cat /etc/config/greeting":                         "hello",
		"cat /etc/secret/password":                         "s3cret",
		"cat /etc/podinfo/labels":                          `tier="demo"`,
		"echo $GREETING $PASSWORD":                         "hello s3cret",
		"echo $POD_IP":                                     p.Status.PodIP,
		"echo $MY_NAME":                                    "configured",
		"echo $CFG_color":                                  "blue",
		"ls /var/run/secrets/kubernetes.io/serviceaccount": "ca.crt\nnamespace\ntoken",
	}
	for cmd, want := range checks {
		if got := c.must("exec", "configured", "--", "sh", "-c", cmd); got != want {
			t.Errorf("%s: got %q, want %q", cmd, got, want)
		}
	}
	// The projected token is one the API accepts, as the pod's service
	// account: a kubeconfig-less kubectl with only the token can read pods.
	token := c.must("exec", "configured", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
	cmd := exec.Command("kubectl", "--kubeconfig", "/dev/null", "--server", "https://"+c.listen,
		"--certificate-authority", filepath.Join(c.dir, "pki", "ca.crt"), "--token", token,
		"get", "pods", "configured", "-o", "name")
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "pod/configured" {
		t.Errorf("the pod's token is not accepted: %v %q", err, out)
	}
}
