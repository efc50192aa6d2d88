package e2e

import (
	"encoding/base64"
	binenc "encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// restConfig is the admin's client configuration.
func (c *cluster) restConfig() *rest.Config {
	c.t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// wsDial opens a WebSocket to the API server as the admin, offering
// protocols (none when empty), as a client library in another language
// would; the connection is closed when the test ends.
func (c *cluster) wsDial(path string, protocols ...string) (*websocket.Conn, *http.Response, error) {
	c.t.Helper()
	tlsCfg, err := rest.TLSConfigFor(c.restConfig())
	if err != nil {
		c.t.Fatal(err)
	}
	conn, resp, err := (&websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: protocols, HandshakeTimeout: 30 * time.Second}).Dial("wss://"+c.listen+path, nil)
	if err == nil {
		c.t.Cleanup(func() { conn.Close() })
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	}
	return conn, resp, err
}

// channelConn speaks a remotecommand or port-forward WebSocket
// subprotocol: binary messages whose first byte is the channel, or (the
// base64 protocols) text messages of the channel digit and base64 data.
type channelConn struct {
	t      *testing.T
	conn   *websocket.Conn
	base64 bool
}

func (c *cluster) channels(t *testing.T, path, protocol string) *channelConn {
	t.Helper()
	var offer []string
	if protocol != "" {
		offer = []string{protocol}
	}
	conn, resp, err := c.with(t).wsDial(path, offer...)
	if err != nil {
		t.Fatalf("dial %s (%s): %v %v", path, protocol, err, resp)
	}
	if conn.Subprotocol() != protocol {
		t.Fatalf("negotiated %q, want %q", conn.Subprotocol(), protocol)
	}
	return &channelConn{t: t, conn: conn, base64: strings.Contains(protocol, "base64")}
}

func (cc *channelConn) send(channel byte, data string) {
	cc.t.Helper()
	var err error
	if cc.base64 {
		err = cc.conn.WriteMessage(websocket.TextMessage, []byte(string('0'+channel)+base64.StdEncoding.EncodeToString([]byte(data))))
	} else {
		err = cc.conn.WriteMessage(websocket.BinaryMessage, append([]byte{channel}, data...))
	}
	if err != nil {
		cc.t.Fatalf("send on channel %d: %v", channel, err)
	}
}

// next returns the next message's channel and data; ok is false once the
// connection is closed.
func (cc *channelConn) next() (channel byte, data string, ok bool) {
	cc.t.Helper()
	typ, msg, err := cc.conn.ReadMessage()
	if err != nil {
		return 0, "", false
	}
	if len(msg) == 0 {
		cc.t.Fatal("a message without a channel")
	}
	if !cc.base64 {
		if typ != websocket.BinaryMessage {
			cc.t.Fatalf("binary protocol sent a message of type %d", typ)
		}
		return msg[0], string(msg[1:]), true
	}
	if typ != websocket.TextMessage {
		cc.t.Fatalf("base64 protocol sent a message of type %d", typ)
	}
	b, err := base64.StdEncoding.DecodeString(string(msg[1:]))
	if err != nil {
		cc.t.Fatalf("message %q is not base64: %v", msg, err)
	}
	return msg[0] - '0', string(b), true
}

// readAll reads until the server closes, collecting each channel's data.
func (cc *channelConn) readAll() map[byte]string {
	cc.t.Helper()
	got := map[byte]string{}
	for {
		ch, data, ok := cc.next()
		if !ok {
			return got
		}
		got[ch] += data
	}
}

// readUntil reads until channel's data contains want, and returns it.
func (cc *channelConn) readUntil(channel byte, want string) string {
	cc.t.Helper()
	var got string
	for !strings.Contains(got, want) {
		ch, data, ok := cc.next()
		if !ok {
			cc.t.Fatalf("closed before %q arrived on channel %d; got %q", want, channel, got)
		}
		if ch == channel {
			got += data
		}
	}
	return got
}

func execQuery(container string, flags string, cmd ...string) string {
	return "container=" + container + "&" + url.Values{"command": cmd}.Encode() + "&" + flags
}

// Every remotecommand WebSocket subprotocol the kubelet and kube-apiserver
// serve works through peapod's API server as clients of each generation
// speak it; pod logs come over WebSocket in both of theirs, and
// port-forward in v4.channel.k8s.io.
func TestStreamingSubprotocols(t *testing.T) {
	c := startCluster(t)
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: streams}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: busybox
    command: ["sh", "-c", "while read line; do echo \"echo:$line\"; done"]
    stdin: true
  - name: logger
    image: busybox
    command: ["sh", "-c", "echo first; echo second; exec sleep 3600"]
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-pf > /www/index.html && exec httpd -f -p 8080 -h /www"]
`)
	c.waitPod("default", "streams", 60*time.Second, "Running", running)
	const pod = "/api/v1/namespaces/default/pods/streams"

	for _, tc := range []struct {
		protocol string
		v4       bool // status as JSON on the error channel, success included
	}{
		{"channel.k8s.io", false},
		{"base64.channel.k8s.io", false},
		{"v4.channel.k8s.io", true},
		{"v4.base64.channel.k8s.io", true},
		{"v5.channel.k8s.io", true},
	} {
		t.Run("exec and attach over "+tc.protocol, func(t *testing.T) {
			// stdin, stdout, stderr and a non-zero exit code.
			cc := c.channels(t, pod+"/exec?"+execQuery("shell", "stdin=true&stdout=true&stderr=true",
				"sh", "-c", `read l; echo "out:$l"; echo err >&2; exit 3`), tc.protocol)
			cc.send(0, "hello\n")
			got := cc.readAll()
			if got[1] != "out:hello\n" || got[2] != "err\n" {
				t.Errorf("stdout %q stderr %q", got[1], got[2])
			}
			if tc.v4 {
				var st metav1.Status
				if err := json.Unmarshal([]byte(got[3]), &st); err != nil {
					t.Fatalf("error channel %q is no Status: %v", got[3], err)
				}
				if st.Status != metav1.StatusFailure || st.Reason != "NonZeroExitCode" || st.Details == nil ||
					len(st.Details.Causes) != 1 || st.Details.Causes[0].Type != "ExitCode" || st.Details.Causes[0].Message != "3" {
					t.Errorf("status %+v", st)
				}
			} else if !strings.HasPrefix(got[3], "command terminated with non-zero exit code") {
				t.Errorf("error channel %q, want the exit message as text", got[3])
			}

			// Success: v4 and later say so, earlier protocols say nothing.
			cc = c.channels(t, pod+"/exec?"+execQuery("shell", "stdout=true", "echo", "fine"), tc.protocol)
			got = cc.readAll()
			want := ""
			if tc.v4 {
				want = `{"metadata":{},"status":"Success"}`
			}
			if got[1] != "fine\n" || got[3] != want {
				t.Errorf("success: stdout %q error channel %q, want %q", got[1], got[3], want)
			}

			// Attach reaches the main process's stdin and stdout.
			cc = c.channels(t, pod+"/attach?container=shell&stdin=true&stdout=true", tc.protocol)
			cc.send(0, "ping "+tc.protocol+"\n")
			cc.readUntil(1, "echo:ping "+tc.protocol+"\n")
		})
	}

	t.Run("the resize channel sizes the terminal", func(t *testing.T) {
		cc := c.channels(t, pod+"/exec?"+execQuery("shell", "stdin=true&stdout=true&tty=true", "sh", "-c", "while read x; do stty size; done"), "v4.base64.channel.k8s.io")
		cc.send(4, `{"Width":100,"Height":30}`)
		// The resize and the lines travel separately: ask until the size shows.
		sizeLine := regexp.MustCompile(`(\d+ \d+)\r?\n`)
		var out string
		for deadline := time.Now().Add(30 * time.Second); ; {
			asked := len(sizeLine.FindAllString(out, -1))
			cc.send(0, "\n")
			for len(sizeLine.FindAllString(out, -1)) == asked {
				ch, data, ok := cc.next()
				if !ok {
					t.Fatalf("closed; output %q", out)
				}
				if ch == 1 {
					out += data
				}
			}
			sizes := sizeLine.FindAllStringSubmatch(out, -1)
			if sizes[len(sizes)-1][1] == "30 100" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stty never reported 30 100; output %q", out)
			}
		}
	})

	t.Run("v5's close signal ends stdin", func(t *testing.T) {
		cc := c.channels(t, pod+"/exec?"+execQuery("shell", "stdin=true&stdout=true", "sh", "-c", "cat; echo end-of-input"), "v5.channel.k8s.io")
		cc.send(0, "all of it\n")
		if err := cc.conn.WriteMessage(websocket.BinaryMessage, []byte{255, 0}); err != nil {
			t.Fatal(err)
		}
		got := cc.readAll()
		if got[1] != "all of it\nend-of-input\n" || got[3] != `{"metadata":{},"status":"Success"}` {
			t.Errorf("stdout %q status %q", got[1], got[3])
		}
	})

	t.Run("logs over WebSocket, following", func(t *testing.T) {
		want := "first\nsecond\n"
		for i, protocol := range []string{"binary.k8s.io", "base64.binary.k8s.io"} {
			conn, resp, err := c.with(t).wsDial(pod+"/log?container=logger&follow=true", protocol)
			if err != nil {
				t.Fatalf("%s: %v %v", protocol, err, resp)
			}
			if conn.Subprotocol() != protocol {
				t.Fatalf("negotiated %q", conn.Subprotocol())
			}
			var text string
			readUntil := func(want string) {
				t.Helper()
				for !strings.Contains(text, want) {
					typ, msg, err := conn.ReadMessage()
					if err != nil {
						t.Fatalf("%s: %v; log so far %q", protocol, err, text)
					}
					if protocol == "base64.binary.k8s.io" {
						if typ != websocket.TextMessage {
							t.Fatalf("message type %d", typ)
						}
						if msg, err = base64.StdEncoding.DecodeString(string(msg)); err != nil {
							t.Fatal(err)
						}
					} else if typ != websocket.BinaryMessage {
						t.Fatalf("message type %d", typ)
					}
					text += string(msg)
				}
			}
			readUntil(want)
			// A line written now (to the container's stdout) streams in.
			marker := []string{"marker-binary", "marker-base64"}[i]
			c.with(t).must("exec", "streams", "-c", "logger", "--", "sh", "-c", "echo "+marker+" > /proc/1/fd/1")
			readUntil(marker + "\n")
			if want += marker + "\n"; text != want {
				t.Errorf("%s: log %q, want %q", protocol, text, want)
			}
			conn.Close()
		}
		// The log options are the HTTP path's.
		conn, resp, err := c.with(t).wsDial(pod+"/log?container=logger&tailLines=1&limitBytes=4", "binary.k8s.io")
		if err != nil {
			t.Fatalf("%v %v", err, resp)
		}
		var text string
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
					t.Errorf("end of log: %v, want a normal close", err)
				}
				break
			}
			text += string(msg)
		}
		if text != "mark" {
			t.Errorf("tailLines=1&limitBytes=4: %q, want %q", text, "mark")
		}
	})

	t.Run("port-forward over WebSocket v4.channel.k8s.io", func(t *testing.T) {
		cc := c.channels(t, pod+"/portforward?ports=8080", "v4.channel.k8s.io")
		// Each channel first carries its port, little-endian.
		for i := 0; i < 2; i++ {
			ch, data, ok := cc.next()
			if !ok || len(data) != 2 || binenc.LittleEndian.Uint16([]byte(data)) != 8080 || ch != byte(i) {
				t.Fatalf("channel %d's first message: %d %q %v", i, ch, data, ok)
			}
		}
		cc.send(0, "GET /index.html HTTP/1.0\r\n\r\n")
		if out := cc.readUntil(0, "hello-pf"); !strings.HasPrefix(out, "HTTP/1.") {
			t.Errorf("response %q", out)
		}
	})

	t.Run("an unknown subprotocol is refused", func(t *testing.T) {
		_, resp, err := c.with(t).wsDial(pod+"/exec?"+execQuery("shell", "stdout=true", "true"), "v9.channel.k8s.io")
		if err == nil || resp == nil || resp.StatusCode < 400 {
			t.Fatalf("accepted: %v %v", err, resp)
		}
	})
}
