package network

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/network/netns"
)

// BenchmarkSetupTeardown times Setup and Teardown of one pod, each in a
// fresh pod netns inside a throwaway host netns, and reports their p50 and
// p99 in ms. Netns creation and removal are not timed (they are the
// runtime's). Cases:
//
//   - cluster: ClusterCIDR set, no host ports: what internal/runtime does
//     for an ordinary pod.
//   - ipmasq: no ClusterCIDR, so the bridge plugin's per-pod masquerade
//     chain is used.
//   - hostport: ClusterCIDR and one hostPort, so portmap runs.
func BenchmarkSetupTeardown(b *testing.B) {
	cases := []struct {
		name    string
		cluster bool
		ports   []PortMapping
	}{
		{"cluster", true, nil},
		{"ipmasq", false, nil},
		{"hostport", true, []PortMapping{{HostPort: 18090, ContainerPort: 80}}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, func(e *testEnv, c *Config) {
				if tc.cluster {
					c.ClusterCIDR = fmt.Sprintf("10.%d.0.0/16", e.octet)
				}
			})
			// One pod first, so node-level state (bridge, shared chains)
			// exists as it does on a running node.
			e.teardown(b, e.setup(b, "warm", tc.ports...), "")
			ctx := context.Background()
			var setup, teardown []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ns, err := netns.New(e.dir+"/ns", fmt.Sprintf("b%d", i))
				if err != nil {
					b.Fatal(err)
				}
				info := PodInfo{Namespace: "default", Name: fmt.Sprintf("b%d", i), UID: fmt.Sprintf("u%d", i), PortMappings: tc.ports}
				id := fmt.Sprintf("bench-%d", i)
				b.StartTimer()
				err = netns.Do(e.host, func() error {
					t0 := time.Now()
					if _, err := e.m.Setup(ctx, id, ns, info); err != nil {
						return err
					}
					t1 := time.Now()
					if err := e.m.Teardown(ctx, id, ns, info); err != nil {
						return err
					}
					setup = append(setup, t1.Sub(t0))
					teardown = append(teardown, time.Since(t1))
					return nil
				})
				b.StopTimer()
				if rerr := netns.Remove(ns); rerr != nil {
					b.Fatal(rerr)
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			reportPercentiles(b, "setup", setup)
			reportPercentiles(b, "teardown", teardown)
		})
	}
}

// reportPercentiles reports the p50 and p99 of ds in ms as custom metrics.
func reportPercentiles(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) float64 {
		i := int(p * float64(len(s)-1))
		return float64(s[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), name+"-p50-ms")
	b.ReportMetric(pct(0.99), name+"-p99-ms")
}
