package ctrlutil

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// ExpectationsTimeout is how long unfulfilled expectations block a sync;
// after it the controller trusts its caches again (a watch event was lost).
const ExpectationsTimeout = 5 * time.Minute

type expectation struct {
	adds      int
	dels      map[types.UID]bool
	timestamp time.Time
}

// Expectations tracks, per controller key, the creates and deletes issued but
// not yet observed through the informer. The zero value is not usable; use
// NewExpectations.
type Expectations struct {
	mu    sync.Mutex
	clock clock.PassiveClock
	m     map[string]*expectation
}

// NewExpectations returns empty Expectations timed by c (nil = real clock).
func NewExpectations(c clock.PassiveClock) *Expectations {
	if c == nil {
		c = clock.RealClock{}
	}
	return &Expectations{clock: c, m: map[string]*expectation{}}
}

func (e *Expectations) get(key string) *expectation {
	x := e.m[key]
	if x == nil {
		x = &expectation{dels: map[types.UID]bool{}, timestamp: e.clock.Now()}
		e.m[key] = x
	}
	return x
}

// ExpectCreations records that n creates were issued for key.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.get(key)
	x.adds += n
	x.timestamp = e.clock.Now()
}

// CreationObserved lowers key's pending creates by one (an informer add
// event, or a create that failed and will never be observed).
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[key]; x != nil && x.adds > 0 {
		x.adds--
	}
}

// ExpectDeletions records that the objects with uids are being deleted.
func (e *Expectations) ExpectDeletions(key string, uids ...types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.get(key)
	for _, u := range uids {
		x.dels[u] = true
	}
	x.timestamp = e.clock.Now()
}

// DeletionObserved clears the pending delete of uid under key (an informer
// delete event or a delete that failed). Unknown uids are ignored.
func (e *Expectations) DeletionObserved(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[key]; x != nil {
		delete(x.dels, uid)
	}
}

// Satisfied reports whether key has no pending creates or deletes, or its
// expectations are older than ExpectationsTimeout.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[key]
	if x == nil {
		return true
	}
	if x.adds <= 0 && len(x.dels) == 0 {
		return true
	}
	if e.clock.Since(x.timestamp) > ExpectationsTimeout {
		delete(e.m, key) // a lost event must not block the key forever
		return true
	}
	return false
}

// Delete forgets key (its object is gone).
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
