// Package controller runs peapod's controllers inside `peapod server`, all
// driven through the API like kube-controller-manager's: one shared
// informer factory, one rate-limited work queue per controller, no polling.
//
// Run starts, over one client:
//
//  1. replicaset — apps/v1 ReplicaSets (package replicaset);
//  2. replicationcontroller — core/v1 ReplicationControllers (same core);
//  3. deployment — apps/v1 Deployments (package deployment);
//  4. statefulset — apps/v1 StatefulSets (package statefulset);
//  5. garbagecollector — ownerReference propagation (package garbagecollector);
//  6. nodelifecycle — lease monitoring, taints and evictions (package nodelifecycle);
//  7. nodeipam — each Node's podCIDR from the cluster range (package nodeipam),
//     when Options.ClusterCIDR is set;
//  8. endpointslice — the EndpointSlices of Services with selectors (package endpointslice);
//  9. endpoints — the legacy Endpoints of Services with selectors (package endpoints);
//  10. endpointslicemirroring — user-written Endpoints mirrored into
//     EndpointSlices (package endpointslicemirroring);
//  11. job — batch/v1 Jobs, with TTL-after-finished (package job);
//  12. cronjob — batch/v1 CronJobs (package cronjob);
//  13. daemonset — apps/v1 DaemonSets (package daemonset);
//  14. podgc — the pods of deleted nodes (package podgc);
//  15. persistentvolume — claim binding, the local-path provisioner and the
//     protection finalizers (package persistentvolume).
//
// Events go to the API as kube-controller-manager's do.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/cronjob"
	"github.com/peapod/peapod/internal/controller/daemonset"
	"github.com/peapod/peapod/internal/controller/deployment"
	"github.com/peapod/peapod/internal/controller/endpoints"
	"github.com/peapod/peapod/internal/controller/endpointslice"
	"github.com/peapod/peapod/internal/controller/endpointslicemirroring"
	"github.com/peapod/peapod/internal/controller/garbagecollector"
	"github.com/peapod/peapod/internal/controller/job"
	"github.com/peapod/peapod/internal/controller/nodeipam"
	"github.com/peapod/peapod/internal/controller/nodelifecycle"
	"github.com/peapod/peapod/internal/controller/persistentvolume"
	"github.com/peapod/peapod/internal/controller/podgc"
	"github.com/peapod/peapod/internal/controller/replicaset"
	"github.com/peapod/peapod/internal/controller/statefulset"
)

// Options configure Run. The zero value is usable.
type Options struct {
	// Workers is the number of sync goroutines per controller. Default 5.
	Workers int
	// NodeMonitorGracePeriod is how long a node may go without renewing
	// its Lease before it is NotReady/Unknown. Default 40s.
	NodeMonitorGracePeriod time.Duration
	// DefaultTolerationSeconds is how long pods without their own
	// toleration stay on a not-ready/unreachable node. Default 300.
	DefaultTolerationSeconds int64
	// ClusterCIDR is the range Nodes' podCIDRs are cut from, in ranges of
	// NodeCIDRMaskSize bits; unset, no node IPAM controller runs.
	ClusterCIDR      netip.Prefix
	NodeCIDRMaskSize int
	// StorageDir is where local-path volumes go on nodes that do not
	// publish their own directory. Default /var/lib/peapod/storage.
	StorageDir string
	// Logger receives the controllers' logs. Default slog.Default().
	Logger *slog.Logger
	// Clock times node heartbeats, evictions, minReadySeconds and progress
	// deadlines; tests inject a fake one. Default: the real clock.
	Clock clock.WithTicker
}

// Run starts every controller and blocks until ctx is cancelled, then
// stops them and returns nil. An error is returned only when a controller
// cannot be set up.
func Run(ctx context.Context, client kubernetes.Interface, opts Options) error {
	if opts.Workers <= 0 {
		opts.Workers = 5
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := func(component string) record.EventRecorder {
		return broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: component})
	}

	factory := informers.NewSharedInformerFactory(client, 0)
	log := opts.Logger
	type runner interface {
		Run(ctx context.Context, workers int) error
	}
	var runners []runner
	var errs []error
	add := func(r runner, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		runners = append(runners, r)
	}
	add(replicaset.New(client, factory, replicaset.KindReplicaSet, replicaset.Options{Logger: log, Recorder: recorder("replicaset-controller"), Clock: opts.Clock}))
	add(replicaset.New(client, factory, replicaset.KindReplicationController, replicaset.Options{Logger: log, Recorder: recorder("replication-controller"), Clock: opts.Clock}))
	add(deployment.New(client, factory, deployment.Options{Logger: log, Recorder: recorder("deployment-controller"), Clock: opts.Clock}))
	add(statefulset.New(client, factory, statefulset.Options{Logger: log, Recorder: recorder("statefulset-controller"), Clock: opts.Clock}))
	add(garbagecollector.New(client, factory, garbagecollector.Options{Logger: log}))
	add(nodelifecycle.New(client, factory, nodelifecycle.Options{
		NodeMonitorGracePeriod: opts.NodeMonitorGracePeriod, DefaultTolerationSeconds: opts.DefaultTolerationSeconds,
		Clock: opts.Clock, Logger: log, Recorder: recorder("node-controller"),
	}))
	if opts.ClusterCIDR.IsValid() {
		add(nodeipam.New(client, factory, nodeipam.Options{
			ClusterCIDR: opts.ClusterCIDR, NodeCIDRMaskSize: opts.NodeCIDRMaskSize,
			Logger: log, Recorder: recorder("cidrAllocator"),
		}))
	}
	add(endpointslice.New(client, factory, endpointslice.Options{Logger: log, Clock: opts.Clock}))
	add(endpoints.New(client, factory, endpoints.Options{Logger: log, Clock: opts.Clock}))
	add(endpointslicemirroring.New(client, factory, endpointslicemirroring.Options{Logger: log, Clock: opts.Clock}))
	add(job.New(client, factory, job.Options{Logger: log, Recorder: recorder("job-controller"), Clock: opts.Clock}))
	add(cronjob.New(client, factory, cronjob.Options{Logger: log, Recorder: recorder("cronjob-controller"), Clock: opts.Clock}))
	add(daemonset.New(client, factory, daemonset.Options{Logger: log, Recorder: recorder("daemonset-controller"), Clock: opts.Clock}))
	add(podgc.New(client, factory, podgc.Options{Logger: log, Clock: opts.Clock}))
	add(persistentvolume.New(client, factory, persistentvolume.Options{Logger: log, Recorder: recorder("persistentvolume-controller"),
		StorageDir: opts.StorageDir, Clock: opts.Clock}))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set up controllers: %w", err)
	}

	factory.Start(ctx.Done())
	defer factory.Shutdown()
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.Run(ctx, opts.Workers)
		}()
	}
	log.Info("controllers started", "count", len(runners), "workers", opts.Workers)
	wg.Wait()
	return nil
}
