package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	etcd "go.etcd.io/etcd/client/v3"
)

// CompactRevKey is the etcd key through which every API server sharing an
// etcd agrees on who compacts: kube-apiserver's own key, so peapod and
// its tools read it the same way.
const CompactRevKey = "compact_rev_key"

// DefaultCompactionInterval is kube-apiserver's --etcd-compaction-interval.
const DefaultCompactionInterval = 5 * time.Minute

// RunCompactor compacts an external etcd's history every interval, as
// kube-apiserver does, until ctx ends. Each round compacts up to the
// revision the previous round saw, so watchers always keep at least one
// interval of history to resume from.
//
// It is safe with several API servers on one etcd: a round first bumps
// the version of CompactRevKey in a transaction that succeeds only if no
// one else bumped it since this server last looked, so in each interval
// exactly one server compacts and the others only learn the new version
// (kube-apiserver's storage/etcd3/compact.go, the same protocol).
//
// The embedded etcd compacts itself (EmbeddedOptions.CompactionRetention);
// call this only for --etcd-servers.
func (s *Etcd) RunCompactor(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = DefaultCompactionInterval
	}
	var version, rev int64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, nextRev, compacted, err := compactRound(ctx, s.client, version, rev)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("etcd compaction", "revision", rev, "err", err)
			}
			continue
		}
		if compacted {
			log.Debug("etcd compacted", "revision", rev)
		}
		version, rev = next, nextRev
	}
}

// compactRound is one round of the protocol: if CompactRevKey's version is
// still version (nobody compacted since this server's last round), record
// the current revision in it and compact to rev (the revision seen one
// round ago; 0 on a first round, which compacts nothing). It returns the
// key's version and the store's revision for the next round, and whether
// this server compacted.
func compactRound(ctx context.Context, c *etcd.Client, version, rev int64) (int64, int64, bool, error) {
	resp, err := c.Txn(ctx).
		If(etcd.Compare(etcd.Version(CompactRevKey), "=", version)).
		Then(etcd.OpPut(CompactRevKey, strconv.FormatInt(rev, 10))).
		Else(etcd.OpGet(CompactRevKey)).
		Commit()
	if err != nil {
		return version, rev, false, fmt.Errorf("claim compaction: %w", err)
	}
	current := resp.Header.Revision
	if !resp.Succeeded {
		// Another server compacted this round: follow its version.
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return 0, current, false, nil
		}
		return kvs[0].Version, current, false, nil
	}
	if rev == 0 {
		return version + 1, current, false, nil
	}
	if _, err := c.Compact(ctx, rev); err != nil {
		return version + 1, current, false, fmt.Errorf("compact to %d: %w", rev, err)
	}
	return version + 1, current, true, nil
}
