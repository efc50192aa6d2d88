package nodeserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	//lint:ignore SA1019 client-go's portforward still takes apimachinery's Dialer
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/utils/exec"

	"github.com/peapod/peapod/internal/runtime"
	"github.com/peapod/peapod/internal/testutil"
)

// executors builds both of kubectl's remotecommand clients for a URL.
func (f *fixture) executors(t *testing.T, u string) map[string]remotecommand.Executor {
	t.Helper()
	spdyExec, err := remotecommand.NewSPDYExecutor(f.rest, "POST", mustURL(t, u))
	if err != nil {
		t.Fatal(err)
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(f.rest, "GET", u)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]remotecommand.Executor{"spdy": spdyExec, "websocket": wsExec}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) execURL(container string, params string, cmd ...string) string {
	q := url.Values{"command": cmd}
	return f.base + "/exec/default/streams/" + container + "?" + q.Encode() + "&" + params
}

func TestExecExitCodeStdinAndTTY(t *testing.T) {
	f := env(t)
	for name := range f.executors(t, f.execURL("web", "output=1", "true")) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
			defer cancel()
			// Output on both streams, and the exit code in the status.
			var out, errb bytes.Buffer
			ex := f.executors(t, f.execURL("web", "output=1&error=1", "sh", "-c", "echo out; echo err >&2; exit 3"))[name]
			err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errb})
			var exitErr utilexec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 3 {
				t.Errorf("exit 3: err = %v, want an exit code 3", err)
			}
			if out.String() != "out\n" || errb.String() != "err\n" {
				t.Errorf("stdout %q stderr %q", out.String(), errb.String())
			}
			// The API's parameter names work too; success has no error.
			out.Reset()
			ex = f.executors(t, f.execURL("web", "stdout=true", "hostname"))[name]
			if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out}); err != nil || out.String() != "streams\n" {
				t.Errorf("hostname: %q, %v", out.String(), err)
			}
			// Stdin reaches the command and its end is EOF.
			out.Reset()
			ex = f.executors(t, f.execURL("web", "input=1&output=1", "sh", "-c", "tr a-z A-Z"))[name]
			if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("hello stdin\n"), Stdout: &out}); err != nil || out.String() != "HELLO STDIN\n" {
				t.Errorf("stdin: %q, %v", out.String(), err)
			}
			// A terminal, sized by the client.
			out.Reset()
			ex = f.executors(t, f.execURL("web", "input=1&output=1&tty=1", "sh", "-c", "sleep 0.3; tty; stty size"))[name]
			sizes := &sizeQueue{sizes: []remotecommand.TerminalSize{{Width: 123, Height: 45}}}
			err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader(""), Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
			if err != nil || !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "45 123") {
				t.Errorf("tty: %q, %v", out.String(), err)
			}
		})
	}
}

// sizeQueue hands out its sizes, then blocks until closed.
type sizeQueue struct {
	mu    sync.Mutex
	sizes []remotecommand.TerminalSize
	done  chan struct{}
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	q.mu.Lock()
	if len(q.sizes) > 0 {
		sz := q.sizes[0]
		q.sizes = q.sizes[1:]
		q.mu.Unlock()
		return &sz
	}
	q.mu.Unlock()
	if q.done != nil {
		<-q.done
	}
	return nil
}

func TestExecErrors(t *testing.T) {
	f := env(t)
	for _, tc := range []struct{ path, want string }{
		{"/exec/default/nosuch/web?command=true&output=1", `pod "nosuch" does not exist`},
		{"/exec/default/streams/nosuch?command=true&output=1", `container "nosuch" not found in pod "streams"`},
		{"/exec/default/streams/web?output=1", "at least one command"},
		{"/exec/default/streams/web?command=true", "at least 1 of stdin, stdout, stderr"},
	} {
		resp, err := f.client.Post(f.base+tc.path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %q, want an error with %q", tc.path, resp.StatusCode, body, tc.want)
		}
	}
}

