package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/peapod/peapod/internal/storage"
)

// handleWatch streams watch events. Semantics follow Kubernetes:
//   - resourceVersion N: every change after N, in order; 410 Gone (as an
//     ERROR event) if N was compacted.
//   - resourceVersion "" or "0": synthetic ADDED events for the current
//     state, then changes.
//   - sendInitialEvents=true (watch-list): the current state as ADDED
//     events, then a BOOKMARK annotated k8s.io/initial-events-end, then
//     changes.
//   - allowWatchBookmarks=true: a BOOKMARK every bookmark interval.
func (a *api) handleWatch(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	mc, err := a.negotiate(r, "Table")
	if err != nil {
		return err
	}
	if mc.info.StreamSerializer == nil {
		return apierrors.NewBadRequest("no streaming serializer for " + mc.info.MediaType)
	}
	q := r.URL.Query()
	sel, err := parseSelector(info.res, q.Get("labelSelector"), q.Get("fieldSelector"))
	if err != nil {
		return err
	}
	timeout := 30 * time.Minute
	if t := q.Get("timeoutSeconds"); t != "" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid timeoutSeconds %q", t))
		}
		timeout = time.Duration(n) * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	rv := q.Get("resourceVersion")
	sendInitial := q.Get("sendInitialEvents") == "true"
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	if sendInitial && q.Get("resourceVersionMatch") != string(metav1.ResourceVersionMatchNotOlderThan) {
		return apierrors.NewInvalid(info.res.GroupVersionKind().GroupKind(), "", field.ErrorList{
			field.Forbidden(field.NewPath("resourceVersionMatch"), "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")})
	}
	var initial []runtime.Object
	var startRev int64
	if sendInitial || rv == "" || rv == "0" {
		lr, err := a.listObjects(ctx, info.res, info.namespace, sel, 0, "", "", "")
		if err != nil {
			return err
		}
		initial, startRev = lr.items, lr.rev
	} else {
		startRev, err = strconv.ParseInt(rv, 10, 64)
		if err != nil || startRev < 0 {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", rv))
		}
	}
	events, err := a.store.Watch(ctx, info.res.prefix(info.namespace), startRev)
	if err != nil {
		return storageError(err, info.res, "")
	}
	a.metrics.watchers.WithLabelValues(info.res.GVR.Resource).Inc()
	defer a.metrics.watchers.WithLabelValues(info.res.GVR.Resource).Dec()

	ct := mc.contentType
	if mc.info.MediaType == runtime.ContentTypeProtobuf {
		ct = runtime.ContentTypeProtobuf + ";stream=watch"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	fw := mc.info.StreamSerializer.Framer.NewFrameWriter(w)
	enc := mc.info.StreamSerializer.Serializer
	unflushed := false

	send := func(t watch.EventType, obj runtime.Object) error {
		if mc.as == "Table" && t != watch.Error {
			tbl, err := a.toTable(r, info.res, []runtime.Object{obj})
			if err != nil {
				return err
			}
			if t == watch.Bookmark {
				tbl.Rows = nil
			}
			tbl.ResourceVersion = metaOf(obj).GetResourceVersion()
			obj = tbl
		}
		raw, err := a.encode(mc.info.Serializer, obj)
		if err != nil {
			return err
		}
		ev := &metav1.WatchEvent{Type: string(t), Object: runtime.RawExtension{Raw: raw}}
		if err := enc.Encode(ev, fw); err != nil {
			return err
		}
		unflushed = true
		return nil
	}
	// flush sends what was written once no more events are queued, so a
	// burst goes out in one write. It must also run after a filtered-out
	// event: otherwise an event written while others were queued waits for
	// the next visible one, which may never come.
	flushNow := func() {
		if flusher != nil {
			flusher.Flush()
		}
		unflushed = false
	}
	flush := func() {
		if unflushed && len(events) == 0 {
			flushNow()
		}
	}
	bookmark := func(rev int64, initialEnd bool) error {
		obj := info.res.New()
		obj.GetObjectKind().SetGroupVersionKind(info.res.GroupVersionKind())
		setRV(obj, rev)
		if initialEnd {
			metaOf(obj).SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		}
		return send(watch.Bookmark, obj)
	}
	for _, obj := range initial {
		if err := send(watch.Added, obj); err != nil {
			return nil
		}
	}
	if sendInitial {
		if err := bookmark(startRev, true); err != nil {
			return nil
		}
	}
	flushNow()
	lastRev := startRev
	tick := time.NewTicker(a.bookmarkInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if bookmarks {
				if err := bookmark(lastRev, false); err != nil {
					return nil
				}
				flushNow()
			}
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if ev.Err != nil {
				st := statusFor(storageError(ev.Err, info.res, ""))
				if errors.Is(ev.Err, storage.ErrCompacted) {
					st = statusFor(apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d", startRev)))
				}
				send(watch.Error, st)
				flushNow()
				return nil
			}
			lastRev = ev.KV.Revision
			t, obj, err := a.translateEvent(info.res, sel, ev)
			if err != nil {
				a.log.Warn("watch: skip undecodable event", "key", ev.KV.Key, "err", err)
			} else if obj != nil {
				if err := send(t, obj); err != nil {
					return nil
				}
			}
			flush()
		}
	}
}

// translateEvent turns a storage event into a watch event for a client
// with selector sel: objects entering the selection are ADDED, leaving
// it DELETED. obj is nil when the event is not visible.
func (a *api) translateEvent(res *Resource, sel selector, ev storage.Event) (watch.EventType, runtime.Object, error) {
	var prev runtime.Object
	if ev.Prev.Value != nil {
		p, err := a.fromStorageAs(res, ev.Prev.Value, ev.Prev.Revision)
		if err != nil {
			return "", nil, err
		}
		prev = p
	}
	if ev.Type == storage.EventDelete {
		obj, err := a.fromStorageAs(res, ev.KV.Value, ev.KV.Revision)
		if err != nil {
			return "", nil, err
		}
		if !sel.matches(res, obj) {
			return "", nil, nil
		}
		return watch.Deleted, obj, nil
	}
	cur, err := a.fromStorageAs(res, ev.KV.Value, ev.KV.Revision)
	if err != nil {
		return "", nil, err
	}
	curOK := sel.matches(res, cur)
	prevOK := prev != nil && sel.matches(res, prev)
	switch {
	case curOK && prevOK:
		return watch.Modified, cur, nil
	case curOK:
		return watch.Added, cur, nil
	case prevOK:
		return watch.Deleted, cur, nil
	}
	return "", nil, nil
}
