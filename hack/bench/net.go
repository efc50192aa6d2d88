package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

const (
	floorBridge = "ppbench-br"
	floorNSA    = "ppbench-a"
	floorNSB    = "ppbench-b"
	floorIPA    = "10.220.0.2"
	floorIPB    = "10.220.0.3"
)

// netResult is one pair's throughput and round-trip times.
type netResult struct {
	Gbps float64
	RTT  []time.Duration
}

// measurePair runs iperf3 (server in nsB, client in nsA) and busybox ping
// from nsA to ipB; ns are paths of network namespaces.
func measurePair(ctx context.Context, nsA, nsB, ipB string) (netResult, error) {
	var r netResult
	gbps, err := iperf(ctx, nsA, nsB, ipB, ipB)
	if err != nil {
		return r, err
	}
	r.Gbps = gbps
	pout, err := run(ctx, "nsenter", "--net="+nsA, "/bin/busybox", "ping", "-c", "50", "-i", "0.1", ipB)
	if err != nil {
		return r, err
	}
	for _, line := range strings.Split(pout, "\n") {
		_, after, ok := strings.Cut(line, "time=")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(after), "ms")), 64)
		if err == nil {
			r.RTT = append(r.RTT, time.Duration(v*float64(time.Millisecond)))
		}
	}
	if len(r.RTT) == 0 {
		return r, fmt.Errorf("no ping replies:\n%s", lastLines(pout, 5))
	}
	return r, nil
}

// iperf runs an iperf3 server in nsB on ipB and a 10 s client in nsA to
// target (ipB, or an address translated to it), and returns Gbit/s.
func iperf(ctx context.Context, nsA, nsB, ipB, target string) (float64, error) {
	srv := exec.CommandContext(ctx, "nsenter", "--net="+nsB, "iperf3", "-s", "-1", "-B", ipB)
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var out []byte
	var err error
	for i := 0; i < 50; i++ { // until the server listens
		time.Sleep(100 * time.Millisecond)
		out, err = exec.CommandContext(ctx, "nsenter", "--net="+nsA, "iperf3", "-c", target, "-t", "10", "-J").Output()
		if err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3 client to %s: %w\n%s", target, err, lastLines(string(out), 5))
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// floorNetwork builds two network namespaces joined by veths on a new
// bridge, measures them, and removes them.
func floorNetwork(ctx context.Context) (netResult, error) {
	defer cleanupFloorNetwork()
	cmds := [][]string{
		{"netns", "add", floorNSA},
		{"netns", "add", floorNSB},
		{"link", "add", floorBridge, "type", "bridge"},
		{"link", "set", floorBridge, "up"},
	}
	for i, ns := range []string{floorNSA, floorNSB} {
		host, peer := fmt.Sprintf("ppbench-h%d", i), fmt.Sprintf("ppbench-p%d", i)
		ip := []string{floorIPA, floorIPB}[i]
		cmds = append(cmds,
			[]string{"link", "add", host, "type", "veth", "peer", "name", peer},
			[]string{"link", "set", peer, "netns", ns},
			[]string{"link", "set", host, "master", floorBridge},
			[]string{"link", "set", host, "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", ns, "link", "set", peer, "name", "eth0"},
			[]string{"-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, c := range cmds {
		if _, err := run(ctx, "ip", c...); err != nil {
			return netResult{}, err
		}
	}
	return measurePair(ctx, "/run/netns/"+floorNSA, "/run/netns/"+floorNSB, floorIPB)
}

// cleanupFloorNetwork removes the hand-built namespaces and bridge
// (idempotent; the veths go with the namespaces).
func cleanupFloorNetwork() {
	for _, ns := range []string{floorNSA, floorNSB} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	}
	for _, l := range []string{floorBridge, "ppbench-h0", "ppbench-h1"} {
		if _, err := os.Stat("/sys/class/net/" + l); err == nil {
			_ = exec.Command("ip", "link", "del", l).Run()
		}
	}
}