func TestClientCertificateRequired(t *testing.T) {
	f := env(t)
	for name, certs := range map[string][]tls.Certificate{"none": nil, "untrusted CA": {f.pki.untrustedClient}} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.pki.pool, Certificates: certs}}}
		resp, err := c.Get(f.base + "/containerLogs/default/streams/web")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: got HTTP %d, want the TLS handshake refused", name, resp.StatusCode)
		}
	}
	resp, err := f.client.Get(f.base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("trusted client: %v", err)
	}
	resp.Body.Close()
}

func TestAttachToATerminalShell(t *testing.T) {
	f := env(t)
	u := f.base + "/attach/default/streams/shell?input=1&output=1&tty=1"
	// Detaching leaves the shell running: attach twice, with both clients.
	for i, name := range []string{"websocket", "spdy"} {
		ex := f.executors(t, u)[name]
		stdinR, stdinW := io.Pipe()
		outR, outW := io.Pipe()
		ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
		done := make(chan error, 1)
		sizes := &sizeQueue{sizes: []remotecommand.TerminalSize{{Width: 99, Height: 33}}, done: make(chan struct{})}
		go func() {
			done <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: outW, Tty: true, TerminalSizeQueue: sizes})
			outW.Close()
		}()
		lines := bufio.NewReader(outR)
		var seen strings.Builder
		// Retry the command until its answer shows: the subscription may
		// start after the first keystrokes are consumed.
		want := fmt.Sprintf("answer-%d-42", i)
		deadline := time.Now().Add(15 * time.Second)
		go func() {
			for time.Now().Before(deadline) && !strings.Contains(seenSafe(&seen), want) {
				fmt.Fprintf(stdinW, "echo answer-%d-$((6*7)); stty size\n", i)
				time.Sleep(500 * time.Millisecond)
			}
		}()
		for !strings.Contains(seenSafe(&seen), "33 99") || !strings.Contains(seenSafe(&seen), want) {
			b, err := lines.ReadByte()
			if err != nil {
				t.Fatalf("%s: attach output ended: %v (seen %q)", name, err, seenSafe(&seen))
			}
			appendSafe(&seen, b)
		}
		if i == 0 {
			// Detach: the client's stdin ends; a tty container keeps
			// running.
			stdinW.Close()
		} else {
			// Exit the shell: the container ends and so does the attach.
			fmt.Fprintln(stdinW, "exit")
		}
		go func() { _, _ = io.Copy(io.Discard, outR) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: attach: %v", name, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: attach did not end", name)
		}
		close(sizes.done)
		cancel()
		st := f.container(t, "shell")
		if i == 0 && st.State != runtime.ContainerRunning {
			t.Errorf("after detaching, the shell is %s", st.State)
		}
	}
	st, err := f.rt.WaitContainer(f.ctx, f.container(t, "shell").ID)
	if err != nil || st.ExitCode != 0 {
		t.Errorf("shell after exit: %+v, %v", st, err)
	}
	// The terminal's output was logged as stdout.
	resp, err := f.client.Get(f.base + "/containerLogs/default/streams/shell")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "answer-1-42") {
		t.Errorf("shell log lacks the answer:\n%s", body)
	}
}

var seenMu sync.Mutex

func seenSafe(b *strings.Builder) string {
	seenMu.Lock()
	defer seenMu.Unlock()
	return b.String()
}

func appendSafe(b *strings.Builder, c byte) {
	seenMu.Lock()
	defer seenMu.Unlock()
	b.WriteByte(c)
}

func TestAttachStdinOnce(t *testing.T) {
	f := env(t)
	ex := f.executors(t, f.base+"/attach/default/streams/catter?input=1&output=1&error=1")["spdy"]
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	stdinR, stdinW := io.Pipe()
	var out testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &out, Stderr: io.Discard})
	}()
	// Keep typing until cat echoes: the attach may not be connected yet.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "ping") {
		if time.Now().After(deadline) {
			t.Fatalf("cat never echoed; output %q", out.String())
		}
		fmt.Fprintln(stdinW, "ping")
		time.Sleep(200 * time.Millisecond)
	}
	// The end of the client's stdin closes the container's (stdinOnce):
	// cat ends, the container exits, the attach returns.
	stdinW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("attach did not end after stdin closed")
	}
	if !strings.HasSuffix(out.String(), "cat-done\n") {
		t.Errorf("output %q, want it to end with cat-done", out.String())
	}
	st, err := f.rt.WaitContainer(ctx, f.container(t, "catter").ID)
	if err != nil || st.ExitCode != 0 {
		t.Errorf("catter: %+v %v", st, err)
	}
}

