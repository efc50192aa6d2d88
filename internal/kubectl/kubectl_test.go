package kubectl

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/apiserver"
)

func TestMainGetNamespaces(t *testing.T) {
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", dir) // kubectl's discovery cache goes under $HOME/.kube
	ctx, cancel := context.WithCancel(context.Background())
	s, err := apiserver.New(ctx, apiserver.Config{DataDir: dir, Listen: "127.0.0.1:0"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("server not ready")
	}

	var out, errOut bytes.Buffer
	if code := Run([]string{"get", "ns"}, s.Kubeconfig(), strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"NAME", "STATUS", "default", "kube-system", "Active"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// A failing command returns its code instead of exiting the process.
	out.Reset()
	errOut.Reset()
	if code := Run([]string{"get", "pod", "nope"}, s.Kubeconfig(), strings.NewReader(""), &out, &errOut); code != 1 {
		t.Fatalf("get missing pod: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), `pods "nope" not found`) {
		t.Errorf("stderr: %s", errOut.String())
	}

	// Main uses the process streams; an unknown flag exits non-zero.
	if code := Main([]string{"get", "ns", "--no-such-flag"}, s.Kubeconfig()); code == 0 {
		t.Error("unknown flag: exit 0")
	}
}
