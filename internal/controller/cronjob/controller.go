package cronjob

import (
	"context"
	"log/slog"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

var kind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Options configure a Controller. The zero value is usable.
type Options struct {
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives the CronJob's events. Default: discarded.
	Recorder record.EventRecorder
	// Clock decides when schedules are due; tests inject a fake one.
	// Default: the real clock.
	Clock clock.WithTicker
}

// Controller runs CronJobs. Create it with New before the informer
// factory starts; it is safe for concurrent use.
type Controller struct {
	client   kubernetes.Interface
	cronJobs batchlisters.CronJobLister
	jobs     batchlisters.JobLister
	synced   []cache.InformerSynced
	queue    ctrlutil.Queue
	clock    clock.WithTicker
	log      *slog.Logger
	recorder record.EventRecorder
}

// New returns a Controller registering its informers (cronjobs, jobs)
// with factory. The caller starts factory after New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Recorder == nil {
		opts.Recorder = &record.FakeRecorder{}
	}
	cjInf := factory.Batch().V1().CronJobs()
	jobInf := factory.Batch().V1().Jobs()
	c := &Controller{
		client:   client,
		cronJobs: cjInf.Lister(),
		jobs:     jobInf.Lister(),
		queue:    ctrlutil.NewQueue("cronjob", opts.Clock),
		clock:    opts.Clock,
		log:      opts.Logger.With("controller", "cronjob"),
		recorder: opts.Recorder,
	}
	if err := ctrlutil.OnChange(cjInf.Informer(), "cronjob", ctrlutil.EnqueueKey(c.queue)); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnChange(jobInf.Informer(), "job", c.jobChanged); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{cjInf.Informer().HasSynced, jobInf.Informer().HasSynced}
	return c, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// jobChanged queues the CronJob controlling a Job.
func (c *Controller) jobChanged(obj any) {
	j, ok := ctrlutil.Unwrap(obj).(*batchv1.Job)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(j); ref != nil && ref.Kind == kind.Kind && ref.APIVersion == kind.GroupVersion().String() {
		c.queue.Add(j.Namespace + "/" + ref.Name)
	}
}
