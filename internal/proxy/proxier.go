package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/knftables"
)

// staleChainAge is how long a chain taken out of use stays (flushed)
// before it is deleted: kernels before 6.2 may still count a reference
// from a map element deleted in the same transaction.
const staleChainAge = time.Second

// Proxier programs this node's nftables table from the cluster's
// Services and EndpointSlices. Create it with New before the informer
// factory starts; run it with Run. Safe for concurrent use.
type Proxier struct {
	cfg    Config
	nft    knftables.Interface
	log    *slog.Logger
	synced []cache.InformerSynced
	kick   chan struct{}

	mu       sync.Mutex
	services map[string]*corev1.Service
	slices   map[string]map[string]*discoveryv1.EndpointSlice // service key → slice name → slice
	// sliceOwner is the Service key each slice ("namespace/name") is
	// filed under in slices: a slice event finds its old place without
	// a walk over every Service.
	sliceOwner map[string]string
	dirty      map[string]bool

	// Owned by the sync loop.
	applied  map[string]*part
	hairpin  map[string]int // endpoint address → parts using it
	stale    map[string]time.Time
	needFull bool
	lastFull time.Time
	// conntrack removes stale UDP flows; a field so tests without the
	// kernel can replace it.
	conntrack func(changes []change) error

	stats syncStats
}

// syncStats count what the loop did (read by tests and benchmarks).
type syncStats struct {
	mu          sync.Mutex
	syncs, full int
	lastErr     error
	// applied is closed and replaced after every successful sync.
	applied chan struct{}
}

// New returns a Proxier registered with factory's Service and
// EndpointSlice informers; nft is the table's interface (knftables.New,
// or knftables.NewFake in tests). The caller starts factory after New.
func New(cfg Config, factory informers.SharedInformerFactory, nft knftables.Interface) (*Proxier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Proxier{
		cfg: cfg, nft: nft, log: cfg.Logger.With("component", "service-proxy"),
		kick:       make(chan struct{}, 1),
		services:   map[string]*corev1.Service{},
		slices:     map[string]map[string]*discoveryv1.EndpointSlice{},
		sliceOwner: map[string]string{},
		dirty:      map[string]bool{},
		applied:    map[string]*part{},
		hairpin:    map[string]int{},
		stale:      map[string]time.Time{},
		needFull:   true,
		stats:      syncStats{applied: make(chan struct{})},
	}
	p.conntrack = func(changes []change) error { return clearStaleUDP(changes) }
	svcInf := factory.Core().V1().Services().Informer()
	sliceInf := factory.Discovery().V1().EndpointSlices().Informer()
	if _, err := svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.onService,
		UpdateFunc: func(_, n any) { p.onService(n) },
		DeleteFunc: p.onServiceDelete,
	}); err != nil {
		return nil, fmt.Errorf("service proxy: register service handler: %w", err)
	}
	if _, err := sliceInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.onSlice,
		UpdateFunc: func(_, n any) { p.onSlice(n) },
		DeleteFunc: p.onSliceDelete,
	}); err != nil {
		return nil, fmt.Errorf("service proxy: register endpointslice handler: %w", err)
	}
	p.synced = []cache.InformerSynced{svcInf.HasSynced, sliceInf.HasSynced}
	return p, nil
}

// NewTable returns the knftables interface of cfg's table, failing with
// a clear message when nft is missing or too old.
func NewTable(table string) (knftables.Interface, error) {
	if table == "" {
		table = DefaultTable
	}
	nft, err := knftables.New(knftables.IPv4Family, table)
	if err != nil {
		return nil, fmt.Errorf("service proxy needs nftables (the nft command, Debian package nftables, >= 1.0.1): %w", err)
	}
	return nft, nil
}

func unwrap(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

func (p *Proxier) markDirty(key string) {
	p.dirty[key] = true
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Proxier) onService(obj any) {
	svc, ok := unwrap(obj).(*corev1.Service)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := svc.Namespace + "/" + svc.Name
	p.services[key] = svc
	p.markDirty(key)
}

func (p *Proxier) onServiceDelete(obj any) {
	svc, ok := unwrap(obj).(*corev1.Service)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := svc.Namespace + "/" + svc.Name
	delete(p.services, key)
	p.markDirty(key)
}

func sliceService(s *discoveryv1.EndpointSlice) (string, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return "", false
	}
	return s.Namespace + "/" + name, true
}

