package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPeapodKubectl: the embedded kubectl talks to the cluster whose data
// dir --data-dir names (wherever the flag stands among kubectl's
// arguments), and says which kubeconfig it could not read when the dir
// holds none.
func TestPeapodKubectl(t *testing.T) {
	c := startCluster(t)
	bin := peapodBinary(t)
	for _, args := range [][]string{
		{"kubectl", "--data-dir", c.dir, "get", "nodes", "-o", "name"},
		{"kubectl", "get", "nodes", "--data-dir=" + c.dir, "-o", "name"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "node/e2e-node" {
			t.Errorf("peapod %s: %v %q, want node/e2e-node", strings.Join(args, " "), err, out)
		}
	}
	empty := t.TempDir()
	out, err := exec.Command(bin, "kubectl", "--data-dir", empty, "get", "nodes").CombinedOutput()
	if err == nil || !strings.Contains(string(out), empty+"/admin.kubeconfig") {
		t.Errorf("peapod kubectl --data-dir %s (no cluster there): %v %q, want an error naming %s/admin.kubeconfig", empty, err, out, empty)
	}
}
