// Command svcprobe is the end-to-end tests' client and server for Service
// traffic, run inside busybox pods from a hostPath mount (busybox's own
// wget has no timeouts that work and no TLS 1.2 signature algorithms):
//
//	svcprobe serve PORT [GRACE]   HTTP on PORT answering "<hostname> <client ip>";
//	                              on SIGTERM it keeps serving GRACE (default 0s), then exits
//	svcprobe udp-serve PORT       UDP on PORT answering each datagram with the hostname
//	svcprobe get URL              one GET on a fresh connection, body printed
//	svcprobe repeat N URL         N GETs, each on a fresh connection (and a fresh
//	                              name lookup), the bodies printed; fails on the first error
//	svcprobe connect HOST:PORT    one TCP connect: prints ok, refused or timeout
//	svcprobe loop URL STOPFILE    GETs on fresh connections until STOPFILE exists,
//	                              then prints "ok=N failed=M" and the failures
//	svcprobe udp-ask HOST:PORT SRCPORT   one datagram from SRCPORT, the reply printed
//	svcprobe incluster            in-cluster client-go: the server version and the
//	                              pods of the service account's namespace
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: svcprobe serve|udp-serve|get|repeat|connect|loop|udp-ask|incluster ...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		serve(args)
	case "udp-serve":
		udpServe(args)
	case "get":
		body, err := get(args[0])
		if err != nil {
			fail(err.Error())
		}
		fmt.Print(body)
	case "repeat":
		repeat(args[0], args[1])
	case "connect":
		fmt.Println(connect(args[0]))
	case "loop":
		loop(args[0], args[1])
	case "udp-ask":
		udpAsk(args[0], args[1])
	case "incluster":
		incluster()
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "svcprobe:", msg)
	os.Exit(1)
}

func serve(args []string) {
	grace := time.Duration(0)
	if len(args) > 1 {
		grace, _ = time.ParseDuration(args[1])
	}
	host, _ := os.Hostname()
	ln, err := net.Listen("tcp", ":"+args[0])
	if err != nil {
		fail(err.Error())
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "%s %s\n", host, ip)
	})}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		// Keep serving while the Service's endpoints catch up with the
		// pod's termination, as a preStop sleep would.
		time.Sleep(grace)
		os.Exit(0)
	}()
	_ = srv.Serve(ln)
}

func udpServe(args []string) {
	host, _ := os.Hostname()
	conn, err := net.ListenPacket("udp", ":"+args[0])
	if err != nil {
		fail(err.Error())
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		os.Exit(0)
	}()
	buf := make([]byte, 1500)
	for {
		_, from, err := conn.ReadFrom(buf)
		if err != nil {
			continue
		}
		_, _ = conn.WriteTo([]byte(host), from)
	}
}

var client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), err
}

// repeat asks url n times, so that a test sees which backends a client
// reaches without one kubectl exec per request. Go resolves the name
// anew for every connection (it keeps no cache), so a name is looked up
// n times too.
func repeat(n, url string) {
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		fail(fmt.Sprintf("repeat: count %q: want a positive number", n))
	}
	for i := range count {
		body, err := get(url)
		if err != nil {
			fail(fmt.Sprintf("request %d of %d: %v", i+1, count, err))
		}
		fmt.Print(body)
	}
}

func connect(addr string) string {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case err == nil:
		c.Close()
		return "ok " + took.String()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused " + took.String()
	case os.IsTimeout(err):
		return "timeout " + took.String()
	default:
		return "error " + err.Error()
	}
}

func loop(url, stop string) {
	ok, failed := 0, 0
	var errs []string
	for {
		if _, err := os.Stat(stop); err == nil {
			break
		}
		if _, err := get(url); err != nil {
			failed++
			if len(errs) < 10 {
				errs = append(errs, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
		} else {
			ok++
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("ok=%d failed=%d\n%s\n", ok, failed, strings.Join(errs, "\n"))
}

func udpAsk(addr, srcPort string) {
	p, _ := strconv.Atoi(srcPort)
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		fail(err.Error())
	}
	conn, err := net.DialUDP("udp", &net.UDPAddr{Port: p}, raddr)
	if err != nil {
		fail(err.Error())
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("who")); err != nil {
		fail(err.Error())
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		fail(err.Error())
	}
	fmt.Print(string(buf[:n]))
}

func incluster() {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		fail("in-cluster config: " + err.Error())
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail(err.Error())
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		fail("server version through " + cfg.Host + ": " + err.Error())
	}
	ns, _ := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	pods, err := cs.CoreV1().Pods(string(ns)).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		fail("list pods: " + err.Error())
	}
	fmt.Printf("host=%s version=%s pods=%d\n", cfg.Host, v.GitVersion, len(pods.Items))
}
