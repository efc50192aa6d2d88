package apiserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/peapod/peapod/internal/storage"
)

func (a *api) handleGet(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	if v := info.res.Views[info.subresource]; v != nil {
		return a.handleView(ctx, w, r, info, v)
	}
	if info.subresource == "scale" && info.res.Scale != nil {
		return a.handleScale(ctx, w, r, info)
	}
	if info.subresource != "" && !(info.subresource == "status" && info.res.Status) {
		return subresourceError(info, "get")
	}
	mc, err := a.negotiate(r, "Table")
	if err != nil {
		return err
	}
	obj, _, err := a.getObject(ctx, info.res, info.namespace, info.name)
	if err != nil {
		return err
	}
	if mc.as == "Table" {
		t, err := a.toTable(r, info.res, []runtime.Object{obj})
		if err != nil {
			return err
		}
		t.ResourceVersion = metaOf(obj).GetResourceVersion()
		a.writeWith(w, mc, http.StatusOK, t)
		return nil
	}
	a.writeWith(w, mc, http.StatusOK, obj)
	return nil
}

// continueToken is the opaque list continuation: the snapshot revision
// and the next key.
type continueToken struct {
	Rev   int64  `json:"rv"`
	Start string `json:"start"`
}

func encodeContinue(t continueToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string, prefix string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || len(t.Start) < len(prefix) || t.Start[:len(prefix)] != prefix || t.Rev <= 0 {
		return t, apierrors.NewBadRequest("continue key is not valid")
	}
	return t, nil
}

// listResult is a filtered page of objects.
type listResult struct {
	items []runtime.Object
	rev   int64
	cont  string
}

// listObjects reads objects of res in ns matching sel, honouring
// limit/continue and resourceVersion(+Match) like Kubernetes.
func (a *api) listObjects(ctx context.Context, res *Resource, ns string, sel selector, limit int64, cont, rv, rvMatch string) (listResult, error) {
	prefix := res.prefix(ns)
	opts := storage.ListOptions{}
	if cont != "" {
		t, err := decodeContinue(cont, prefix)
		if err != nil {
			return listResult{}, err
		}
		opts.Revision, opts.StartKey = t.Rev, t.Start
	} else if rv != "" && rv != "0" {
		n, err := strconv.ParseInt(rv, 10, 64)
		if err != nil || n < 0 {
			return listResult{}, apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q", rv))
		}
		if rvMatch == string(metav1.ResourceVersionMatchExact) {
			opts.Revision = n
		}
	}
	var out listResult
	for {
		page := opts
		if limit > 0 {
			page.Limit = limit - int64(len(out.items)) + 1
			if !sel.empty() && page.Limit < 100 {
				page.Limit = 100
			}
		}
		got, err := a.store.List(ctx, prefix, page)
		if err != nil {
			return listResult{}, storageError(err, res, "")
		}
		out.rev = got.Revision
		opts.Revision = got.Revision
		for i, kv := range got.Items {
			obj, err := a.fromStorageAs(res, kv.Value, kv.Revision)
			if err != nil {
				return listResult{}, apierrors.NewInternalError(err)
			}
			if !sel.matches(res, obj) {
				continue
			}
			if limit > 0 && int64(len(out.items)) == limit {
				out.cont = encodeContinue(continueToken{Rev: got.Revision, Start: kv.Key})
				_ = i
				return out, nil
			}
			out.items = append(out.items, obj)
		}
		if !got.More || len(got.Items) == 0 {
			return out, nil
		}
		opts.StartKey = got.Items[len(got.Items)-1].Key + "\x00"
	}
}

func (a *api) handleList(ctx context.Context, w http.ResponseWriter, r *http.Request, info requestInfo) error {
	mc, err := a.negotiate(r, "Table")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	sel, err := parseSelector(info.res, q.Get("labelSelector"), q.Get("fieldSelector"))
	if err != nil {
		return err
	}
	var limit int64
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.ParseInt(l, 10, 64); err != nil || limit < 0 {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid limit %q", l))
		}
	}
	lr, err := a.listObjects(ctx, info.res, info.namespace, sel, limit, q.Get("continue"), q.Get("resourceVersion"), q.Get("resourceVersionMatch"))
	if err != nil {
		return err
	}
	rv := strconv.FormatInt(lr.rev, 10)
	if mc.as == "Table" {
		t, err := a.toTable(r, info.res, lr.items)
		if err != nil {
			return err
		}
		t.ResourceVersion, t.Continue = rv, lr.cont
		a.writeWith(w, mc, http.StatusOK, t)
		return nil
	}
	list := info.res.NewList()
	if err := meta.SetList(list, lr.items); err != nil {
		return apierrors.NewInternalError(err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	lm.SetResourceVersion(rv)
	lm.SetContinue(lr.cont)
	a.writeWith(w, mc, http.StatusOK, list)
	return nil
}
