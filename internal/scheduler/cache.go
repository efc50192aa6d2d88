package scheduler

import (
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// cache is the scheduler's view of the cluster: nodes and the pods bound
// or assumed on them. Assumed pods are ones the scheduler has chosen a node
// for but the assigned-pods informer has not yet reported bound; counting
// them keeps a burst of decisions from overcommitting a node. All methods
// are safe for concurrent use.
type cache struct {
	mu       sync.Mutex
	nodes    map[string]*NodeInfo
	sorted   []*NodeInfo // nodes with a Node object, by name; nil when stale
	pods     map[string]*cachedPod
	nsLabels map[string]map[string]string
	// spreadSelector is the snapshot's SpreadSelector; nil until set.
	spreadSelector func(*v1.Pod) labels.Selector
}

// cachedPod is where the cache has put a pod.
type cachedPod struct {
	pod     *v1.Pod
	node    string
	assumed bool
	expiry  *time.Timer // set once binding succeeded, until confirmed
}

func newCache() *cache {
	return &cache{
		nodes:    map[string]*NodeInfo{},
		pods:     map[string]*cachedPod{},
		nsLabels: map[string]map[string]string{},
	}
}

// setNode adds or updates a node.
func (c *cache) setNode(n *v1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.nodes[n.Name]
	if ni == nil {
		ni = NewNodeInfo(nil)
		c.nodes[n.Name] = ni
	}
	if ni.Node == nil {
		c.sorted = nil
	}
	ni.SetNode(n)
}

// removeNode removes a node; its pods stay accounted until they go.
func (c *cache) removeNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.nodes[name]
	if ni == nil {
		return
	}
	c.sorted = nil
	if len(ni.pods) == 0 {
		delete(c.nodes, name)
		return
	}
	ni.SetNode(nil)
}

// setSpreadSelector sets how a pod without topology spread constraints
// finds the pods Kubernetes' default constraints spread it against.
func (c *cache) setSpreadSelector(f func(*v1.Pod) labels.Selector) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spreadSelector = f
}

// setNamespace records a namespace's labels; nil labels remove it.
func (c *cache) setNamespace(name string, labels map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if labels == nil {
		delete(c.nsLabels, name)
		return
	}
	c.nsLabels[name] = labels
}

// addPodLocked places p on node, replacing where it was.
func (c *cache) addPodLocked(p *v1.Pod, node string, assumed bool) {
	c.removePodLocked(p)
	ni := c.nodes[node]
	if ni == nil {
		ni = NewNodeInfo(nil)
		c.nodes[node] = ni
	}
	ni.AddPod(p)
	c.pods[podKey(p)] = &cachedPod{pod: p, node: node, assumed: assumed}
}

func (c *cache) removePodLocked(p *v1.Pod) {
	key := podKey(p)
	cp := c.pods[key]
	if cp == nil {
		return
	}
	if cp.expiry != nil {
		cp.expiry.Stop()
	}
	delete(c.pods, key)
	if ni := c.nodes[cp.node]; ni != nil {
		ni.RemovePod(cp.pod)
		if ni.Node == nil && len(ni.pods) == 0 {
			delete(c.nodes, cp.node)
		}
	}
}

// setBoundPod records a pod the API reports bound to a node, confirming it
// if it was assumed. Terminated pods are removed instead.
func (c *cache) setBoundPod(p *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if terminated(p) {
		c.removePodLocked(p)
		return
	}
	c.addPodLocked(p, p.Spec.NodeName, false)
}

// removePod forgets a pod, bound or assumed.
func (c *cache) removePod(p *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removePodLocked(p)
}

// isPlaced reports whether the cache already has p on a node, assumed or
// reported bound: the pending-pods informer may lag behind the
// assigned-pods one, and such a pod must not be scheduled twice.
func (c *cache) isPlaced(p *v1.Pod) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pods[podKey(p)] != nil
}

// scheduleAndAssume runs Schedule against the cache and, when a node fits,
// assumes pod there before releasing the lock, so the next decision
// already counts it.
func (c *cache) scheduleAndAssume(pod *v1.Pod) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sorted == nil {
		c.sorted = make([]*NodeInfo, 0, len(c.nodes))
		for _, ni := range c.nodes {
			if ni.Node != nil {
				c.sorted = append(c.sorted, ni)
			}
		}
		sort.Slice(c.sorted, func(i, j int) bool { return c.sorted[i].Node.Name < c.sorted[j].Node.Name })
	}
	node, err := Schedule(pod, &Snapshot{Nodes: c.sorted, NamespaceLabels: c.nsLabels, SpreadSelector: c.spreadSelector})
	if err != nil {
		return "", err
	}
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = node
	c.addPodLocked(assumed, node, true)
	return node, nil
}

// forget undoes an assumption (the bind failed). A pod already confirmed
// by the informer is left alone.
func (c *cache) forget(p *v1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cp := c.pods[podKey(p)]; cp != nil && cp.assumed {
		c.removePodLocked(p)
	}
}

// finishBinding starts the expiry of an assumed pod whose bind succeeded:
// if the informer has not confirmed it within ttl (the pod was deleted
// before the informer saw it bound), it is forgotten and onExpire runs.
func (c *cache) finishBinding(p *v1.Pod, ttl time.Duration, onExpire func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := podKey(p)
	cp := c.pods[key]
	if cp == nil || !cp.assumed {
		return
	}
	cp.expiry = time.AfterFunc(ttl, func() {
		c.mu.Lock()
		cur := c.pods[key]
		expired := cur == cp && cur.assumed
		if expired {
			cp.expiry = nil
			c.removePodLocked(cp.pod)
		}
		c.mu.Unlock()
		if expired && onExpire != nil {
			onExpire()
		}
	})
}

// stop cancels pending expiries.
func (c *cache) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cp := range c.pods {
		if cp.expiry != nil {
			cp.expiry.Stop()
			cp.expiry = nil
		}
	}
}

// nodeCount is the number of known nodes.
func (c *cache) nodeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ni := range c.nodes {
		if ni.Node != nil {
			n++
		}
	}
	return n
}
