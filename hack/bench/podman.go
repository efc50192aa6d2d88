package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

const (
	podmanNet    = "ppbench-net"
	podmanSubnet = "10.219.0.0/24"
	podmanPrefix = "ppb"
	podmanImage  = "docker.io/library/busybox:latest"
	podmanPause  = "localhost/podman-pause"
)

// containersConf is a containers.conf for the podman runs. podman asks the
// OCI runtime for RLIMIT_NOFILE and RLIMIT_NPROC far above this machine's
// hard limits, which the runtime may not raise; these fit under them. Logs
// go to files, not journald.
var containersConf = "/tmp/ppbench-containers.conf"

const containersConfText = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"
[engine]
events_logger = "file"
`

// podman drives the podman CLI with its own network, and removes what it
// made: pods, the network, and the images it loaded.
type podman struct {
	loaded []string // images this run added, removed by cleanup
}

func newPodman(ctx context.Context, busybox string) (*podman, error) {
	if err := os.WriteFile(containersConf, []byte(containersConfText), 0o644); err != nil {
		return nil, err
	}
	p := &podman{}
	if !p.hasImage(ctx, podmanImage) {
		if _, err := run(ctx, "podman", "load", "-q", "-i", busybox); err != nil {
			return p, err
		}
		p.loaded = append(p.loaded, podmanImage)
	}
	if !p.hasImage(ctx, podmanPause) {
		p.loaded = append(p.loaded, podmanPause) // built by podman on the first pod create
	}
	_, _ = run(ctx, "podman", "network", "rm", "-f", podmanNet)
	if _, err := run(ctx, "podman", "network", "create", "--subnet", podmanSubnet, podmanNet); err != nil {
		return p, err
	}
	return p, nil
}

func (p *podman) hasImage(ctx context.Context, ref string) bool {
	out, err := run(ctx, "podman", "images", "-q", "--filter", "reference="+ref)
	return err == nil && strings.TrimSpace(out) != ""
}

// startPod runs `podman pod create` + `podman run -d --pod` with runtime.
func (p *podman) startPod(ctx context.Context, runtime, name string) error {
	if _, err := run(ctx, "podman", "--runtime", runtime, "pod", "create", "--name", name, "--network", podmanNet); err != nil {
		return err
	}
	_, err := run(ctx, "podman", "--runtime", runtime, "run", "-d", "--pod", name, podmanImage, "sleep", "3600")
	return err
}

// oneByOne starts n pods one after another and returns each one's time.
func (p *podman) oneByOne(ctx context.Context, runtime string, n int) ([]time.Duration, error) {
	var took []time.Duration
	var names []string
	defer func() { _ = p.remove(context.Background(), names) }()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%s-%d", podmanPrefix, runtime, i)
		names = append(names, name)
		start := time.Now()
		if err := p.startPod(ctx, runtime, name); err != nil {
			return took, err
		}
		took = append(took, time.Since(start))
	}
	return took, nil
}

// burst starts n pods at once; it returns the time until all are started
// and each one's time. The pods stay; their names are returned.
func (p *podman) burst(ctx context.Context, runtime, prefix string, n int) (time.Duration, []time.Duration, []string, error) {
	names := make([]string, n)
	took := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := 0; i < n; i++ {
		names[i] = fmt.Sprintf("%s-%s-%d", podmanPrefix, prefix, i)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			errs[i] = p.startPod(ctx, runtime, names[i])
			took[i] = time.Since(start)
		}(i)
	}
	wg.Wait()
	all := time.Since(begin)
	for _, err := range errs {
		if err != nil {
			return all, took, names, err
		}
	}
	return all, took, names, nil
}

// remove force-removes pods (stop timeout 0) in one command.
func (p *podman) remove(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	_, err := run(ctx, "podman", append([]string{"pod", "rm", "-f", "-t", "0", "-i"}, names...)...)
	return err
}

// monitorsKiB sums the RSS of every conmon and catatonit process.
func monitorsKiB() (kib, procs int) {
	for pid := range pidsByComm("conmon", "catatonit") {
		kib += rssKiB(pid)
		procs++
	}
	return kib, procs
}

// cleanup removes every pod this harness may have made, its network and
// the images it loaded. It is idempotent.
func (p *podman) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, _ := run(ctx, "podman", "pod", "ls", "-q", "--filter", "name=^"+podmanPrefix+"-")
	if ids := strings.Fields(out); len(ids) > 0 {
		_, _ = run(ctx, "podman", append([]string{"pod", "rm", "-f", "-t", "0", "-i"}, ids...)...)
	}
	_, _ = run(ctx, "podman", "network", "rm", "-f", podmanNet)
	if p != nil {
		for _, img := range p.loaded {
			// By ID: podman-pause is tagged with podman's version, not latest.
			out, _ := run(ctx, "podman", "images", "-q", "--filter", "reference="+img)
			for _, id := range strings.Fields(out) {
				_, _ = run(ctx, "podman", "rmi", "-i", id)
			}
		}
	}
	_ = os.Remove(containersConf)
}