func TestPortForwardIntoThePodNetns(t *testing.T) {
	f := env(t)
	u := mustURL(t, f.base+"/portForward/default/streams")
	tr, up, err := spdy.RoundTripperFor(f.rest)
	if err != nil {
		t.Fatal(err)
	}
	spdyDialer := spdy.NewDialer(up, &http.Client{Transport: tr}, "POST", u)
	tunnelDialer, err := portforward.NewSPDYOverWebsocketDialer(u, f.rest)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]httpstream.Dialer{"spdy": spdyDialer, "websocket-tunnel": tunnelDialer} {
		t.Run(name, func(t *testing.T) {
			stop, ready := make(chan struct{}), make(chan struct{})
			pf, err := portforward.New(d, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- pf.ForwardPorts() }()
			defer func() {
				close(stop)
				<-done
			}()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("port forward: %v", err)
			case <-time.After(15 * time.Second):
				t.Fatal("port forward not ready")
			}
			ports, err := pf.GetPorts()
			if err != nil {
				t.Fatal(err)
			}
			// Twice: each connection is a new stream pair.
			for i := 0; i < 2; i++ {
				var body []byte
				deadline := time.Now().Add(10 * time.Second)
				for {
					resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", ports[0].Local))
					if err == nil {
						body, _ = io.ReadAll(resp.Body)
						resp.Body.Close()
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("GET through the forward: %v", err)
					}
					time.Sleep(200 * time.Millisecond)
				}
				if string(body) != "hello from the pod\n" {
					t.Errorf("GET through the forward = %q", body)
				}
			}
		})
	}
}

var criTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z `)

func (f *fixture) logs(t *testing.T, container, query string) (int, string) {
	t.Helper()
	resp, err := f.client.Get(f.base + "/containerLogs/default/streams/" + container + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// followLines follows a container's log to its end.
func (f *fixture) followLines(t *testing.T, container string) (lines []string, spread time.Duration) {
	t.Helper()
	resp, err := f.client.Get(f.base + "/containerLogs/default/streams/" + container + "?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var first time.Time
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if first.IsZero() {
			first = time.Now()
		}
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines, time.Since(first)
}

func TestLogs(t *testing.T) {
	f := env(t)
	first := f.container(t, "counter")
	// Following the first run (maybe already over) gives all its lines.
	got, _ := f.followLines(t, "counter")
	if len(got) != 20 || got[0] != "run 0 line 1" || got[19] != "run 0 line 20" {
		t.Fatalf("followed %d lines: %q", len(got), got)
	}
	if st := f.container(t, "counter"); st.State != runtime.ContainerExited {
		t.Errorf("follow ended while the counter was %s", st.State)
	}

	code, body := f.logs(t, "counter", "tailLines=3")
	if code != 200 || body != "run 0 line 18\nrun 0 line 19\nrun 0 line 20\n" {
		t.Errorf("tail: %d %q", code, body)
	}
	_, body = f.logs(t, "counter", "limitBytes=10")
	if body != "run 0 lin" && body != "run 0 line"[:10] {
		t.Errorf("limitBytes=10: %q", body)
	}
	_, body = f.logs(t, "counter", "timestamps=true&tailLines=2")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("timestamps: %q", body)
	}
	for i, l := range lines {
		if !criTime.MatchString(l) || !strings.HasSuffix(l, fmt.Sprintf(" run 0 line %d", 19+i)) {
			t.Errorf("timestamped line %q", l)
		}
	}
	ts, _, _ := strings.Cut(lines[1], " ")
	_, body = f.logs(t, "counter", "sinceTime="+url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
	if body != "" {
		t.Errorf("sinceTime in the future: %q", body)
	}
	at, _ := time.Parse(time.RFC3339Nano, ts)
	_, body = f.logs(t, "counter", "sinceSeconds=3600")
	if !strings.HasPrefix(body, "run 0 line 1\n") {
		t.Errorf("sinceSeconds=3600: %q", body)
	}
	if at.IsZero() {
		t.Errorf("bad timestamp %q", ts)
	}

	// No previous run yet.
	code, body = f.logs(t, "counter", "previous=true")
	if code != 400 || !strings.Contains(body, `previous terminated container "counter" in pod "streams" not found`) {
		t.Errorf("previous without one: %d %q", code, body)
	}
	// Restart it as the agent would: a new attempt in the same sandbox,
	// followed live: its lines trickle in over ~2s, and the response ends
	// once it exited.
	cid, err := f.rt.CreateContainer(f.ctx, f.sandboxID, "counter", runtime.ContainerOptions{Attempt: first.Attempt + 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rt.StartContainer(f.ctx, cid); err != nil {
		t.Fatal(err)
	}
	got, spread := f.followLines(t, "counter")
	if len(got) != 20 || got[0] != "run 1 line 1" || got[19] != "run 1 line 20" {
		t.Fatalf("followed the restarted counter: %d lines: %q", len(got), got)
	}
	if spread < time.Second {
		t.Errorf("followed lines arrived within %v: not followed live", spread)
	}
	if st := f.container(t, "counter"); st.State != runtime.ContainerExited || st.ID != cid {
		t.Errorf("follow ended while the counter was %s", st.State)
	}
	_, body = f.logs(t, "counter", "previous=true&tailLines=1")
	if body != "run 0 line 20\n" {
		t.Errorf("previous: %q", body)
	}
	_, body = f.logs(t, "counter", "tailLines=1")
	if body != "run 1 line 20\n" {
		t.Errorf("current after restart: %q", body)
	}
	code, body = f.logs(t, "nosuch", "")
	if code != 400 || !strings.Contains(body, "waiting to start") {
		t.Errorf("unknown container: %d %q", code, body)
	}
	code, _ = f.logs(t, "counter", "tailLines=x")
	if code != 400 {
		t.Errorf("bad tailLines: %d", code)
	}
	// A follow ends when the client goes away.
	ctx, cancel := context.WithCancel(f.ctx)
	req, _ := http.NewRequestWithContext(ctx, "GET", f.base+"/containerLogs/default/streams/web?follow=true", nil)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
}

func TestAttachTerminalUnderCrun(t *testing.T) {
	f := env(t)
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(`
apiVersion: v1
kind: Pod
metadata: {name: crun-shell, namespace: default, uid: crun-shell-uid}
spec:
  containers:
  - {name: shell, image: busybox, command: [sh], stdin: true, tty: true}
`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := obj.(*corev1.Pod)
	id, err := f.rt.StartPod(f.ctx, pod, "crun")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.rt.DeletePod(context.Background(), id, 0); err != nil {
			t.Errorf("delete pod: %v", err)
		}
	})
	ex := f.executors(t, f.base+"/attach/default/crun-shell/shell?stdin=1&stdout=1&tty=1")["websocket"]
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	stdinR, stdinW := io.Pipe()
	var out testutil.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &out, Tty: true})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "crun-says-42") {
		if time.Now().After(deadline) {
			t.Fatalf("no answer from the crun shell; output %q", out.String())
		}
		fmt.Fprintln(stdinW, "echo crun-says-$((6*7))")
		time.Sleep(300 * time.Millisecond)
	}
	fmt.Fprintln(stdinW, "exit 4")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("attach did not end when the shell exited")
	}
	st, err := f.rt.SandboxStatus(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.rt.WaitContainer(ctx, st.Containers[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != runtime.ContainerExited || c.ExitCode != 4 {
		t.Errorf("crun shell: %s exit %d, want Exited 4", c.State, c.ExitCode)
	}
}
