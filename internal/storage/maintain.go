package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	etcd "go.etcd.io/etcd/client/v3"
)

// DBStatus is what the embedded etcd's maintenance last saw: the size of
// its database file, how much of it holds live data, its space quota and
// its alarms. The server writes it to <etcd dir>/status.json for
// `peapod ps`.
type DBStatus struct {
	Checked     time.Time `json:"checked"`
	DBSize      int64     `json:"dbSize"`
	DBSizeInUse int64     `json:"dbSizeInUse"`
	Quota       int64     `json:"quota"`
	// Alarms are the member's raised alarms: NOSPACE (the database
	// reached its quota: etcd refuses every write but deletes), CORRUPT.
	Alarms []string `json:"alarms,omitempty"`
	// LastDefrag is when maintenance last defragmented the database.
	LastDefrag time.Time `json:"lastDefrag,omitzero"`
	// Recovered says the last check found NOSPACE and cleared it:
	// history compacted, database defragmented, alarm disarmed.
	Recovered bool `json:"recovered,omitempty"`
}

// StatusFileName is DBStatus's file in the embedded etcd's directory.
const StatusFileName = "status.json"

// ReadDBStatus reads the status the server last wrote in etcdDir. A
// missing file is (nil, nil): no server has run maintenance there.
func ReadDBStatus(etcdDir string) (*DBStatus, error) {
	b, err := os.ReadFile(filepath.Join(etcdDir, StatusFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read etcd status: %w", err)
	}
	var st DBStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read etcd status %s: %w", filepath.Join(etcdDir, StatusFileName), err)
	}
	return &st, nil
}

// DefaultQuotaBackendBytes is etcd's own default space quota.
const DefaultQuotaBackendBytes = 2 << 30

// DefaultSnapshotCount is how many raft entries the embedded etcd applies
// between snapshots: etcd 3.6's default, a tenth of 3.5's. The entries
// since the last snapshot are held in memory, so this bounds the
// member's memory on a small node.
const DefaultSnapshotCount = 10000

// Defragmentation rewrites the database file without its free pages; it
// runs when at least minFreeForDefrag bytes, and half the file, are free
// (etcd keeps freed pages for reuse and never returns them otherwise).
const minFreeForDefrag = 16 << 20

// MaintainOptions tune Maintain.
type MaintainOptions struct {
	// Interval between checks; 0 is one minute.
	Interval time.Duration
	// Report, if set, gets every check's status.
	Report func(DBStatus)
	// Log gets maintenance errors and actions; nil is slog.Default().
	Log *slog.Logger
}

// Maintain keeps the embedded etcd small until ctx ends: each check (see
// MaintainOnce) reads the member's status, defragments a database that is
// mostly free pages, and recovers from a NOSPACE alarm.
func (e *Embedded) Maintain(ctx context.Context, opts MaintainOptions) {
	if opts.Interval == 0 {
		opts.Interval = time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	var last time.Time
	for {
		st, err := e.MaintainOnce(ctx, last)
		if err != nil && ctx.Err() == nil {
			opts.Log.Error("etcd maintenance", "err", err)
		}
		if err == nil {
			last = st.LastDefrag
			if opts.Report != nil {
				opts.Report(st)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MaintainOnce is one maintenance check. With a NOSPACE alarm raised, it
// compacts the whole history (etcd keeps every revision until compacted;
// deletes free nothing before), defragments, and disarms the alarm if the
// live data then fits the quota, so writes are taken again; otherwise the
// alarm stays and the status says so. Without one, it defragments when
// most of the file is free pages. lastDefrag is carried into the status.
func (e *Embedded) MaintainOnce(ctx context.Context, lastDefrag time.Time) (DBStatus, error) {
	cli := e.store.client
	st, err := e.status(ctx)
	if err != nil {
		return st, err
	}
	st.LastDefrag = lastDefrag
	if slices.Contains(st.Alarms, etcdserverpb.AlarmType_NOSPACE.String()) {
		rev, err := e.store.CurrentRevision(ctx)
		if err != nil {
			return st, fmt.Errorf("recover from NOSPACE: %w", err)
		}
		if _, err := cli.Compact(ctx, rev, etcd.WithCompactPhysical()); err != nil && !errors.Is(mapErr("compact", "", err), ErrCompacted) {
			return st, fmt.Errorf("recover from NOSPACE: compact to %d: %w", rev, err)
		}
		if err := e.defragment(ctx, &st); err != nil {
			return st, fmt.Errorf("recover from NOSPACE: %w", err)
		}
		if st.DBSizeInUse >= st.Quota {
			return st, nil
		}
		if _, err := cli.AlarmDisarm(ctx, &etcd.AlarmMember{MemberID: uint64(e.etcd.Server.MemberID()), Alarm: etcdserverpb.AlarmType_NOSPACE}); err != nil {
			return st, fmt.Errorf("recover from NOSPACE: disarm: %w", err)
		}
		lastDefrag := st.LastDefrag
		if st, err = e.status(ctx); err != nil {
			return st, err
		}
		st.LastDefrag, st.Recovered = lastDefrag, true
		return st, nil
	}
	if free := st.DBSize - st.DBSizeInUse; free >= minFreeForDefrag && free*2 >= st.DBSize {
		if err := e.defragment(ctx, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// status reads the member's sizes, quota and alarms.
func (e *Embedded) status(ctx context.Context) (DBStatus, error) {
	cli := e.store.client
	resp, err := cli.Status(ctx, e.Endpoint())
	if err != nil {
		return DBStatus{}, fmt.Errorf("etcd status: %w", err)
	}
	alarms, err := cli.AlarmList(ctx)
	if err != nil {
		return DBStatus{}, fmt.Errorf("etcd alarms: %w", err)
	}
	st := DBStatus{Checked: time.Now(), DBSize: resp.DbSize, DBSizeInUse: resp.DbSizeInUse, Quota: e.quota}
	for _, a := range alarms.Alarms {
		st.Alarms = append(st.Alarms, a.Alarm.String())
	}
	return st, nil
}

// defragment rewrites the database file and updates st's sizes.
func (e *Embedded) defragment(ctx context.Context, st *DBStatus) error {
	if _, err := e.store.client.Defragment(ctx, e.Endpoint()); err != nil {
		return fmt.Errorf("defragment: %w", err)
	}
	after, err := e.status(ctx)
	if err != nil {
		return err
	}
	st.DBSize, st.DBSizeInUse, st.LastDefrag = after.DBSize, after.DBSizeInUse, time.Now()
	return nil
}

// WriteDBStatus writes st where ReadDBStatus finds it, atomically.
func WriteDBStatus(etcdDir string, st DBStatus) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(etcdDir, StatusFileName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write etcd status: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(etcdDir, StatusFileName)); err != nil {
		return fmt.Errorf("write etcd status: %w", err)
	}
	return nil
}
