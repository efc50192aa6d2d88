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
	case "multinode":
		return runOnlyMultiNode(ctx, bin, busybox, sz)
	default:
		return fmt.Errorf("-only %q: want podstart or multinode", what)
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