func (p *Proxier) onSlice(obj any) {
	s, ok := unwrap(obj).(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	key, ok := sliceService(s)
	p.mu.Lock()
	defer p.mu.Unlock()
	// A slice relabelled to another Service (or unlabelled) leaves its
	// old one.
	id := s.Namespace + "/" + s.Name
	if old, found := p.sliceOwner[id]; found && (!ok || old != key) {
		p.removeSlice(old, id, s.Name)
	}
	if !ok {
		return
	}
	if p.slices[key] == nil {
		p.slices[key] = map[string]*discoveryv1.EndpointSlice{}
	}
	p.slices[key][s.Name] = s
	p.sliceOwner[id] = key
	p.markDirty(key)
}

// removeSlice files slice id (namespace/name) out of Service key. The
// caller holds p.mu.
func (p *Proxier) removeSlice(key, id, name string) {
	delete(p.sliceOwner, id)
	delete(p.slices[key], name)
	if len(p.slices[key]) == 0 {
		delete(p.slices, key)
	}
	p.markDirty(key)
}

func (p *Proxier) onSliceDelete(obj any) {
	s, ok := unwrap(obj).(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Filed where the proxy last saw it (a deleted object's final state
	// may carry labels the proxy never saw).
	id := s.Namespace + "/" + s.Name
	if key, found := p.sliceOwner[id]; found {
		p.removeSlice(key, id, s.Name)
	}
}

// Run waits for the informers, then keeps the table in sync until ctx
// ends. The table stays when Run returns: pods keep their Services while
// the agent restarts (peapod reset removes it, see Cleanup). Run fails
// only when the node cannot carry Service traffic at all.
func (p *Proxier) Run(ctx context.Context) error {
	if err := ensureBridgeNetfilter(); err != nil {
		return err
	}
	if !cache.WaitForCacheSync(ctx.Done(), p.synced...) {
		return nil
	}
	p.log.Info("service proxy started", "table", "ip "+p.cfg.Table, "node", p.cfg.NodeName, "clusterCIDR", p.cfg.ClusterCIDR)
	retry := time.NewTimer(0)
	defer retry.Stop()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-retry.C:
		}
		err := p.syncOnce(ctx)
		next := time.Duration(0)
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.Error("service proxy sync failed; retrying with a full sync", "err", err, "in", backoff)
			next, backoff = backoff, min(backoff*2, 30*time.Second)
		case err == nil:
			backoff = 100 * time.Millisecond
			if len(p.stale) > 0 {
				next = staleChainAge + 100*time.Millisecond
			}
		}
		if untilFull := time.Until(p.lastFull.Add(p.cfg.FullSyncPeriod)); next == 0 || untilFull < next {
			next = max(untilFull, time.Millisecond)
		}
		if !retry.Stop() {
			select {
			case <-retry.C:
			default:
			}
		}
		retry.Reset(next)
	}
}

