package nodeserver

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/peapod/peapod/internal/runtime"
	"github.com/peapod/peapod/internal/runtime/oci"
	"github.com/peapod/peapod/internal/wsbinary"
)

// fakeRuntime is one running pod, default/p, with one container, main,
// whose execs are scripted by their first word:
//
//	line [code]  read one line of stdin, write it to stdout, "to stderr" to stderr, exit code
//	cat          copy stdin to stdout until EOF, exit 0
//	size         print the first terminal size as "WIDTH HEIGHT"
//	boom         the runtime fails
type fakeRuntime struct {
	dir     string
	logPath string
}

func newFakeRuntime(t *testing.T) *fakeRuntime {
	t.Helper()
	dir := t.TempDir()
	f := &fakeRuntime{dir: dir, logPath: filepath.Join(dir, "0.log")}
	if err := os.WriteFile(f.logPath, []byte(criLine("first line")+criLine("second line")), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func criLine(msg string) string {
	return time.Now().UTC().Format(time.RFC3339Nano) + " stdout F " + msg + "\n"
}

func (f *fakeRuntime) ListSandboxes(context.Context) ([]*runtime.SandboxStatus, error) {
	return []*runtime.SandboxStatus{{
		ID: "sb", PodName: "p", PodNamespace: "default", PodUID: "uid", Ready: true, Alive: true,
		Containers: []*runtime.ContainerStatus{{ID: "cid", SandboxID: "sb", Name: "main", State: runtime.ContainerRunning, LogPath: f.logPath}},
	}}, nil
}

func (f *fakeRuntime) WaitContainer(ctx context.Context, _ string) (*runtime.ContainerStatus, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *fakeRuntime) Exec(ctx context.Context, _ string, cmd []string, stdio oci.ExecIO) (int, error) {
	switch cmd[0] {
	case "line":
		line, err := bufio.NewReader(stdio.Stdin).ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("read stdin: %w", err)
		}
		_, _ = io.WriteString(stdio.Stdout, line)
		if stdio.Stderr != nil {
			_, _ = io.WriteString(stdio.Stderr, "to stderr\n")
		}
		code := 0
		if len(cmd) > 1 {
			fmt.Sscan(cmd[1], &code)
		}
		return code, nil
	case "cat":
		_, err := io.Copy(stdio.Stdout, stdio.Stdin)
		return 0, err
	case "size":
		select {
		case sz := <-stdio.Resize:
			fmt.Fprintf(stdio.Stdout, "%d %d\n", sz.Width, sz.Height)
			return 0, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 0, errors.New("runtime exploded")
}

func (f *fakeRuntime) Attach(ctx context.Context, cid string, stdio oci.ExecIO) error {
	_, err := io.Copy(stdio.Stdout, stdio.Stdin)
	return err
}

func (f *fakeRuntime) PortForward(context.Context, string, int32, io.ReadWriteCloser) error {
	return errors.New("not in this test")
}

func (f *fakeRuntime) DataDir() string { return f.dir }

// fakePods is a PodLister.
type fakePods []*corev1.Pod

func (p fakePods) Pods() []*corev1.Pod { return p }

// startFake serves the node server over a fake runtime in plain HTTP.
func startFake(t *testing.T, opts Options) (*fakeRuntime, string) {
	t.Helper()
	rt := newFakeRuntime(t)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(newServer(rt, opts).Handler())
	t.Cleanup(srv.Close)
	return rt, srv.URL
}

// channelClient speaks a remotecommand WebSocket subprotocol's framing.
type channelClient struct {
	t      *testing.T
	conn   *websocket.Conn
	base64 bool
}

func dialChannels(t *testing.T, base, path string, protocols ...string) *channelClient {
	t.Helper()
	conn, resp, err := (&websocket.Dialer{Subprotocols: protocols}).Dial("ws"+strings.TrimPrefix(base, "http")+path, nil)
	if err != nil {
		t.Fatalf("dial %v: %v (%v)", protocols, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	return &channelClient{t: t, conn: conn, base64: strings.Contains(conn.Subprotocol(), "base64")}
}

// send writes data on a channel: a channel byte then the data, or in the
// base64 protocols the channel digit then the data in base64.
func (c *channelClient) send(channel byte, data string) {
	c.t.Helper()
	var err error
	if c.base64 {
		err = c.conn.WriteMessage(websocket.TextMessage, []byte(string('0'+channel)+base64.StdEncoding.EncodeToString([]byte(data))))
	} else {
		err = c.conn.WriteMessage(websocket.BinaryMessage, append([]byte{channel}, data...))
	}
	if err != nil {
		c.t.Fatal(err)
	}
}

// readAll reads until the server closes the connection and returns what
// arrived on each channel; every message must be of the protocol's type.
func (c *channelClient) readAll() map[byte]string {
	c.t.Helper()
	got := map[byte]string{}
	for {
		typ, msg, err := c.conn.ReadMessage()
		if err != nil {
			return got
		}
		if len(msg) == 0 {
			c.t.Fatalf("a message without a channel")
		}
		if c.base64 {
			if typ != websocket.TextMessage {
				c.t.Fatalf("base64 protocol sent message type %d", typ)
			}
			data, err := base64.StdEncoding.DecodeString(string(msg[1:]))
			if err != nil {
				c.t.Fatalf("message %q is not base64: %v", msg, err)
			}
			got[msg[0]-'0'] += string(data)
		} else {
			if typ != websocket.BinaryMessage {
				c.t.Fatalf("binary protocol sent message type %d", typ)
			}
			got[msg[0]] += string(msg[1:])
		}
	}
}

func execPath(params string, cmd ...string) string {
	return "/exec/default/p/main?" + url.Values{"command": cmd}.Encode() + "&" + params
}

func TestExecOverEveryWebSocketSubprotocol(t *testing.T) {
	_, base := startFake(t, Options{})
	for _, tc := range []struct {
		protocol string // "" offers none
		v4       bool   // JSON status on the error channel
	}{
		{"", false},
		{"channel.k8s.io", false},
		{"base64.channel.k8s.io", false},
		{"v4.channel.k8s.io", true},
		{"v4.base64.channel.k8s.io", true},
		{"v5.channel.k8s.io", true},
	} {
		name := tc.protocol
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			var offer []string
			if tc.protocol != "" {
				offer = []string{tc.protocol}
			}
			// A non-zero exit.
			c := dialChannels(t, base, execPath("stdin=1&stdout=1&stderr=1", "line", "3"), offer...)
			if c.conn.Subprotocol() != tc.protocol {
				t.Fatalf("negotiated %q", c.conn.Subprotocol())
			}
			c.send(stdinChannel, "hello\n")
			got := c.readAll()
			if got[stdoutChannel] != "hello\n" || got[stderrChannel] != "to stderr\n" {
				t.Errorf("stdout %q stderr %q", got[stdoutChannel], got[stderrChannel])
			}
			const wantMsg = "command terminated with non-zero exit code: command terminated with exit code 3"
			if tc.v4 {
				var st metav1.Status
				if err := json.Unmarshal([]byte(got[errorChannel]), &st); err != nil {
					t.Fatalf("error channel %q: %v", got[errorChannel], err)
				}
				if st.Status != metav1.StatusFailure || st.Reason != "NonZeroExitCode" || st.Details == nil || len(st.Details.Causes) != 1 ||
					st.Details.Causes[0].Type != "ExitCode" || st.Details.Causes[0].Message != "3" || st.Message != wantMsg {
					t.Errorf("status %+v", st)
				}
			} else if got[errorChannel] != wantMsg {
				t.Errorf("error channel %q, want %q", got[errorChannel], wantMsg)
			}

			// Success: v4 and later say so, earlier ones say nothing.
			c = dialChannels(t, base, execPath("stdin=1&stdout=1", "line"), offer...)
			c.send(stdinChannel, "fine\n")
			got = c.readAll()
			if got[stdoutChannel] != "fine\n" {
				t.Errorf("stdout %q", got[stdoutChannel])
			}
			if want := map[bool]string{true: `{"metadata":{},"status":"Success"}`, false: ""}[tc.v4]; got[errorChannel] != want {
				t.Errorf("error channel after success %q, want %q", got[errorChannel], want)
			}

			// A runtime failure is an internal error, worded as the kubelet's.
			c = dialChannels(t, base, execPath("stdout=1", "boom"), offer...)
			got = c.readAll()
			if !strings.Contains(got[errorChannel], "Internal error occurred: error executing command in container: runtime exploded") {
				t.Errorf("error channel %q", got[errorChannel])
			}

			// The resize channel sizes a terminal.
			c = dialChannels(t, base, execPath("stdin=1&stdout=1&tty=1", "size"), offer...)
			c.send(resizeChannel, `{"Width":123,"Height":45}`)
			if got = c.readAll(); got[stdoutChannel] != "123 45\n" {
				t.Errorf("terminal size %q", got[stdoutChannel])
			}
		})
	}
}

// v5's CLOSE signal ends stdin; the earlier protocols have no way to.
func TestV5CloseSignalEndsStdin(t *testing.T) {
	_, base := startFake(t, Options{})
	c := dialChannels(t, base, execPath("stdin=1&stdout=1", "cat"), "v5.channel.k8s.io")
	c.send(stdinChannel, "all of it")
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{255, stdinChannel}); err != nil {
		t.Fatal(err)
	}
	got := c.readAll()
	if got[stdoutChannel] != "all of it" || got[errorChannel] != `{"metadata":{},"status":"Success"}` {
		t.Errorf("stdout %q status %q", got[stdoutChannel], got[errorChannel])
	}
}

func TestAttachOverWebSocket(t *testing.T) {
	_, base := startFake(t, Options{})
	c := dialChannels(t, base, "/attach/default/p/main?stdin=1&stdout=1", "v4.base64.channel.k8s.io", "v4.channel.k8s.io")
	if c.conn.Subprotocol() != "v4.base64.channel.k8s.io" {
		t.Fatalf("negotiated %q, want the client's first choice", c.conn.Subprotocol())
	}
	c.send(stdinChannel, "attached\n")
	// Closing the connection ends stdin; what was echoed came first.
	_, msg, err := c.conn.ReadMessage()
	for err == nil && len(msg) <= 1 { // the empty "connected" message
		_, msg, err = c.conn.ReadMessage()
	}
	if err != nil || string(msg[:1]) != "1" {
		t.Fatalf("first output %q %v", msg, err)
	}
	if b, _ := base64.StdEncoding.DecodeString(string(msg[1:])); string(b) != "attached\n" {
		t.Errorf("attach echoed %q", b)
	}
}

func TestUnknownSubprotocolRefused(t *testing.T) {
	_, base := startFake(t, Options{})
	_, resp, err := (&websocket.Dialer{Subprotocols: []string{"v9.channel.k8s.io"}}).Dial("ws"+strings.TrimPrefix(base, "http")+execPath("stdout=1", "line"), nil)
	if err == nil {
		t.Fatal("an unknown subprotocol was accepted")
	}
	// x/net/websocket's refusal, as the kubelet's own.
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("response %v, want 403", resp)
	}
}

func TestLogsOverWebSocket(t *testing.T) {
	rt, base := startFake(t, Options{})
	last := "second line" // the log's last line
	for _, protocol := range []string{wsbinary.BinaryProtocol, wsbinary.Base64BinaryProtocol} {
		t.Run(protocol, func(t *testing.T) {
			conn, resp, err := (&websocket.Dialer{Subprotocols: []string{protocol}}).Dial("ws"+strings.TrimPrefix(base, "http")+"/containerLogs/default/p/main?follow=true&tailLines=1", nil)
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			var text string
			readUntil := func(want string) {
				t.Helper()
				for !strings.Contains(text, want) {
					typ, msg, err := conn.ReadMessage()
					if err != nil {
						t.Fatalf("read: %v (so far %q)", err, text)
					}
					if protocol == wsbinary.Base64BinaryProtocol {
						if typ != websocket.TextMessage {
							t.Fatalf("message type %d", typ)
						}
						if msg, err = base64.StdEncoding.DecodeString(string(msg)); err != nil {
							t.Fatal(err)
						}
					}
					text += string(msg)
				}
			}
			readUntil(last + "\n")
			if text != last+"\n" {
				t.Errorf("tailLines=1 gave %q, want %q", text, last+"\n")
			}
			// Followed: a line written now arrives.
			f, err := os.OpenFile(rt.logPath, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteString(criLine("later line " + protocol))
			f.Close()
			last = "later line " + protocol
			readUntil(last + "\n")
		})
	}
}

func TestPodsAndConfigz(t *testing.T) {
	pods := fakePods{
		{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "default"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "default"}},
	}
	_, base := startFake(t, Options{Pods: pods, Configz: &Configz{Port: 10250, PodCIDR: "10.88.0.0/16", CgroupDriver: "cgroupfs"}, StreamIdleTimeout: time.Hour})
	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		return b
	}
	var list corev1.PodList
	if err := json.Unmarshal(get("/pods"), &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "PodList" || list.APIVersion != "v1" || len(list.Items) != 2 || list.Items[0].Name != "a" || list.Items[1].Name != "b" {
		t.Errorf("pod list %+v", list)
	}
	var cfg struct {
		KubeletConfig map[string]any `json:"kubeletconfig"`
	}
	if err := json.Unmarshal(get("/configz"), &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.KubeletConfig
	if c["kind"] != "KubeletConfiguration" || c["port"] != float64(10250) || c["podCIDR"] != "10.88.0.0/16" || c["streamingConnectionIdleTimeout"] != "1h0m0s" {
		t.Errorf("configz %v", c)
	}
	// Without an agent, the list is empty, not missing.
	_, bare := startFake(t, Options{})
	resp, err := http.Get(bare + "/pods")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"items":[]`) {
		t.Errorf("pods without an agent: %s", b)
	}
	if resp, err = http.Get(bare + "/configz"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("configz without a configuration: %v %v", resp, err)
	}
}

// TestProfiles: the kubelet's /debug/pprof/ paths serve this process's
// profiles (what `kubectl get --raw /api/v1/nodes/N/proxy/debug/pprof/heap`
// reads through the API server).
func TestProfiles(t *testing.T) {
	_, base := startFake(t, Options{})
	for path, want := range map[string]string{
		"/debug/pprof/":                  "heap",
		"/debug/pprof/goroutine?debug=1": "goroutine profile: total",
		"/debug/pprof/heap?debug=1":      "heap profile:",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, want %q in %.200q", path, resp.StatusCode, want, b)
		}
	}
	// The binary heap profile is gzipped protobuf, what `go tool pprof` reads.
	resp, err := http.Get(base + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("heap profile is not gzip: %.20q", b)
	}
}
