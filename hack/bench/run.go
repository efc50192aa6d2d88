package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// peapodRuns runs every peapod measurement on one `peapod server` whose
// default runtime is rt. With crun only pod start is measured (optional).
func (b *bench) peapodRuns(ctx context.Context, rt string) {
	logf("peapod (%s): starting peapod server", rt)
	c, err := startCluster(ctx, b.peapod, b.busybox, "--default-runtime", rt)
	defer c.stop()
	if err != nil {
		b.r.errorf("peapod server (%s): %v", rt, err)
		return
	}
	optional := rt != "runc"
	add := func(x row) {
		if optional {
			b.r.Optional = append(b.r.Optional, x)
		} else {
			b.r.add(x)
		}
	}
	section := func(name string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		logf("peapod (%s): %s", rt, name)
		if err := f(); err != nil {
			b.r.errorf("peapod %s (%s): %v", name, rt, err)
			logf("peapod server log (tail):\n%s", c.tail())
		}
		if err := c.deleteAll(ctx); err != nil {
			b.r.errorf("peapod %s (%s): cleanup: %v", name, rt, err)
		}
	}

	section("pod start, one at a time", func() error {
		if err := c.namespace(ctx, "seq"); err != nil {
			return err
		}
		took, err := startOneByOne(ctx, c.client, "seq", "seq", b.sz.OneByOne)
		if err != nil {
			return err
		}
		// The profile comes from a second, unmeasured series: perf
		// following every process the server starts slows them down.
		if prof := b.startProfile(c, optional); prof != nil {
			_, err := startOneByOne(ctx, c.client, "seq", "prof", b.sz.Profiled)
			b.r.Profile = prof.stop()
			if err != nil {
				return err
			}
		}
		podAnchor := b.podSeqRunc
		if rt == "crun" {
			b.seqCrun = took
			podAnchor = b.podSeqCrun
		} else {
			b.seqRunc = took
		}
		add(row{Section: "pod start", What: fmt.Sprintf("one at a time, client-go create → Running with IP, %s, n=%d", rt, len(took)), Unit: "ms",
			P50: percentile(took, .5), P99: percentile(took, .99),
			Anchor: fmt.Sprintf("podman pod create + run -d --pod (%s)", rt), AP50: percentile(podAnchor, .5), AP99: percentile(podAnchor, .99)})
		add(row{Section: "pod start", What: fmt.Sprintf("one at a time, %s", rt), Unit: "ms",
			P50: percentile(took, .5), P99: percentile(took, .99),
			Anchor: fmt.Sprintf("floor: `%s run -d`", rt), AP50: percentile(floorTook[rt], .5), AP99: percentile(floorTook[rt], .99)})
		return nil
	})

	section("burst", func() error {
		if err := c.namespace(ctx, "burst"); err != nil {
			return err
		}
		all, took, err := burst(ctx, c, "burst", "burst", b.sz.Burst)
		if err != nil {
			return err
		}
		podAll, podTook := nan(), []time.Duration(nil)
		if rt == "runc" {
			b.burstAll = all
			podAll, podTook = ms(podmanBurst.All), podmanBurst.Took
		} else {
			b.burstAllCrun = all
		}
		add(row{Section: "pod start", What: fmt.Sprintf("burst of %d, all Running, %s", b.sz.Burst, rt), Unit: "ms",
			P50: ms(all), P99: nan(), Anchor: "podman, same burst (runc)", AP50: podAll, AP99: nan()})
		add(row{Section: "pod start", What: fmt.Sprintf("burst of %d, per pod, %s", b.sz.Burst, rt), Unit: "ms",
			P50: percentile(took, .5), P99: percentile(took, .99), Anchor: "podman, same burst (runc)",
			AP50: percentile(podTook, .5), AP99: percentile(podTook, .99)})
		if optional {
			return nil
		}
		time.Sleep(3 * time.Second) // let the start-up's status writes settle
		pct, err := processCPU(ctx, b.sz.CPUWindow, c.pid())
		if err != nil {
			return err
		}
		b.cpuPct = pct
		b.have["cpu"] = true
		add(row{Section: "node", What: fmt.Sprintf("peapod server CPU with %d idle pods, over %s", b.sz.Burst, b.sz.CPUWindow), Unit: "% of a core",
			P50: pct, P99: nan(), Anchor: fmt.Sprintf("podman: conmon + catatonit of %d idle pods", b.sz.Burst), AP50: podmanCPU, AP99: nan()})
		td, err := teardown(ctx, c, "burst")
		if err != nil {
			return err
		}
		b.teardown = td
		b.have["teardown"] = true
		add(row{Section: "node", What: fmt.Sprintf("teardown of %d pods, every resource released", b.sz.Burst), Unit: "ms",
			P50: ms(td), P99: nan(), Anchor: fmt.Sprintf("podman pod rm -f -t 0 of %d pods", b.sz.Burst), AP50: msOrNaN(podmanTeardown), AP99: nan()})
		return nil
	})
	if optional {
		return
	}

	section("kubectl apply", func() error {
		if err := c.namespace(ctx, "apply"); err != nil {
			return err
		}
		took, err := kubectlApply(ctx, c, "apply", b.sz.Apply)
		if err != nil {
			return err
		}
		b.apply = took
		add(row{Section: "pod start", What: fmt.Sprintf("`kubectl apply -f` → Running with IP, n=%d", len(took)), Unit: "ms",
			P50: percentile(took, .5), P99: percentile(took, .99), Anchor: "podman pod create + run -d --pod (runc)",
			AP50: percentile(b.podSeqRunc, .5), AP99: percentile(b.podSeqRunc, .99)})
		return nil
	})

	section("density", func() error {
		if err := c.namespace(ctx, "dense"); err != nil {
			return err
		}
		if err := c.raiseMaxPods(ctx, int64(b.sz.Density+20)); err != nil {
			return err
		}
		d, err := density(ctx, c, "dense", b.sz.Density)
		if err != nil {
			return err
		}
		b.perPodKiB = d.perPodKiB()
		b.have["density"] = true
		add(row{Section: "node", What: fmt.Sprintf("memory kept per running pod, %d pods (pause %.0f KiB + server growth %.0f KiB per pod)",
			d.Pods, float64(d.PauseKiB)/float64(d.Pods), float64(d.GrowthKiB)/float64(d.Pods)), Unit: "MiB RSS",
			P50: b.perPodKiB / 1024, P99: nan(), Anchor: fmt.Sprintf("podman: conmon + catatonit (%d processes for %d pods)", podmanMonitors, b.sz.Density),
			AP50: b.podmanPerPodKiB / 1024, AP99: nan()})

		return nil
	})

	section("pod network", func() error {
		if err := c.namespace(ctx, "net"); err != nil {
			return err
		}
		if _, err := startOneByOne(ctx, c.client, "net", "net", 2); err != nil {
			return err
		}
		sbs, err := c.sandboxes(ctx)
		if err != nil {
			return err
		}
		var pair []sandbox
		for _, sb := range sbs {
			if sb.PodNamespace == "net" && len(sb.IPs) > 0 && len(pair) < 2 {
				pair = append(pair, sb)
			}
		}
		if len(pair) < 2 {
			return fmt.Errorf("pod network: fewer than two pods with an IP")
		}
		if b.pod, err = measurePair(ctx, pair[0].NetNSPath, pair[1].NetNSPath, pair[1].IPs[0]); err != nil {
			return fmt.Errorf("pod network: %w", err)
		}
		logf("floor: hand-built netns pair (iperf3 10 s, ping)")
		if b.floor, err = floorNetwork(ctx); err != nil {
			return fmt.Errorf("floor network: %w", err)
		}
		b.have["net"] = true
		add(row{Section: "network", What: "pod → pod TCP throughput (iperf3, 10 s, 1 stream)", Unit: "Gbit/s",
			P50: b.pod.Gbps, P99: nan(), Anchor: "floor: hand-built netns pair on veth + bridge", AP50: b.floor.Gbps, AP99: nan()})
		add(row{Section: "network", What: fmt.Sprintf("pod → pod ping RTT, n=%d", len(b.pod.RTT)), Unit: "ms",
			P50: percentile(b.pod.RTT, .5), P99: percentile(b.pod.RTT, .99), Anchor: "floor: hand-built netns pair on veth + bridge",
			AP50: percentile(b.floor.RTT, .5), AP99: percentile(b.floor.RTT, .99)})
		return nil
	})

	section("cluster DNS", func() error {
		if err := c.namespace(ctx, "dnsb"); err != nil {
			return err
		}
		r, err := measureDNS(ctx, c, "dnsb", b.sz.DNSWindow, b.sz.DNSServices)
		if err != nil {
			return err
		}
		b.dns = r
		b.have["dns"] = true
		b.dnsRows(add)
		return nil
	})

	section("services", func() error {
		r, err := services(ctx, c, b.sz.Services, b.sz.ServiceEndpoints, b.sz.OneMore)
		if err != nil {
			return err
		}
		b.svc = r
		b.have["svc"] = true
		for _, x := range serviceRows(r) {
			add(x)
		}
		return nil
	})

	section("control plane", func() error {
		if err := c.namespace(ctx, "cp"); err != nil {
			return err
		}
		r, err := controlPlane(ctx, c, "cp", b.sz.Pending, b.sz.Watches)
		if err != nil {
			return err
		}
		b.cp = r
		b.have["cp"] = true
		add(row{Section: "control plane", What: fmt.Sprintf("pod creates through client-go, 16 workers, %d pods", b.sz.Pending), Unit: "creates/s",
			P50: r.CreatesPerSec, P99: nan(), Anchor: "target (issue 3)", AP50: 500, AP99: nan()})
		add(row{Section: "control plane", What: fmt.Sprintf("`kubectl get pods` with %d pods, n=%d", b.sz.Pending, len(r.KubectlGet)), Unit: "ms",
			P50: percentile(r.KubectlGet, .5), P99: nan(), Anchor: "target (issue 3)", AP50: 300, AP99: nan()})
		add(row{Section: "control plane", What: fmt.Sprintf("watch delivery, write start → client-go event, n=%d", len(r.Watch)), Unit: "ms",
			P50: percentile(r.Watch, .5), P99: percentile(r.Watch, .99), Anchor: "target (issue 3)", AP50: 10, AP99: nan()})
		return nil
	})
}

