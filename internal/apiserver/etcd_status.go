package apiserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/peapod/peapod/internal/storage"
)

// reportEtcdStatus surfaces a maintenance check of the embedded etcd: the
// status goes to <etcd dir>/status.json, which `peapod ps` shows, and a
// NOSPACE alarm becomes a Warning Event in kube-system, as soon as the
// store takes writes again (while the alarm is raised etcd refuses every
// write, the Event's too; the log and the status file say it meanwhile).
func (a *api) reportEtcdStatus(ctx context.Context, dir string, st storage.DBStatus) {
	if err := storage.WriteDBStatus(dir, st); err != nil {
		a.log.Warn("etcd status for peapod ps", "err", err)
	}
	switch {
	case st.Recovered:
		a.recordSystemEvent(ctx, corev1.EventTypeWarning, "EtcdSpaceRecovered", fmt.Sprintf(
			"the state store reached its space quota (%s) and refused writes; its history was compacted and its database defragmented to %s, and it takes writes again",
			mib(st.Quota), mib(st.DBSize)))
	case len(st.Alarms) > 0:
		a.log.Error("the state store has raised alarms: writes are refused until they clear",
			"alarms", strings.Join(st.Alarms, ","), "dbSize", st.DBSize, "dbSizeInUse", st.DBSizeInUse, "quota", st.Quota)
	}
}

// recordSystemEvent writes an Event about the cluster's state store in
// kube-system, regarding that namespace.
func (a *api) recordSystemEvent(ctx context.Context, typ, reason, message string) {
	res := a.byGVR[schema.GroupVersionResource{Version: "v1", Resource: "events"}]
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: "etcd-", Namespace: metav1.NamespaceSystem},
		InvolvedObject: corev1.ObjectReference{Kind: "Namespace", APIVersion: "v1", Name: metav1.NamespaceSystem},
		Reason:         reason, Message: message, Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source:              corev1.EventSource{Component: "peapod-server"},
		ReportingController: "peapod.io/server", ReportingInstance: a.serverAddress,
	}
	if _, err := a.create(ctx, res, metav1.NamespaceSystem, ev, false); err != nil {
		a.log.Warn("record event", "reason", reason, "err", err)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
