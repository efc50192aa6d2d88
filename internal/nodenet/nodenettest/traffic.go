package nodenettest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/peapod/peapod/internal/network/netns"
)

// Ping sends one ICMP echo from `from` to `to` (busybox ping, run in
// from's namespace) and waits up to wait for the reply.
func Ping(ctx context.Context, from, to Endpoint, wait time.Duration) error {
	secs := max(1, int(wait/time.Second))
	_, err := run(ctx, from.NetNS, "/bin/busybox", "ping", "-c", "1", "-W", strconv.Itoa(secs), to.IP.String())
	return err
}

// RTTs pings `to` count times from `from`, interval apart, and returns the
// round-trip times of the replies.
func RTTs(ctx context.Context, from, to Endpoint, count int, interval time.Duration) ([]time.Duration, error) {
	out, err := run(ctx, from.NetNS, "/bin/busybox", "ping", "-c", strconv.Itoa(count),
		"-i", strconv.FormatFloat(interval.Seconds(), 'f', 2, 64), to.IP.String())
	if err != nil {
		return nil, err
	}
	var rtts []time.Duration
	for _, line := range strings.Split(out, "\n") {
		_, after, ok := strings.Cut(line, "time=")
		if !ok {
			continue
		}
		ms, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(after), "ms")), 64)
		if err == nil {
			rtts = append(rtts, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	if len(rtts) == 0 {
		return nil, fmt.Errorf("no ping replies from %s:\n%s", to.IP, out)
	}
	return rtts, nil
}

// listen opens a TCP listener on to's address inside to's namespace (the
// socket stays in that namespace whichever thread uses it later).
func listen(to Endpoint, port int) (net.Listener, error) {
	var l net.Listener
	err := netns.Do(to.NetNS, func() error {
		var err error
		l, err = net.Listen("tcp4", netip.AddrPortFrom(to.IP, uint16(port)).String())
		return err
	})
	return l, err
}

// dial connects from `from`'s namespace to addr.
func dial(ctx context.Context, from Endpoint, addr string) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(from.NetNS, func() error {
		var err error
		d := net.Dialer{}
		c, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	return c, err
}

// Exchange opens a TCP connection from `from` to `to`, sends a line, and
// returns the source address the server saw (the proof there is no NAT on
// the way) once the server's answer came back.
func Exchange(ctx context.Context, from, to Endpoint, port int) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := listen(to, port)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listen on %s:%d: %w", to.IP, port, err)
	}
	defer l.Close()
	served := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			served <- err
			return
		}
		_, err = fmt.Fprintf(c, "%s %s", c.RemoteAddr(), line)
		served <- err
	}()
	c, err := dial(ctx, from, netip.AddrPortFrom(to.IP, uint16(port)).String())
	if err != nil {
		l.Close()
		<-served
		return netip.Addr{}, fmt.Errorf("connect %s -> %s:%d: %w", from.IP, to.IP, port, err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return netip.Addr{}, err
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read the answer of %s: %w", to.IP, err)
	}
	if err := <-served; err != nil {
		return netip.Addr{}, err
	}
	seen, rest, _ := strings.Cut(reply, " ")
	if rest != "hello\n" {
		return netip.Addr{}, fmt.Errorf("answer %q does not echo the request", reply)
	}
	ap, err := netip.ParseAddrPort(seen)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("answer %q: %w", reply, err)
	}
	return ap.Addr(), nil
}

