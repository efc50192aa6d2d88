package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// terminal is kubectl running on a pseudo-terminal (util-linux script), as
// `-t` needs, with its stdin fed from the test.
type terminal struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *lockedWriter
	done  chan struct{}
	err   error
}

// onTerminal starts kubectl args on a pty; Cleanup kills it.
func (c *cluster) onTerminal(args ...string) *terminal {
	c.t.Helper()
	return c.onTerminalSized(0, 0, args...)
}

// onTerminalSized is onTerminal on a pty of cols x rows (unset if 0).
func (c *cluster) onTerminalSized(cols, rows int, args ...string) *terminal {
	c.t.Helper()
	var quoted []string
	if cols > 0 {
		quoted = append(quoted, fmt.Sprintf("stty cols %d rows %d;", cols, rows))
	}
	for _, w := range append([]string{"kubectl", "--kubeconfig", c.kubeconfig}, args...) {
		quoted = append(quoted, shellQuote(w))
	}
	term := &terminal{out: &lockedWriter{b: &bytes.Buffer{}}, done: make(chan struct{})}
	term.cmd = exec.Command("script", "-qec", strings.Join(quoted, " "), "/dev/null")
	term.cmd.Stdout, term.cmd.Stderr = term.out, term.out
	term.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if term.stdin, err = term.cmd.StdinPipe(); err != nil {
		c.t.Fatal(err)
	}
	if err := term.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { term.err = term.cmd.Wait(); close(term.done) }()
	c.t.Cleanup(term.kill)
	return term
}

// kill ends script and kubectl (one process group); idempotent.
func (term *terminal) kill() {
	select {
	case <-term.done:
		return
	default:
	}
	_ = syscall.Kill(-term.cmd.Process.Pid, syscall.SIGKILL)
	<-term.done
}

// wait waits for kubectl to exit and returns its exit code.
func (term *terminal) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-term.done:
	case <-time.After(timeout):
		term.kill()
		t.Fatalf("kubectl did not exit in %s; output:\n%s", timeout, term.out)
	}
	var exit *exec.ExitError
	if errors.As(term.err, &exit) {
		return exit.ExitCode()
	}
	if term.err != nil {
		t.Fatalf("script: %v", term.err)
	}
	return 0
}

