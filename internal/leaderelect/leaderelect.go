// Package leaderelect runs a component on one server of a cluster at a
// time, elected with a coordination.k8s.io Lease exactly as
// kube-scheduler and kube-controller-manager are (client-go's
// tools/leaderelection, a Lease in kube-system named after the
// component, Kubernetes' default durations 15s/10s/2s).
//
// Usage:
//
//  1. Fill a Config: the Lease's name (kube-scheduler,
//     kube-controller-manager), the Candidate (the server's node name)
//     and a client; NewIdentity gives the holder identity,
//     <candidate>_<unique id>, as kube-scheduler's is <hostname>_<uuid>.
//  2. Run(ctx, cfg, lead) campaigns; while this server holds the Lease,
//     lead runs with a context that ends when the Lease is lost (not
//     renewed within RenewDeadline). Run waits for lead to return, gives
//     the Lease up, and campaigns again, until ctx ends. A lead that
//     returns on its own ends Run with its error.
//
// Two differences from kube-scheduler, both about handing over: the Lease
// is released only after lead has returned (client-go's ReleaseOnCancel
// releases while the component may still be stopping, so for a moment two
// could run), and a server restarted after a crash takes back at once a
// Lease its previous run held (same Candidate, other unique id) instead
// of waiting out LeaseDuration: that holder is dead, as node names are
// unique in a cluster.
package leaderelect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Kubernetes' defaults (kube-scheduler's and kube-controller-manager's
// --leader-elect-lease-duration, --leader-elect-renew-deadline,
// --leader-elect-retry-period).
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Lease names of the components, as Kubernetes names them.
const (
	SchedulerLease         = "kube-scheduler"
	ControllerManagerLease = "kube-controller-manager"
)

const (
	defaultNamespace  = metav1.NamespaceSystem
	identitySeparator = "_"
	// releasedLeaseSeconds is the duration a released Lease is left with,
	// as client-go's release writes it.
	releasedLeaseSeconds = 1
)

// Durations are how an election is timed. The zero value means
// Kubernetes' defaults.
type Durations struct {
	// LeaseDuration is how long a Lease not renewed stays its holder's:
	// how long the others wait after the leader vanished.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps trying to renew before
	// it gives up leading (its components stop).
	RenewDeadline time.Duration
	// RetryPeriod is how often candidates try to acquire, and the leader
	// to renew.
	RetryPeriod time.Duration
}

// WithDefaults fills zero fields with Kubernetes' defaults.
func (d Durations) WithDefaults() Durations {
	if d.LeaseDuration == 0 {
		d.LeaseDuration = DefaultLeaseDuration
	}
	if d.RenewDeadline == 0 {
		d.RenewDeadline = DefaultRenewDeadline
	}
	if d.RetryPeriod == 0 {
		d.RetryPeriod = DefaultRetryPeriod
	}
	return d
}

// Validate checks the durations as client-go does, naming the server's
// flags. Pure.
func (d Durations) Validate() error {
	switch {
	case d.LeaseDuration <= 0 || d.RenewDeadline <= 0 || d.RetryPeriod <= 0:
		return fmt.Errorf("--leader-elect-lease-duration %s, --leader-elect-renew-deadline %s and --leader-elect-retry-period %s must all be positive",
			d.LeaseDuration, d.RenewDeadline, d.RetryPeriod)
	case d.LeaseDuration <= d.RenewDeadline:
		return fmt.Errorf("--leader-elect-lease-duration %s must be longer than --leader-elect-renew-deadline %s: "+
			"a leader must give up before the others may take over", d.LeaseDuration, d.RenewDeadline)
	case d.RenewDeadline <= time.Duration(leaderelection.JitterFactor*float64(d.RetryPeriod)):
		return fmt.Errorf("--leader-elect-renew-deadline %s must be longer than %.1f × --leader-elect-retry-period %s",
			d.RenewDeadline, leaderelection.JitterFactor, d.RetryPeriod)
	}
	return nil
}

// Config configures one election.
type Config struct {
	Client kubernetes.Interface
	// Name is the Lease's name (SchedulerLease, ControllerManagerLease).
	Name string
	// Namespace of the Lease; default kube-system.
	Namespace string
	// Candidate is this server's node name; Identity (from NewIdentity)
	// starts with it.
	Candidate string
	Identity  string
	Durations Durations
	Logger    *slog.Logger
}

// NewIdentity returns <candidate>_<random id>: unique per run of a server,
// and saying which server holds a Lease.
func NewIdentity(candidate string) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	return candidate + identitySeparator + hex.EncodeToString(b), nil
}

// Candidate returns the candidate part of a holder identity (the node
// name of the server holding a Lease). Pure.
func Candidate(identity string) string {
	if i := strings.LastIndex(identity, identitySeparator); i >= 0 {
		return identity[:i]
	}
	return identity
}

