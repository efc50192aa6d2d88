package persistentvolume

import (
	"context"
	"log/slog"
	"strings"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// Options configure a Controller. The zero value is usable.
type Options struct {
	// Logger receives the controller's logs. Default slog.Default().
	Logger *slog.Logger
	// Recorder receives the claims' and volumes' events.
	Recorder record.EventRecorder
	// StorageDir is where local-path volumes go on a node that does not
	// publish its own (annotation AnnNodeStorageDir). Default
	// /var/lib/peapod/storage.
	StorageDir string
	// Clock drives the work queue's back-off. Default: the real clock.
	Clock clock.WithTicker
}

// AnnNodeStorageDir is the Node annotation in which a node's agent
// publishes the directory its local-path volumes go in
// (<data-dir>/storage).
const AnnNodeStorageDir = "storage.peapod.io/local-path-dir"

// Controller binds claims to volumes, provisions local-path volumes and
// removes the protection finalizers. Create it with New before the
// informer factory starts; it is safe for concurrent use.
type Controller struct {
	client   kubernetes.Interface
	claims   corelisters.PersistentVolumeClaimLister
	volumes  corelisters.PersistentVolumeLister
	classes  storagelisters.StorageClassLister
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	synced   []cache.InformerSynced
	queue    ctrlutil.Queue
	log      *slog.Logger
	recorder record.EventRecorder
	dir      string
}

// Queue keys: "claim/<ns>/<name>" and "volume/<name>".
const (
	claimPrefix  = "claim/"
	volumePrefix = "volume/"
)

// New returns a Controller registering its informers with factory. The
// caller starts factory after New.
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
	if opts.StorageDir == "" {
		opts.StorageDir = "/var/lib/peapod/storage"
	}
	claimInf := factory.Core().V1().PersistentVolumeClaims()
	volInf := factory.Core().V1().PersistentVolumes()
	classInf := factory.Storage().V1().StorageClasses()
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	c := &Controller{
		client: client, claims: claimInf.Lister(), volumes: volInf.Lister(), classes: classInf.Lister(),
		pods: podInf.Lister(), nodes: nodeInf.Lister(),
		queue: ctrlutil.NewQueue("persistentvolume", opts.Clock), log: opts.Logger.With("controller", "persistentvolume"),
		recorder: opts.Recorder, dir: opts.StorageDir,
	}
	if err := ctrlutil.OnChange(claimInf.Informer(), "persistentvolumeclaim", c.claimChanged); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnChange(volInf.Informer(), "persistentvolume", c.volumeChanged); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnChange(classInf.Informer(), "storageclass", func(any) { c.enqueueAllClaims() }); err != nil {
		return nil, err
	}
	if err := ctrlutil.OnChange(podInf.Informer(), "pod", c.podChanged); err != nil {
		return nil, err
	}
	c.synced = []cache.InformerSynced{claimInf.Informer().HasSynced, volInf.Informer().HasSynced,
		classInf.Informer().HasSynced, podInf.Informer().HasSynced, nodeInf.Informer().HasSynced}
	return c, nil
}

// Run ensures the default StorageClass, waits for the informers to sync,
// then runs workers until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if err := EnsureLocalPathClass(ctx, c.client); err != nil {
		c.log.Error("create the default StorageClass", "class", LocalPathClass, "err", err)
	}
	ctrlutil.RunWhenSynced(ctx, c.queue, c.synced, workers, c.log, c.sync)
	return nil
}

// EnsureLocalPathClass creates StorageClass local-path (rancher.io/local-path,
// WaitForFirstConsumer, Delete, the default class) unless a class of that
// name exists, as k3s deploys it at server start. Idempotent.
func EnsureLocalPathClass(ctx context.Context, client kubernetes.Interface) error {
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	reclaim := v1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: LocalPathClass, Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       LocalPathProvisioner,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &mode,
	}
	_, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

func (c *Controller) claimChanged(obj any) {
	if cl, ok := ctrlutil.Unwrap(obj).(*v1.PersistentVolumeClaim); ok {
		c.queue.Add(claimPrefix + cl.Namespace + "/" + cl.Name)
		if cl.Spec.VolumeName != "" {
			c.queue.Add(volumePrefix + cl.Spec.VolumeName)
		}
	}
}

func (c *Controller) volumeChanged(obj any) {
	if pv, ok := ctrlutil.Unwrap(obj).(*v1.PersistentVolume); ok {
		c.queue.Add(volumePrefix + pv.Name)
		if cr := pv.Spec.ClaimRef; cr != nil {
			c.queue.Add(claimPrefix + cr.Namespace + "/" + cr.Name)
		} else {
			c.enqueueAllClaims() // a new Available volume may fit a Pending claim
		}
	}
}

func (c *Controller) enqueueAllClaims() {
	all, _ := c.claims.List(everything)
	for _, cl := range all {
		if cl.Spec.VolumeName == "" || cl.DeletionTimestamp != nil {
			c.queue.Add(claimPrefix + cl.Namespace + "/" + cl.Name)
		}
	}
}

// podChanged enqueues the claims a pod uses: a finished or deleted pod
// may free a claim being deleted.
func (c *Controller) podChanged(obj any) {
	p, ok := ctrlutil.Unwrap(obj).(*v1.Pod)
	if !ok {
		return
	}
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			c.queue.Add(claimPrefix + p.Namespace + "/" + v.PersistentVolumeClaim.ClaimName)
		}
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	switch {
	case strings.HasPrefix(key, claimPrefix):
		ns, name, err := cache.SplitMetaNamespaceKey(strings.TrimPrefix(key, claimPrefix))
		if err != nil {
			return nil
		}
		cl, err := c.claims.PersistentVolumeClaims(ns).Get(name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return c.syncClaim(ctx, cl.DeepCopy())
	case strings.HasPrefix(key, volumePrefix):
		pv, err := c.volumes.Get(strings.TrimPrefix(key, volumePrefix))
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return c.syncVolume(ctx, pv.DeepCopy())
	}
	return nil
}