// waitFor waits until the terminal shows re.
func (term *terminal) waitFor(t *testing.T, timeout time.Duration, re *regexp.Regexp) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !re.MatchString(term.out.String()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q; output:\n%s", re, term.out)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// kubectlIn runs kubectl with stdin.
func (c *cluster) kubectlIn(stdin string, args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestInteractive drives kubectl's interactive and streaming commands
// through a real `peapod server`: exec and attach on a tty, run -it --rm,
// logs with --previous, --timestamps, --since and --limit-bytes, and get -w.
func TestInteractive(t *testing.T) {
	c := startCluster(t)
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: sh, image: busybox, command: [sh], stdin: true, tty: true}
`)
	c.waitPod("default", "sleeper", 60*time.Second, "Running", running)
	c.waitPod("default", "shell", 60*time.Second, "Running", running)

	t.Run("exec -it runs on a pts and returns the exit code", func(t *testing.T) {
		c := c.with(t)
		term := c.onTerminal("exec", "-it", "sleeper", "--", "sh", "-c", "tty; exit 3")
		term.stdin.Close()
		if code := term.wait(t, 30*time.Second); code != 3 {
			t.Errorf("kubectl exec -it exited %d, want 3; output:\n%s", code, term.out)
		}
		if !regexp.MustCompile(`/dev/pts/\d+`).MatchString(term.out.String()) {
			t.Errorf("tty inside kubectl exec -it printed no /dev/pts device:\n%s", term.out)
		}
		// Ctrl-C interrupts the command in the container, not kubectl.
		term = c.onTerminal("exec", "-it", "sleeper", "--", "sh")
		fmt.Fprint(term.stdin, "echo ready-$((1+1))\n") // kubectl owns the terminal once this answers
		term.waitFor(t, 20*time.Second, regexp.MustCompile(`ready-2`))
		fmt.Fprint(term.stdin, "sleep 300\n")
		time.Sleep(500 * time.Millisecond)
		fmt.Fprint(term.stdin, "\x03")
		time.Sleep(200 * time.Millisecond)
		fmt.Fprint(term.stdin, "echo after-$((6*7)); exit 9\n")
		if code := term.wait(t, 20*time.Second); code != 9 || !strings.Contains(term.out.String(), "after-42") {
			t.Errorf("exec -it sh after Ctrl-C: exit %d, want 9; output %q", code, term.out)
		}
		// The terminal's size reaches the container's tty.
		term = c.onTerminalSized(123, 45, "exec", "-it", "sleeper", "--", "stty", "size")
		term.stdin.Close()
		if code := term.wait(t, 30*time.Second); code != 0 || !strings.Contains(term.out.String(), "45 123") {
			t.Errorf("stty size in kubectl exec -it on a 123x45 terminal: exit %d, %q", code, term.out)
		}
		// Without -t there is no terminal, and the code still comes back.
		out, err := c.kubectl("exec", "-i", "sleeper", "--", "sh", "-c", "tty; exit 5")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 5 || !strings.Contains(out, "not a tty") {
			t.Errorf("kubectl exec -i: %v %q", err, out)
		}
	})

	t.Run("exec over WebSocket and over SPDY", func(t *testing.T) {
		c := c.with(t)
		for _, tc := range []struct {
			websockets string
			want       string // in kubectl -v=8's trace
		}{{"true", "v5.channel.k8s.io"}, {"false", "SPDY/3.1"}} {
			env := []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + tc.websockets, "KUBECTL_PORT_FORWARD_WEBSOCKETS=" + tc.websockets}
			cmd := exec.Command("kubectl", "--kubeconfig", c.kubeconfig, "-v=8", "exec", "-i", "sleeper", "--", "sh", "-c", "cat; echo; echo err >&2; exit 4")
			cmd.Env = append(os.Environ(), env...)
			cmd.Stdin = strings.NewReader("in")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 4 || stdout.String() != "in\n" || !strings.Contains(stderr.String(), "err\n") {
				t.Errorf("exec with websockets=%s: %v stdout %q stderr tail %q", tc.websockets, err, stdout.String(), tail(stderr.String(), 2000))
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exec with websockets=%s did not negotiate %s:\n%s", tc.websockets, tc.want, tail(stderr.String(), 3000))
			}
		}
	})

	t.Run("attach -it reaches the shell and leaves it running", func(t *testing.T) {
		c := c.with(t)
		term := c.onTerminal("attach", "-it", "shell", "-c", "sh")
		time.Sleep(time.Second)
		fmt.Fprint(term.stdin, "keep=kept; echo marker$((40+2))\n")
		term.waitFor(t, 20*time.Second, regexp.MustCompile(`marker42`))
		fmt.Fprint(term.stdin, "tty\n")
		term.waitFor(t, 10*time.Second, regexp.MustCompile(`/dev/pts/\d+`))
		term.kill()

		// A new attach resizes the container's terminal to its own.
		term = c.onTerminalSized(100, 30, "attach", "-it", "shell", "-c", "sh")
		time.Sleep(time.Second)
		fmt.Fprint(term.stdin, "stty size\n")
		term.waitFor(t, 20*time.Second, regexp.MustCompile(`30 100`))
		term.kill()

		// Detaching leaves the shell and its state: attach again.
		term = c.onTerminal("attach", "-it", "shell", "-c", "sh")
		time.Sleep(time.Second)
		fmt.Fprint(term.stdin, "echo again-$keep\n")
		term.waitFor(t, 20*time.Second, regexp.MustCompile(`again-kept`))
		term.kill()
		if p := c.pod("default", "shell"); !running(p) || p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("shell after detaching: %+v", p.Status)
		}

		// Ctrl-C reaches the shell's foreground job through the tty, not
		// kubectl; exit ends the container, and with it the attach.
		term = c.onTerminal("attach", "-it", "shell", "-c", "sh")
		time.Sleep(time.Second)
		fmt.Fprint(term.stdin, "echo ready-$((1+1))\n")
		term.waitFor(t, 20*time.Second, regexp.MustCompile(`ready-2`))
		fmt.Fprint(term.stdin, "sleep 300; echo slept\n")
		time.Sleep(500 * time.Millisecond)
		fmt.Fprint(term.stdin, "\x03")
		time.Sleep(200 * time.Millisecond)
		fmt.Fprint(term.stdin, "echo interrupted-$keep\n")
		term.waitFor(t, 10*time.Second, regexp.MustCompile(`interrupted-kept`))
		if strings.Contains(term.out.String(), "\nslept") {
			t.Errorf("sleep was not interrupted:\n%s", term.out)
		}
		fmt.Fprint(term.stdin, "exit 0\n")
		term.wait(t, 30*time.Second)
		c.waitPod("default", "shell", 60*time.Second, "restarted", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount == 1
		})
	})

	t.Run("run -it --rm prints and deletes the pod", func(t *testing.T) {
		c := c.with(t)
		term := c.onTerminal("run", "-it", "--rm", "--restart=Never", "--image=busybox", "x", "--", "sh", "-c", "echo hi")
		term.stdin.Close()
		if code := term.wait(t, 90*time.Second); code != 0 {
			t.Errorf("kubectl run -it --rm exited %d:\n%s", code, term.out)
		}
		out := term.out.String()
		if !regexp.MustCompile(`(?m)^hi\r*$`).MatchString(out) || !strings.Contains(out, `pod "x" deleted`) {
			t.Errorf("kubectl run -it --rm printed %q", out)
		}
		c.eventually(30*time.Second, func() error {
			_, err := c.client.CoreV1().Pods("default").Get(context.Background(), "x", metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod x still there after run --rm: %v", err)
			}
			return nil
		})
	})

	t.Run("stdin without a tty: exec -i, run -i --rm, attach -i", func(t *testing.T) {
		c := c.with(t)
		data := strings.Repeat("0123456789abcdef", 64*1024) // 1 MiB
		if out, err := c.kubectlIn(data, "exec", "-i", "sleeper", "--", "sh", "-c", "wc -c; exit 0"); err != nil || out != "1048576" {
			t.Errorf("kubectl exec -i of 1 MiB: %v %q", err, out)
		}
		if out, err := c.kubectlIn("from stdin\n", "run", "-i", "--rm", "--restart=Never", "--image=busybox", "catter", "--", "sh", "-c", "cat; echo done"); err != nil ||
			!strings.Contains(out, "from stdin\ndone") || !strings.Contains(out, `pod "catter" deleted`) {
			t.Errorf("kubectl run -i --rm with stdin: %v %q", err, out)
		}
		// An interactive shell started by run -it, driven over the terminal.
		term := c.onTerminal("run", "-it", "--rm", "--restart=Never", "--image=busybox", "repl", "--", "sh")
		fmt.Fprint(term.stdin, "echo sum=$((20+22)); exit 7\n")
		code := term.wait(t, 90*time.Second)
		if code != 7 || !strings.Contains(term.out.String(), "sum=42") || !strings.Contains(term.out.String(), `pod "repl" deleted`) {
			t.Errorf("kubectl run -it sh: exit %d, want 7; output %q", code, term.out)
		}
		// A container with stdin but no tty, attached with -i.
		c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: main, image: busybox, command: [sh, -c, "while read l; do echo got-$l; done"], stdin: true}
`)
		c.waitPod("default", "reader", 60*time.Second, "Running", running)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		att := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "attach", "-i", "reader")
		in, _ := att.StdinPipe()
		outPipe, _ := att.StdoutPipe()
		if err := att.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = att.Wait() }()
		sc := bufio.NewScanner(outPipe)
		lines := make(chan string, 16)
		go func() {
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		fmt.Fprintln(in, "ping")
		for got := ""; got != "got-ping"; {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("kubectl attach -i ended before the reply")
				}
				got = l
			case <-ctx.Done():
				t.Fatal("kubectl attach -i: no reply to ping")
			}
		}
		if out := c.must("logs", "reader"); out != "got-ping" {
			t.Errorf("logs of the attached container: %q", out)
		}
	})

	t.Run("port-forward carries parallel connections over WebSocket and SPDY", func(t *testing.T) {
		c := c.with(t)
		c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "mkdir /www; head -c 3000000 /dev/zero | tr '\\0' x > /www/big; echo small > /www/small; exec httpd -f -p 8080 -h /www"]
`)
		c.waitPod("default", "web", 60*time.Second, "Running", running)
		for _, tc := range []struct {
			websockets string
			want       string // in kubectl -v=8's trace
		}{{"true", "tunneling connection"}, {"false", "Upgrade: SPDY/3.1"}} {
			websockets := tc.websockets
			local := strings.Split(freeAddr(t), ":")[1]
			ctx, cancel := context.WithCancel(context.Background())
			pf := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "-v=8", "port-forward", "pod/web", local+":8080")
			pf.Env = append(os.Environ(), "KUBECTL_PORT_FORWARD_WEBSOCKETS="+websockets)
			pfOut, _ := pf.StdoutPipe()
			trace := &lockedWriter{b: &bytes.Buffer{}}
			pf.Stderr = trace
			if err := pf.Start(); err != nil {
				t.Fatal(err)
			}
			stop := func() { cancel(); _ = pf.Wait() }
			if line, _ := bufio.NewReader(pfOut).ReadString('\n'); !strings.Contains(line, "Forwarding from") {
				stop()
				t.Fatalf("port-forward says %q\n%s", line, tail(trace.String(), 3000))
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					path, size := "/small", 6
					if i%2 == 0 {
						path, size = "/big", 3000000
					}
					resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://127.0.0.1:" + local + path)
					if err != nil {
						errs <- err
						return
					}
					defer resp.Body.Close()
					n, err := io.Copy(io.Discard, resp.Body)
					if err != nil || n != int64(size) {
						errs <- fmt.Errorf("GET %s: %d bytes, %v", path, n, err)
					}
				}(i)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("through port-forward (websockets=%s): %v", websockets, err)
			}
			stop()
			if !strings.Contains(trace.String(), tc.want) {
				t.Errorf("port-forward with websockets=%s: no %q in the trace:\n%s", websockets, tc.want, tail(trace.String(), 3000))
			}
		}
	})

	t.Run("logs --previous, --timestamps, --since, --limit-bytes", func(t *testing.T) {
		c := c.with(t)
		c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: state, emptyDir: {}}]
  containers:
  - name: main
    image: busybox
    volumeMounts: [{name: state, mountPath: /state}]
    command:
    - sh
    - -c
    - |
      if [ ! -e /state/once ]; then touch /state/once; echo first run; exit 1; fi
      i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done
`)
		c.waitPod("default", "talker", 90*time.Second, "restarted and Running", func(p *corev1.Pod) bool {
			return running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
		})
		if out := c.must("logs", "talker", "--previous"); out != "first run" {
			t.Errorf("logs --previous: %q", out)
		}
		if out := c.must("logs", "talker", "-p", "-c", "main", "--timestamps"); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z first run$`).MatchString(out) {
			t.Errorf("logs --previous --timestamps: %q", out)
		}
		time.Sleep(3 * time.Second)
		all := strings.Split(c.must("logs", "talker"), "\n")
		if len(all) < 10 || all[0] != "line 0" {
			t.Fatalf("logs after 3 s: %q", all)
		}
		for _, l := range all {
			if l == "first run" {
				t.Errorf("logs of the current container show the previous one's: %q", all)
			}
		}
		stamped := strings.Split(c.must("logs", "talker", "--timestamps", "--tail=3"), "\n")
		stampRE := regexp.MustCompile(`^(\S+) line \d+$`)
		for _, l := range stamped {
			m := stampRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("logs --timestamps line %q", l)
			}
			ts, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < -time.Minute {
				t.Errorf("logs --timestamps stamp %q: %v", m[1], err)
			}
		}
		recent := strings.Split(c.must("logs", "talker", "--since=1s"), "\n")
		if len(recent) == 0 || len(recent) > 8 || recent[0] == "line 0" || !strings.HasPrefix(recent[0], "line ") {
			t.Errorf("logs --since=1s (of %d lines): %q", len(all), recent)
		}
		if out := c.must("logs", "talker", "--limit-bytes=10"); out != "line 0\nlin" {
			t.Errorf("logs --limit-bytes=10: %q", out)
		}
		// --since-time too: the API carries it with second precision
		// (metav1.Time), so the logs start at the first line of that second.
		stampedAll := strings.Split(c.must("logs", "talker", "--timestamps"), "\n")
		pick := stampedAll[len(stampedAll)-4]
		picked, err := time.Parse(time.RFC3339Nano, strings.Fields(pick)[0])
		if err != nil {
			t.Fatal(err)
		}
		since := picked.Truncate(time.Second)
		want := ""
		for _, l := range stampedAll {
			if ts, err := time.Parse(time.RFC3339Nano, strings.Fields(l)[0]); err == nil && !ts.Before(since) {
				want = strings.SplitN(l, " ", 2)[1]
				break
			}
		}
		got := strings.Split(c.must("logs", "talker", "--since-time="+since.Format(time.RFC3339)), "\n")
		if got[0] != want {
			t.Errorf("logs --since-time=%s starts %q, want %q", since.Format(time.RFC3339), got[:min(3, len(got))], want)
		}
	})

	t.Run("logs -f ends with the container; errors as Kubernetes words them", func(t *testing.T) {
		c := c.with(t)
		c.must("run", "brief", "--restart=Never", "--image=busybox", "--", "sh", "-c", "echo a; sleep 2; echo b")
		c.waitPod("default", "brief", 60*time.Second, "Running", running)
		start := time.Now()
		if out := c.must("logs", "-f", "brief"); out != "a\nb" {
			t.Errorf("logs -f of a container that ends: %q", out)
		}
		if time.Since(start) > 20*time.Second {
			t.Errorf("logs -f took %s to end", time.Since(start))
		}
		c.waitPod("default", "brief", 30*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		if out := c.must("logs", "brief"); out != "a\nb" {
			t.Errorf("logs of a finished pod: %q", out)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"logs", "sleeper", "--previous"}, `previous terminated container "main" in pod "sleeper" not found`},
			{[]string{"logs", "sleeper", "-c", "nope"}, `container nope is not valid for pod sleeper`},
			{[]string{"exec", "sleeper", "-c", "nope", "--", "true"}, `container nope is not valid for pod sleeper`},
			{[]string{"exec", "brief", "--", "true"}, `cannot exec into a container in a completed pod; current phase is Succeeded`},
			{[]string{"exec", "sleeper", "--", "nosuchcmd"}, `nosuchcmd`},
		} {
			out, err := c.kubectl(tc.args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("kubectl %s: %v %q, want an error with %q", strings.Join(tc.args, " "), err, out, tc.want)
			}
		}
	})

	t.Run("get -w sees Pending then Running", func(t *testing.T) {
		c := c.with(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "get", "pods", "-w", "--field-selector=metadata.name=watched")
		stdout, err := w.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = w.Wait() }()
		var mu sync.Mutex
		var lines []string
		seen := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				mu.Lock()
				lines = append(lines, sc.Text())
				mu.Unlock()
				if strings.Contains(sc.Text(), "Running") {
					close(seen)
					return
				}
			}
		}()
		time.Sleep(time.Second) // let the watch start
		c.must("run", "watched", "--image=busybox", "--", "sleep", "3600")
		select {
		case <-seen:
		case <-time.After(60 * time.Second):
		}
		mu.Lock()
		defer mu.Unlock()
		pending, runningAt := -1, -1
		for i, l := range lines {
			if !strings.HasPrefix(l, "watched ") {
				continue
			}
			if strings.Contains(l, "Pending") && pending < 0 {
				pending = i
			}
			if strings.Contains(l, "Running") && strings.Contains(l, "1/1") {
				runningAt = i
			}
		}
		if pending < 0 || runningAt < pending {
			t.Errorf("kubectl get -w did not show Pending then Running:\n%s", strings.Join(lines, "\n"))
		}
		t.Logf("kubectl get -w:\n%s", strings.Join(lines, "\n"))
	})
}
