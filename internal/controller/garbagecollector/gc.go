package garbagecollector

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/peapod/peapod/internal/controller/ctrlutil"
)

// Options configure a Collector. The zero value is usable.
type Options struct {
	// Logger receives the collector's logs. Default slog.Default().
	Logger *slog.Logger
}

// Collector is the garbage collector. Create it with New before the
// informer factory starts; it is safe for concurrent use.
type Collector struct {
	client    kubernetes.Interface
	resources []*resource
	queue     ctrlutil.Queue
	log       *slog.Logger
}

// New returns a Collector registering informers for every watched kind
// (with an owner-UID index) with factory. The caller starts factory after
// New.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, opts Options) (*Collector, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	gc := &Collector{
		client:    client,
		resources: resources(client, factory),
		queue:     ctrlutil.NewQueue("garbagecollector", nil),
		log:       opts.Logger.With("controller", "garbagecollector"),
	}
	for i, r := range gc.resources {
		if _, ok := r.informer.GetIndexer().GetIndexers()[ownerIndex]; !ok {
			if err := r.informer.AddIndexers(cache.Indexers{ownerIndex: ownerUIDs}); err != nil {
				return nil, fmt.Errorf("index %s by owner: %w", r.gvk.Kind, err)
			}
		}
		changed := func(o any) { gc.changed(i, o) }
		if err := ctrlutil.OnEvents(r.informer, r.gvk.Kind, changed, func(_, n any) { changed(n) }, gc.deleted); err != nil {
			return nil, err
		}
	}
	return gc, nil
}

// Run waits for the informers to sync, then runs workers until ctx ends.
func (gc *Collector) Run(ctx context.Context, workers int) error {
	var synced []cache.InformerSynced
	for _, r := range gc.resources {
		synced = append(synced, r.informer.HasSynced)
	}
	ctrlutil.RunWhenSynced(ctx, gc.queue, synced, workers, gc.log, gc.sync)
	return nil
}

func itemKey(i int, m metav1.Object) string {
	return strconv.Itoa(i) + "|" + m.GetNamespace() + "/" + m.GetName()
}

func parseItem(key string) (int, string, string, bool) {
	idx, rest, ok := strings.Cut(key, "|")
	if !ok {
		return 0, "", "", false
	}
	i, err := strconv.Atoi(idx)
	ns, name, _ := strings.Cut(rest, "/")
	return i, ns, name, err == nil
}

// changed queues objects the collector may have to act on: dependents
// (they may have lost an owner) and owners being deleted with the orphan
// or foregroundDeletion finalizer.
func (gc *Collector) changed(i int, obj any) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	if len(m.GetOwnerReferences()) > 0 || (m.GetDeletionTimestamp() != nil && hasGCFinalizer(m)) {
		gc.queue.Add(itemKey(i, m))
	}
}

// deleted queues a deleted object's dependents (now possibly dangling) and
// its owners waiting in foreground for their dependents to go.
func (gc *Collector) deleted(obj any) {
	m, ok := ctrlutil.Unwrap(obj).(metav1.Object)
	if !ok {
		return
	}
	gc.enqueueDependents(string(m.GetUID()))
	for _, ref := range m.GetOwnerReferences() {
		if i := gc.resourceFor(ref); i >= 0 {
			ns := ""
			if gc.resources[i].namespaced {
				ns = m.GetNamespace()
			}
			gc.queue.Add(strconv.Itoa(i) + "|" + ns + "/" + ref.Name)
		}
	}
}

func (gc *Collector) enqueueDependents(uid string) {
	for i, r := range gc.resources {
		deps, _ := r.informer.GetIndexer().ByIndex(ownerIndex, uid)
		for _, d := range deps {
			gc.queue.Add(itemKey(i, d.(metav1.Object)))
		}
	}
}

// resourceFor returns the index of the watched kind ref names, or -1.
func (gc *Collector) resourceFor(ref metav1.OwnerReference) int {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return -1
	}
	for i, r := range gc.resources {
		if r.gvk.Group == gv.Group && r.gvk.Kind == ref.Kind {
			return i
		}
	}
	return -1
}

func hasGCFinalizer(m metav1.Object) bool {
	f := m.GetFinalizers()
	return slices.Contains(f, metav1.FinalizerOrphanDependents) || slices.Contains(f, metav1.FinalizerDeleteDependents)
}