func (c *Config) defaults() error {
	if c.Namespace == "" {
		c.Namespace = defaultNamespace
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Durations = c.Durations.WithDefaults()
	if c.Client == nil || c.Name == "" || c.Candidate == "" {
		return errors.New("leader election: client, lease name and candidate are required")
	}
	if !strings.HasPrefix(c.Identity, c.Candidate+identitySeparator) {
		return fmt.Errorf("leader election: identity %q does not start with candidate %q", c.Identity, c.Candidate+identitySeparator)
	}
	return c.Durations.Validate()
}

func (c *Config) lock() *resourcelock.LeaseLock {
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name},
		Client:     c.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.Identity},
	}
}

// Run campaigns for the Lease and runs lead while this server holds it,
// until ctx ends (then it returns nil, the Lease given up) or lead returns
// on its own (then it returns lead's error, or an error saying it
// stopped). See the package doc.
func Run(ctx context.Context, cfg Config, lead func(ctx context.Context) error) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	log := cfg.Logger.With("lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
	if err := reclaim(ctx, &cfg, log); err != nil && ctx.Err() == nil {
		log.Warn("could not take back this server's own Lease from before a restart; waiting for it to expire", "err", err)
	}
	for {
		err, lost := term(ctx, &cfg, log, lead)
		if ctx.Err() != nil {
			return nil
		}
		if !lost {
			return err
		}
		log.Warn("lost the lease; campaigning again")
	}
}

// term is one campaign and, if won, one term of leading. lost reports
// that the term ended because the Lease was lost (Run campaigns again);
// otherwise err is why lead ended.
func term(ctx context.Context, cfg *Config, log *slog.Logger, lead func(ctx context.Context) error) (err error, lost bool) {
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	lock := &acquireWatch{Interface: cfg.lock(), identity: cfg.Identity}
	var onItsOwn atomic.Bool
	done := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:          lock,
		LeaseDuration: cfg.Durations.LeaseDuration,
		RenewDeadline: cfg.Durations.RenewDeadline,
		RetryPeriod:   cfg.Durations.RetryPeriod,
		Name:          cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				log.Info("leading")
				err := lead(lctx)
				if lctx.Err() == nil {
					onItsOwn.Store(true)
					cancel() // stop renewing
				}
				done <- err
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(identity string) {
				if identity != cfg.Identity {
					log.Info("another server leads", "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election %s: %w", cfg.Name, err), false
	}
	// Run returns when ctx ends before the Lease is won, or when leading
	// ends: the Lease not renewed in time, ctx ended, or lead returned.
	le.Run(ectx)
	if !lock.acquired.Load() {
		return nil, false // ctx ended while campaigning
	}
	err = <-done // lead has seen its context end, or ended it
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Durations.RenewDeadline)
	defer rcancel()
	if rerr := release(rctx, cfg); rerr != nil {
		log.Warn("release the lease", "err", rerr)
	}
	switch {
	case ctx.Err() != nil:
		return nil, false
	case onItsOwn.Load() && err == nil:
		return errors.New("stopped"), false
	case onItsOwn.Load():
		return err, false
	}
	return nil, true
}

// acquireWatch is a Lease lock that remembers whether this server ever
// wrote itself in as holder: le.Run starts OnStartedLeading only after
// such a write, so afterwards term knows whether to wait for lead.
type acquireWatch struct {
	resourcelock.Interface
	identity string
	acquired atomic.Bool
}

func (l *acquireWatch) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, rec)
	if err == nil && rec.HolderIdentity == l.identity {
		l.acquired.Store(true)
	}
	return err
}

func (l *acquireWatch) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, rec)
	if err == nil && rec.HolderIdentity == l.identity {
		l.acquired.Store(true)
	}
	return err
}

// release gives the Lease up if this server still holds it, as client-go's
// ReleaseOnCancel does (holder cleared, duration 1s), so a candidate takes
// it on its next try.
func release(ctx context.Context, cfg *Config) error {
	return clearHolder(ctx, cfg, func(holder string) bool { return holder == cfg.Identity })
}

// reclaim clears a Lease held by an earlier run of this same server (same
// candidate, another identity): it crashed, or it would still hold it.
func reclaim(ctx context.Context, cfg *Config, log *slog.Logger) error {
	return clearHolder(ctx, cfg, func(holder string) bool {
		if holder != cfg.Identity && Candidate(holder) == cfg.Candidate {
			log.Info("taking back the lease held by this server before a restart", "previous", holder)
			return true
		}
		return false
	})
}

// clearHolder empties the Lease's holder when match(holder) says so,
// with compare-and-swap on the Lease read; a Lease that is absent or
// changed meanwhile is left alone.
func clearHolder(ctx context.Context, cfg *Config, match func(holder string) bool) error {
	lock := cfg.lock()
	rec, _, err := lock.Get(ctx)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.HolderIdentity == "" || !match(rec.HolderIdentity) {
		return nil
	}
	now := metav1.NewTime(time.Now())
	err = lock.Update(ctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions:    rec.LeaderTransitions,
		LeaseDurationSeconds: releasedLeaseSeconds,
		RenewTime:            now,
		AcquireTime:          now,
	})
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}
