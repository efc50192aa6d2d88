package main

import (
	"context"
	"fmt"
	"time"
)

// runOnly runs one part of the benchmark and prints its figures, for quick
// before/after comparisons while working on that path; serverArgs go to
// every peapod server it starts (e.g. --warm-sandboxes=0).
func runOnly(ctx context.Context, what, bin, busybox string, serverArgs []string, sz sizes) error {
	switch what {
	case "podstart":
	case "services":
		return runOnlyServices(ctx, bin, busybox, serverArgs, sz)
	default:
		return fmt.Errorf("-only %q: the parts are podstart and services", what)
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
			took, err := startOneByOne(ctx, c, "seq", "seq", sz.OneByOne)
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
	for _, x := range serviceRows(r) {
		fmt.Printf("%-100s %8s %8s | %-40s %8s %8s %s\n", x.What, num(x.P50), num(x.P99), x.Anchor, num(x.AP50), num(x.AP99), x.Unit)
	}
	return nil
}
