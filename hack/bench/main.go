// Command bench is `make bench`: it measures how fast and how light peapod
// is, side by side with podman and the kernel's own paths, in one run on
// one machine, and writes docs/benchmarks.md.
//
// It drives a real `peapod server` process on a fresh data dir with its own
// bridge, pod CIDR and ports, podman with its own network, the OCI runtimes
// directly, and a hand-built pair of network namespaces; it removes all of
// them when it ends, also on failure or interrupt. It needs root.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/peapod/peapod/internal/proxy"
)

// sizes are the sample counts; -quick shrinks them to check the harness.
type sizes struct {
	// Profiled is the unmeasured series of pod starts perf records.
	OneByOne, Profiled, Burst, Apply, Density, Pending, Watches int
	// Services × ServiceEndpoints fill the proxy's table; OneMore samples
	// the programming of one more Service.
	Services, ServiceEndpoints, OneMore int
	CPUWindow                           time.Duration
	// DNSWindow is how long the cluster DNS is loaded; DNSServices how
	// many new Services are timed until they resolve.
	DNSWindow   time.Duration
	DNSServices int
}

var full = sizes{OneByOne: 50, Profiled: 20, Burst: 100, Apply: 20, Density: 200, Pending: 1000, Watches: 200,
	Services: 1000, ServiceEndpoints: 10, OneMore: 100, CPUWindow: 30 * time.Second, DNSWindow: 5 * time.Second, DNSServices: 20}
var quick = sizes{OneByOne: 5, Profiled: 3, Burst: 10, Apply: 3, Density: 20, Pending: 50, Watches: 20,
	Services: 50, ServiceEndpoints: 10, OneMore: 5, CPUWindow: 3 * time.Second, DNSWindow: time.Second, DNSServices: 3}

