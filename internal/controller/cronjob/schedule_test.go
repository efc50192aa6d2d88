package cronjob

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMostRecentSchedule(t *testing.T) {
	created := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	mk := func(schedule string, tz *string, deadline *int64, last *time.Time) *batchv1.CronJob {
		cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created)},
			Spec: batchv1.CronJobSpec{Schedule: schedule, TimeZone: tz, StartingDeadlineSeconds: deadline}}
		if last != nil {
			lt := metav1.NewTime(*last)
			cj.Status.LastScheduleTime = &lt
		}
		return cj
	}
	berlin := "Europe/Berlin"
	ten := int64(10)
	at := func(h, m int) time.Time { return time.Date(2026, 3, 1, h, m, 0, 0, time.UTC) }
	lastRun := at(10, 5)
	for _, c := range []struct {
		name   string
		cj     *batchv1.CronJob
		now    time.Time
		want   *time.Time
		missed int
	}{
		{"nothing due yet", mk("*/5 * * * *", nil, nil, nil), at(10, 4), nil, 0},
		{"first due", mk("*/5 * * * *", nil, nil, nil), at(10, 5).Add(time.Second), ptr(at(10, 5)), 0},
		{"several missed: the latest", mk("*/5 * * * *", nil, nil, nil), at(10, 17), ptr(at(10, 15)), 2},
		{"after the last run", mk("*/5 * * * *", nil, nil, &lastRun), at(10, 9), nil, 0},
		// 12:00 in Berlin (UTC+1 in March) is 11:00 UTC.
		{"time zone", mk("0 12 * * *", &berlin, nil, nil), at(11, 0), ptr(at(11, 0)), 0},
		{"time zone not yet", mk("0 12 * * *", &berlin, nil, nil), at(10, 59), nil, 0},
		{"starting deadline passed over", mk("*/5 * * * *", nil, &ten, nil), at(10, 7), nil, 0},
		{"within the starting deadline", mk("*/5 * * * *", nil, &ten, nil), at(10, 5).Add(5 * time.Second), ptr(at(10, 5)), 0},
	} {
		sched, err := parseSchedule(c.cj)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, missed := mostRecentSchedule(c.cj, sched, c.now)
		if (got == nil) != (c.want == nil) || (got != nil && !got.Equal(*c.want)) || missed != c.missed {
			t.Errorf("%s: %v (missed %d), want %v (missed %d)", c.name, got, missed, c.want, c.missed)
		}
	}
}

func ptr[T any](v T) *T { return &v }
