package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"
)

// runOnly runs one part of the benchmark and prints its figures, for quick
// before/after comparisons while working on that path; serverArgs go to
// every peapod server it starts (e.g. --warm-sandboxes=0).
func runOnly(ctx context.Context, what, bin, busybox string, serverArgs []string, sz sizes) error {
	switch what {
	case "podstart":
	case "dns":
		return runOnlyDNS(ctx, bin, busybox, serverArgs, sz)
	case "services":
		return runOnlyServices(ctx, bin, busybox, serverArgs, sz)
	case "multinode":
		return runOnlyMultiNode(ctx, bin, busybox, sz)
	default:
		return fmt.Errorf("-only %q: the parts are podstart, dns, services and multinode", what)
	}
	preclean()
	defer preclean()
	for _, rt := range []string{"runc", "crun"} {
		c, err := startCluster(ctx, bin, busybox, append([]string{"--default-runtime", rt}, serverArgs...)...)
		if err != nil {
			c.stop()
			return fmt.Errorf("peapod server (%s): %w", rt, err)
		}
		err = func() error {
			if err := c.namespace(ctx, "seq"); err != nil {
				return err
			}
			took, err := startOneByOne(ctx, c.client, "seq", "seq", sz.OneByOne)
			if err != nil {
				return err
			}
			printFigures(rt+": client-go create → Running", took)
			took, err = kubectlApply(ctx, c, "seq", sz.Apply)
			if err != nil {
				return err
			}
			printFigures(rt+": kubectl apply → Running", took)
			return c.deleteAll(ctx)
		}()
		if err != nil {
			logf("peapod server log (tail):\n%s", c.tail())
		}
		c.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", rt, err)
		}
	}
	return nil
}

func printFigures(what string, took []time.Duration) {
	fmt.Printf("%-40s n=%-3d p50 %6.1f ms  p99 %6.1f ms\n", what, len(took), percentile(took, .5), percentile(took, .99))
}

// runOnlyDNS runs the cluster DNS benchmark alone and prints its figures.
func runOnlyDNS(ctx context.Context, bin, busybox string, serverArgs []string, sz sizes) error {
	preclean()
	defer preclean()
	c, err := startCluster(ctx, bin, busybox, serverArgs...)
	defer c.stop()
	if err != nil {
		return err
	}
	if err := c.namespace(ctx, "dnsb"); err != nil {
		return err
	}
	r, err := measureDNS(ctx, c, "dnsb", sz.DNSWindow, sz.DNSServices)
	if err != nil {
		logf("peapod server log (tail):\n%s", c.tail())
		return err
	}
	fmt.Printf("cluster DNS %s: %.0f queries/s (%d failed), latency p50 %.3f ms p99 %.3f ms; new Service resolvable p50 %.1f ms p99 %.1f ms\n",
		r.Path, r.QPS, r.Failed, percentile(r.Lat, .5), percentile(r.Lat, .99), percentile(r.Propagation, .5), percentile(r.Propagation, .99))
	return c.deleteAll(ctx)
}

// runOnlyMultiNode runs the multi-node section alone and prints its rows
// (the pod-start row's anchor, the single-node figure, is not measured).
func runOnlyMultiNode(ctx context.Context, bin, busybox string, sz sizes) error {
	b := &bench{r: &report{}, sz: sz, peapod: bin, busybox: busybox, have: map[string]bool{}}
	b.multiNodeRuns(ctx)
	b.targets()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, x := range b.r.Rows {
		fmt.Fprintf(w, "%s\t%s\t%s\tp50 %s\tp99 %s\t%s\t%s\n", x.Section, x.What, x.Unit, num(x.P50), num(x.P99), x.Anchor, num(x.AP50))
	}
	for _, t := range b.r.Targets {
		if t.Issue == 10 {
			fmt.Fprintf(w, "target\t%s\t%s\tmet %v\n", t.Goal, t.Got, t.Known && t.Met)
		}
	}
	_ = w.Flush()
	fmt.Println(b.mn)
	if len(b.r.Errors) > 0 {
		return fmt.Errorf("%d errors: %v", len(b.r.Errors), b.r.Errors)
	}
	return nil
}

// runOnlyServices runs the service proxy's measurements and prints them.
func runOnlyServices(ctx context.Context, bin, busybox string, serverArgs []string, sz sizes) error {
	preclean()
	defer preclean()
	c, err := startCluster(ctx, bin, busybox, serverArgs...)
	defer c.stop()
	if err != nil {
		return err
	}
	r, err := services(ctx, c, sz.Services, sz.ServiceEndpoints, sz.OneMore)
	if err != nil {
		logf("peapod server log (tail):\n%s", c.tail())
		return err
	}
	for _, f := range []struct {
		what string
		took []time.Duration
	}{
		{"connect pod IP, few", r.ConnectPod}, {"connect ClusterIP, few", r.ConnectCIPFew}, {"connect control, few", r.ControlFew},
		{"connect pod IP, many", r.ConnectPodMany}, {"connect ClusterIP, many", r.ConnectCIPMany}, {"connect control, many", r.ControlMany},
		{"connect pod IP, few again", r.ConnectPodAgain}, {"connect ClusterIP, few again", r.ConnectCIPAgain}, {"connect control, few again", r.ControlAgain},
	} {
		fmt.Printf("%-40s n=%-4d p50 %6.3f ms  p99 %6.3f ms\n", f.what, len(f.took), percentile(f.took, .5), percentile(f.took, .99))
	}
	fmt.Printf("peapod server CPU per one more Service: %.1f ms\n", ms(r.OneMoreServerCPU))
	fmt.Printf("peapod server CPU during the connect phases (cores): few %.2f, many %.2f, few again %.2f\n", r.ServerCPU[0], r.ServerCPU[1], r.ServerCPU[2])
	for _, x := range serviceRows(r) {
		fmt.Printf("%-100s %8s %8s | %-40s %8s %8s %s\n", x.What, num(x.P50), num(x.P99), x.Anchor, num(x.AP50), num(x.AP99), x.Unit)
	}
	return nil
}