func main() {
	peapodBin := flag.String("peapod", "bin/peapod", "the peapod binary to benchmark")
	busybox := flag.String("busybox", "bin/images/busybox.tar", "the busybox image tarball (make images)")
	out := flag.String("out", "docs/benchmarks.md", "where to write the results")
	isQuick := flag.Bool("quick", false, "few samples: check the harness, not the figures")
	only := flag.String("only", "", `"podstart", "dns", "services" or "multinode" (issue 10): only those figures, printed, docs untouched (for profiling work)`)
	serverArgs := flag.String("server-args", "", "with -only: extra flags for peapod server, space-separated")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (namespaces, cgroups, bridges)")
		os.Exit(1)
	}
	sz := full
	if *isQuick {
		sz = quick
	}
	for _, p := range []*string{peapodBin, busybox} {
		abs, err := absPath(*p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		*p = abs
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if *only != "" {
		if err := runOnly(ctx, *only, *peapodBin, *busybox, strings.Fields(*serverArgs), sz); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}

	r := &report{}
	b := &bench{r: r, sz: sz, peapod: *peapodBin, busybox: *busybox}
	start := time.Now()
	b.run(ctx)
	r.Notes = append(r.Notes, fmt.Sprintf("The whole run took %s; load average at the start %s, at the end %s.",
		time.Since(start).Round(time.Second), b.loadStart, loadAvg()))
	if busy(b.loadStart) || busy(loadAvg()) {
		r.Notes = append(r.Notes, "**The machine was not idle**: other work (builds and tests) ran beside this benchmark, "+
			"so absolute figures are noisy; the ratios compare runs made under the same load.")
	}
	if *isQuick {
		r.Notes = append(r.Notes, "**This was a -quick run**: few samples, figures not meaningful.")
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	r.write(f)
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	logf("wrote %s in %s", *out, time.Since(start).Round(time.Second))
	if ctx.Err() != nil {
		os.Exit(130)
	}
}

func absPath(p string) (string, error) {
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	if strings.HasPrefix(p, "/") {
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return wd + "/" + p, nil
}

// bench holds one run's settings and its report.
type bench struct {
	r               *report
	sz              sizes
	peapod, busybox string
	loadStart       string
	crunOK          bool

	// figures the targets are judged on
	seqRunc, seqCrun, podSeqRunc, podSeqCrun []time.Duration
	burstAll, burstAllCrun                   time.Duration
	apply                                    []time.Duration
	perPodKiB, podmanPerPodKiB               float64
	cpuPct                                   float64
	pod, floor                               netResult
	teardown                                 time.Duration
	cp                                       controlPlaneResult
	dns                                      dnsResult
	mn                                       multiNodeResult
	svc                                      serviceResult
	have                                     map[string]bool
}

func (b *bench) run(ctx context.Context) {
	b.have = map[string]bool{}
	b.loadStart = loadAvg()
	b.machine()
	preclean()
	defer preclean()

	b.floors(ctx)
	b.podman(ctx)
	b.peapodRuns(ctx, "runc")
	if b.crunOK {
		b.peapodRuns(ctx, "crun")
	}
	b.multiNodeRuns(ctx)
	b.targets()
}

// preclean removes what an earlier, interrupted run may have left.
func preclean() {
	cleanupFloorNetwork()
	(*podman)(nil).cleanup()
	removeCgroups("ppbench-floor")
	if _, err := os.Stat("/sys/class/net/" + benchBridge); err == nil {
		_ = exec.Command("ip", "link", "del", benchBridge).Run()
	}
	_ = proxy.Cleanup(context.Background(), proxy.DefaultTable)
}

func (b *bench) machine() {
	commit := strings.TrimSpace(firstLine("git", "rev-parse", "--short", "HEAD"))
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
		commit += " (with uncommitted changes in the tree)"
	}
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	kernel := utsString(uts.Release[:])
	b.r.Machine = [][2]string{
		{"date", time.Now().UTC().Format("2006-01-02 15:04 UTC")},
		{"CPUs (nproc)", fmt.Sprint(runtime.NumCPU())},
		{"memory", memTotal()},
		{"kernel", kernel},
		{"peapod commit", commit},
		{"runc", firstLine("runc", "--version")},
		{"crun", firstLine("crun", "--version")},
		{"podman", firstLine("podman", "--version")},
		{"iperf3", firstLine("iperf3", "--version")},
		{"kubectl", firstLine("kubectl", "version", "--client")},
		{"Go", runtime.Version()},
		{"load average at start", b.loadStart},
	}
}

func utsString(a []int8) string {
	var sb strings.Builder
	for _, c := range a {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

var floorTook = map[string][]time.Duration{}

// floors times the OCI runtimes alone.
func (b *bench) floors(ctx context.Context) {
	for _, rt := range []string{"runc", "crun"} {
		logf("floor: %s run -d × %d", rt, b.sz.OneByOne)
		took, err := ociFloor(ctx, rt, b.sz.OneByOne)
		if err != nil {
			b.r.errorf("floor %s: %v", rt, err)
			continue
		}
		floorTook[rt] = took
		if rt == "crun" {
			b.crunOK = true
		}
	}
}

func (b *bench) podman(ctx context.Context) {
	if _, err := exec.LookPath("podman"); err != nil {
		b.r.errorf("podman not installed (hack/setup.sh --bench installs it)")
		return
	}
	p, err := newPodman(ctx, b.busybox)
	defer p.cleanup()
	if err != nil {
		b.r.errorf("podman: %v", err)
		return
	}
	for _, rt := range []string{"runc", "crun"} {
		if rt == "crun" && !b.crunOK {
			continue
		}
		logf("podman: pod create + run -d --pod (%s) × %d", rt, b.sz.OneByOne)
		took, err := p.oneByOne(ctx, rt, b.sz.OneByOne)
		if err != nil {
			b.r.errorf("podman one by one (%s): %v", rt, err)
			continue
		}
		if rt == "runc" {
			b.podSeqRunc = took
		} else {
			b.podSeqCrun = took
		}
	}
	// A burst of pods at once, twice: the first for the burst, both
	// together for density.
	logf("podman: burst of %d (runc)", b.sz.Burst)
	all, took, names1, err := p.burst(ctx, "runc", "b1", b.sz.Burst)
	if err != nil {
		b.r.errorf("podman burst: %v", err)
		_ = p.remove(ctx, names1)
		return
	}
	podmanBurst = burstFigures{all, took}
	var kib, procs int
	logf("podman: %d idle pods: conmon/catatonit CPU over %s", b.sz.Burst, b.sz.CPUWindow)
	time.Sleep(time.Second) // conmon's short-lived first process exits
	var pids []int
	for pid := range pidsByComm("conmon", "catatonit") {
		pids = append(pids, pid)
	}
	if pct, err := processCPU(ctx, b.sz.CPUWindow, pids...); err == nil {
		podmanCPU = pct
	} else {
		b.r.errorf("podman CPU: %v", err)
	}
	logf("podman: second burst of %d for density", b.sz.Density-b.sz.Burst)
	_, _, names2, err := p.burst(ctx, "runc", "b2", b.sz.Density-b.sz.Burst)
	if err != nil {
		b.r.errorf("podman density: %v", err)
	} else {
		kib, procs = monitorsKiB()
		b.podmanPerPodKiB = float64(kib) / float64(b.sz.Density)
		podmanMonitors = procs
	}
	logf("podman: pod rm -f -t 0 of %d pods", len(names1))
	start := time.Now()
	if err := p.remove(ctx, names1); err != nil {
		b.r.errorf("podman teardown: %v", err)
	} else {
		podmanTeardown = time.Since(start)
	}
	_ = p.remove(ctx, names2)
}

type burstFigures struct {
	All  time.Duration
	Took []time.Duration
}

var (
	podmanBurst    burstFigures
	podmanCPU      = nan()
	podmanMonitors int
	podmanTeardown time.Duration
)

func nan() float64 { return math.NaN() }

// busy reports whether a load average ("1m 5m 15m") shows other work: a
// 1-minute load above half the CPUs.
func busy(load string) bool {
	var one float64
	if _, err := fmt.Sscan(load, &one); err != nil {
		return false
	}
	return one > float64(runtime.NumCPU())/2
}