func msOrNaN(d time.Duration) float64 {
	if d == 0 {
		return math.NaN()
	}
	return ms(d)
}

// perfRecord is a `perf record -g` of one process, if perf works here.
type perfRecord struct {
	cmd  *exec.Cmd
	file string
}

// startProfile records the server for the main (not optional) runtime.
func (b *bench) startProfile(c *cluster, optional bool) *perfRecord {
	if optional {
		return nil
	}
	return startPerf(c.pid())
}

func startPerf(pid int) *perfRecord {
	if _, err := exec.LookPath("perf"); err != nil {
		return nil
	}
	f, err := os.CreateTemp("", "ppbench-perf")
	if err != nil {
		return nil
	}
	f.Close()
	p := &perfRecord{file: f.Name()}
	p.cmd = exec.Command("perf", "record", "-q", "-F", "997", "-g", "-p", fmt.Sprint(pid), "-o", p.file)
	if err := p.cmd.Start(); err != nil {
		os.Remove(p.file)
		return nil
	}
	time.Sleep(300 * time.Millisecond) // perf attaches
	return p
}

// stop ends the recording and returns the hottest symbols (self time).
func (p *perfRecord) stop() string {
	defer os.Remove(p.file)
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	report := func(sort string, limit int) string {
		out, err := exec.Command("perf", "report", "-i", p.file, "--stdio", "--no-children", "-g", "none",
			"--sort", sort, "--percent-limit", "0.5").Output()
		if err != nil {
			return ""
		}
		var lines []string
		for _, l := range splitLines(string(out)) {
			if len(l) > 0 && l[0] == '#' {
				continue
			}
			lines = append(lines, l)
			if len(lines) == limit {
				break
			}
		}
		return joinLines(lines)
	}
	return "perf record -F 997 -g -p <peapod server> (children it starts are followed) during a second series of one-at-a-time starts, after the measured one (perf slows what it follows).\n\n" +
		"CPU samples by process (perf report --no-children --sort comm):\n" + report("comm", 15) +
		"\n\nHottest symbols (--sort comm,dso,sym, self time):\n" + report("comm,dso,sym", 25)
}
