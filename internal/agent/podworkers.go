package agent

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
)

// podWorker drives one pod toward its desired state on its own goroutine,
// so one slow pod (a large pull, a long grace period) never holds up the
// others. Updates coalesce: the worker always syncs the newest pod it was
// given, and a wake-up while it is busy runs one more sync afterwards.
//
//	dispatch ──► [wake] ──► sync(newest pod) ──► wait for wake | requeue | resync
//
// A nil pod means the API no longer has it: the worker tears the pod down
// and exits.
type podWorker struct {
	uid  types.UID
	wake chan struct{}

	mu   sync.Mutex
	pod  *corev1.Pod
	gone bool
	// watched holds the containers whose exit already wakes this worker.
	watched map[string]bool
	obs     *observed
	// refreshed is when the pod's API-backed volumes were last refreshed,
	// refreshedMeta the labels and annotations they showed then.
	refreshed     time.Time
	refreshedMeta shownMetadata
	// sandboxRetry is the wait before the next attempt at a sandbox that
	// could not be made; 0 after a success.
	sandboxRetry time.Duration

	cancel context.CancelFunc
	done   chan struct{}
}

// dispatch hands a pod's newest state to its worker, starting one if needed.
func (a *Agent) dispatch(ctx context.Context, pod *corev1.Pod) {
	a.mu.Lock()
	w, ok := a.workers[pod.UID]
	if !ok {
		wctx, cancel := context.WithCancel(ctx)
		w = &podWorker{uid: pod.UID, wake: make(chan struct{}, 1), watched: map[string]bool{}, cancel: cancel, done: make(chan struct{})}
		a.workers[pod.UID] = w
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer close(w.done)
			a.work(wctx, w)
		}()
	}
	a.mu.Unlock()
	w.mu.Lock()
	prev := w.pod
	w.pod = pod
	w.mu.Unlock()
	if prev != nil && onlyStatusChanged(prev, pod) && !becameTerminal(prev, pod) {
		// Mostly our own status write coming back: the worker keeps the
		// newest pod for its next sync but has nothing new to do now. A
		// pod that just finished still has its sandbox to give back.
		return
	}
	w.poke()
}

func becameTerminal(old, cur *corev1.Pod) bool {
	return isTerminal(cur.Status.Phase) && !isTerminal(old.Status.Phase)
}

// onlyStatusChanged reports whether two versions of a pod differ in
// nothing the agent acts on: their status and bookkeeping metadata aside,
// they are equal.
func onlyStatusChanged(old, cur *corev1.Pod) bool {
	if !apiequality.Semantic.DeepEqual(old.Spec, cur.Spec) {
		return false
	}
	o, c := old.ObjectMeta, cur.ObjectMeta
	o.ResourceVersion, c.ResourceVersion = "", ""
	o.ManagedFields, c.ManagedFields = nil, nil
	return apiequality.Semantic.DeepEqual(o, c)
}

// forget tells the worker of a pod the API deleted to tear it down.
func (a *Agent) forget(ctx context.Context, uid types.UID) {
	a.mu.Lock()
	w, ok := a.workers[uid]
	a.mu.Unlock()
	if !ok {
		return
	}
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	w.poke()
}

// poke wakes the worker; wake-ups while one is pending merge.
func (w *podWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pokeUID wakes the worker of a pod, if it has one.
func (a *Agent) pokeUID(uid types.UID) {
	a.mu.Lock()
	w := a.workers[uid]
	a.mu.Unlock()
	if w != nil {
		w.poke()
	}
}

func (a *Agent) work(ctx context.Context, w *podWorker) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		w.mu.Lock()
		pod, gone := w.pod, w.gone
		w.mu.Unlock()
		if gone {
			if err := a.teardownGone(ctx, pod); err != nil {
				a.log.Error("tear down deleted pod", "pod", key(pod), "err", err)
				resetTimer(timer, jitter(backoff))
				backoff = min(2*backoff, time.Minute)
				continue
			}
			a.mu.Lock()
			delete(a.workers, w.uid)
			a.mu.Unlock()
			a.probes.RemovePod(w.uid)
			return
		}
		next, err := a.syncPod(ctx, w, pod)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Error("sync pod", "pod", key(pod), "err", err)
			next = jitter(backoff)
			backoff = min(2*backoff, time.Minute)
		} else {
			backoff = time.Second
		}
		if next <= 0 || next > a.cfg.ResyncPeriod {
			next = jitter(a.cfg.ResyncPeriod)
		}
		resetTimer(timer, next)
	}
}

func (a *Agent) stopWorkers() {
	a.mu.Lock()
	workers := make([]*podWorker, 0, len(a.workers))
	for _, w := range a.workers {
		workers = append(workers, w)
	}
	a.mu.Unlock()
	for _, w := range workers {
		w.cancel()
		<-w.done
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// jitter spreads retries and resyncs by up to 10%.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

func key(pod *corev1.Pod) string {
	if pod == nil {
		return "<gone>"
	}
	return pod.Namespace + "/" + pod.Name
}
