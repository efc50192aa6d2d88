package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"
)

// Past its space quota the embedded etcd raises NOSPACE and refuses
// writes; once the data is deleted, one maintenance check compacts,
// defragments and disarms the alarm, and writes are taken again. The
// status it reports, written for `peapod ps`, shows each step.
func TestMaintenanceRecoversFromNoSpace(t *testing.T) {
	dir, err := os.MkdirTemp("", "pp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	const quota = 24 << 20
	e, err := StartEmbedded(context.Background(), dir, EmbeddedOptions{TLS: writeTestTLS(t, dir), QuotaBackendBytes: quota})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	s := e.Store()

	value := make([]byte, 1<<20)
	var written []string
	var full error
	for i := 0; i < 100 && full == nil; i++ {
		key := fmt.Sprintf("/fill/%03d", i)
		if _, full = s.Create(ctx, key, value); full == nil {
			written = append(written, key)
		}
	}
	if full == nil {
		t.Fatalf("100 MiB written under a %d MiB quota without NOSPACE", quota>>20)
	}
	st, err := e.MaintainOnce(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(st.Alarms, "NOSPACE") || st.Recovered {
		t.Fatalf("status with the database full: %+v (write error %v), want NOSPACE, not recovered", st, full)
	}
	// Still full: the check keeps the alarm rather than disarm it for
	// nothing.
	if _, err := s.Create(ctx, "/after", []byte("x")); err == nil {
		t.Fatal("a write was taken while the database is over its quota")
	}

	for _, k := range written {
		if _, err := s.Delete(ctx, k, 0); err != nil {
			t.Fatalf("delete %s under NOSPACE: %v", k, err)
		}
	}
	st, err = e.MaintainOnce(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Alarms) != 0 || !st.Recovered || st.LastDefrag.IsZero() || st.DBSize >= quota/2 {
		t.Fatalf("status after the data was deleted: %+v, want recovered, defragmented, no alarm", st)
	}
	if _, err := s.Create(ctx, "/after", []byte("x")); err != nil {
		t.Fatalf("write after recovery: %v", err)
	}

	if err := WriteDBStatus(e.Dir(), st); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDBStatus(e.Dir())
	if err != nil || got == nil || got.DBSize != st.DBSize || !got.Recovered || got.Quota != quota {
		t.Fatalf("status read back: %+v %v, want %+v", got, err, st)
	}
	if none, err := ReadDBStatus(t.TempDir()); none != nil || err != nil {
		t.Fatalf("status of a dir without one: %+v %v", none, err)
	}
	if errors.Is(full, ErrTooLarge) {
		t.Fatalf("NOSPACE reported as a too-large request: %v", full)
	}
}