// syncOnce brings the table up to date: every Service on a full sync
// (the first, after a failure, and every FullSyncPeriod), else only the
// Services whose objects or slices changed since the last sync.
func (p *Proxier) syncOnce(ctx context.Context) error {
	start := time.Now()
	full := p.needFull || time.Since(p.lastFull) >= p.cfg.FullSyncPeriod
	p.mu.Lock()
	keys := p.dirty
	p.dirty = map[string]bool{}
	if full {
		for k := range p.services {
			keys[k] = true
		}
		for k := range p.applied {
			keys[k] = true
		}
	}
	type input struct {
		svc    *corev1.Service
		slices []*discoveryv1.EndpointSlice
	}
	inputs := make(map[string]input, len(keys))
	for k := range keys {
		in := input{svc: p.services[k]}
		for _, s := range p.slices[k] {
			in.slices = append(in.slices, s)
		}
		inputs[k] = in
	}
	p.mu.Unlock()

	p.deleteStaleChains(ctx)

	order := sortedKeys(inputs)
	changes := make([]change, 0, len(order))
	for _, k := range order {
		var np *part
		if in := inputs[k]; in.svc != nil {
			np = renderService(servicePorts(in.svc, in.slices, p.cfg.NodeName), p.cfg.ClusterCIDR)
		}
		changes = append(changes, change{old: p.applied[k], new: np})
	}
	tx := p.nft.NewTransaction()
	if full {
		addFixed(tx)
	}
	stale, hairpin := writeChanges(tx, changes, full, p.hairpin)
	if full {
		leftovers, err := p.leftovers(ctx, changes)
		if err != nil {
			return p.failed(keys, err)
		}
		for _, c := range leftovers.chains {
			tx.Flush(&knftables.Chain{Name: c})
			stale = append(stale, c)
		}
		for _, s := range leftovers.sets {
			tx.Delete(&knftables.Set{Name: s})
		}
	}
	if tx.NumOperations() > 0 {
		if err := p.nft.Run(ctx, tx); err != nil {
			return p.failed(keys, fmt.Errorf("write nftables table ip %s: %w", p.cfg.Table, err))
		}
	}
	if full {
		clear(p.hairpin)
	}
	for ip, n := range hairpin {
		if n > 0 {
			p.hairpin[ip] = n
		} else {
			delete(p.hairpin, ip)
		}
	}
	for i, k := range order {
		if changes[i].new == nil {
			delete(p.applied, k)
		} else {
			p.applied[k] = changes[i].new
		}
		if changes[i].new != nil {
			for name := range changes[i].new.chains {
				delete(p.stale, name)
			}
		}
	}
	for _, c := range stale {
		p.stale[c] = start
	}
	if full {
		p.needFull = false
		p.lastFull = start
	}
	if err := p.conntrack(changes); err != nil {
		p.log.Warn("remove stale UDP conntrack entries", "err", err)
	}
	p.stats.mu.Lock()
	p.stats.syncs++
	if full {
		p.stats.full++
	}
	p.stats.lastErr = nil
	close(p.stats.applied)
	p.stats.applied = make(chan struct{})
	p.stats.mu.Unlock()
	p.log.Debug("service proxy synced", "full", full, "services", len(order), "operations", tx.NumOperations(), "took", time.Since(start))
	return nil
}

// failed records a failed sync: the next one is full and covers keys.
func (p *Proxier) failed(keys map[string]bool, err error) error {
	p.needFull = true
	p.mu.Lock()
	for k := range keys {
		p.dirty[k] = true
	}
	p.mu.Unlock()
	p.stats.mu.Lock()
	p.stats.lastErr = err
	p.stats.mu.Unlock()
	return err
}

type leftovers struct{ chains, sets []string }

// leftovers lists the per-Service chains and affinity sets in the kernel
// that no Service wants any more (left by an earlier run of the proxy).
func (p *Proxier) leftovers(ctx context.Context, changes []change) (leftovers, error) {
	var out leftovers
	want := map[string]bool{}
	for _, c := range changes {
		if c.new == nil {
			continue
		}
		for n := range c.new.chains {
			want[n] = true
		}
		for n := range c.new.affinity {
			want[n] = true
		}
	}
	chains, err := p.nft.List(ctx, "chains")
	if err != nil && !knftables.IsNotFound(err) {
		return out, fmt.Errorf("list chains of table ip %s: %w", p.cfg.Table, err)
	}
	for _, c := range chains {
		if isServiceObject(c) && !want[c] {
			if _, already := p.stale[c]; !already {
				out.chains = append(out.chains, c)
			}
		}
	}
	sets, err := p.nft.List(ctx, "sets")
	if err != nil && !knftables.IsNotFound(err) {
		return out, fmt.Errorf("list sets of table ip %s: %w", p.cfg.Table, err)
	}
	for _, s := range sets {
		if isServiceObject(s) && !want[s] {
			out.sets = append(out.sets, s)
		}
	}
	return out, nil
}

// deleteStaleChains deletes the chains out of use for staleChainAge. A
// failure leaves them for the next full sync to empty and retry.
func (p *Proxier) deleteStaleChains(ctx context.Context) {
	if len(p.stale) == 0 {
		return
	}
	tx := p.nft.NewTransaction()
	var gone []string
	for c, since := range p.stale {
		if time.Since(since) >= staleChainAge {
			tx.Delete(&knftables.Chain{Name: c})
			gone = append(gone, c)
		}
	}
	if len(gone) == 0 {
		return
	}
	for _, c := range gone {
		delete(p.stale, c)
	}
	if err := p.nft.Run(ctx, tx); err != nil && !errors.Is(err, context.Canceled) {
		p.log.Warn("delete chains out of use", "count", len(gone), "err", err)
		p.needFull = true
	}
}

// Synced returns a channel closed after the next successful sync, to
// wait for a change to be programmed (tests, benchmarks).
func (p *Proxier) Synced() <-chan struct{} {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	return p.stats.applied
}