// ExchangeUDP sends a datagram from `from` to `to` and returns the source
// address the server saw, once the server's answer (which echoes it) came
// back to the client. The client resends every 200 ms (a datagram may be
// lost while a neighbour resolves) until the answer or ctx's end, at most
// 10 s.
func ExchangeUDP(ctx context.Context, from, to Endpoint, port int) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var srv net.PacketConn
	err := netns.Do(to.NetNS, func() error {
		var err error
		srv, err = net.ListenPacket("udp4", netip.AddrPortFrom(to.IP, uint16(port)).String())
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listen on udp %s:%d: %w", to.IP, port, err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, src, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteTo(fmt.Appendf(nil, "%s %s", src, buf[:n]), src)
		}
	}()
	var c net.Conn
	err = netns.Do(from.NetNS, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "udp4", netip.AddrPortFrom(to.IP, uint16(port)).String())
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("udp %s -> %s:%d: %w", from.IP, to.IP, port, err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	for {
		if _, err := io.WriteString(c, "hello"); err != nil {
			return netip.Addr{}, fmt.Errorf("udp %s -> %s:%d: %w", from.IP, to.IP, port, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			seen, rest, _ := strings.Cut(string(buf[:n]), " ")
			if rest != "hello" {
				return netip.Addr{}, fmt.Errorf("udp answer %q does not echo the request", buf[:n])
			}
			ap, err := netip.ParseAddrPort(seen)
			if err != nil {
				return netip.Addr{}, fmt.Errorf("udp answer %q: %w", buf[:n], err)
			}
			return ap.Addr(), nil
		}
		if ctx.Err() != nil {
			return netip.Addr{}, fmt.Errorf("udp %s -> %s:%d: no answer: %w", from.IP, to.IP, port, err)
		}
	}
}

// Throughput streams TCP from `from` to `to` for d and returns the
// receiver's rate in Gbit/s: iperf3 when it is installed (`hack/setup.sh
// --bench`), else a Go stream (one connection, 128 KiB writes), both with
// both ends on this machine's CPUs. Tool says which one measured.
func Throughput(ctx context.Context, from, to Endpoint, port int, d time.Duration) (gbps float64, tool string, err error) {
	if _, err := exec.LookPath("iperf3"); err == nil {
		g, err := iperf3(ctx, from, to, port, d)
		return g, "iperf3", err
	}
	g, err := goStream(ctx, from, to, port, d)
	return g, "Go TCP stream", err
}

func goStream(ctx context.Context, from, to Endpoint, port int, d time.Duration) (float64, error) {
	l, err := listen(to, port)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	type result struct {
		bytes int64
		took  time.Duration
		err   error
	}
	got := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		start := time.Now()
		n, err := io.Copy(io.Discard, c)
		got <- result{bytes: n, took: time.Since(start), err: err}
	}()
	c, err := dial(ctx, from, netip.AddrPortFrom(to.IP, uint16(port)).String())
	if err != nil {
		l.Close()
		<-got
		return 0, err
	}
	buf := make([]byte, 128<<10)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			<-got
			return 0, err
		}
	}
	c.Close()
	r := <-got
	if r.err != nil {
		return 0, r.err
	}
	return float64(r.bytes*8) / r.took.Seconds() / 1e9, nil
}

func iperf3(ctx context.Context, from, to Endpoint, port int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvDone := make(chan error, 1)
	srvUp := make(chan error, 1)
	go func() {
		srvDone <- netns.Do(to.NetNS, func() error {
			cmd := exec.CommandContext(ctx, "iperf3", "-s", "-1", "--forceflush", "-B", to.IP.String(), "-p", strconv.Itoa(port))
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				srvUp <- err
				return err
			}
			if err := cmd.Start(); err != nil {
				srvUp <- err
				return err
			}
			// iperf3 prints "Server listening on <port>" once it listens.
			sc := bufio.NewScanner(stdout)
			up := false
			for sc.Scan() {
				if !up && strings.Contains(sc.Text(), "Server listening") {
					up = true
					srvUp <- nil
				}
			}
			if !up {
				srvUp <- errors.New("iperf3 server did not start listening")
			}
			return cmd.Wait()
		})
	}()
	if err := <-srvUp; err != nil {
		return 0, err
	}
	out, err := run(ctx, from.NetNS, "iperf3", "-c", to.IP.String(), "-p", strconv.Itoa(port), "-t", strconv.Itoa(max(1, int(d/time.Second))), "-J")
	if err != nil {
		return 0, err
	}
	<-srvDone
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}
