package ctrlutil

import (
	"fmt"

	"k8s.io/client-go/tools/cache"
)

// OnEvents registers add, update and del as informer's event handlers;
// a nil one is not called. what names the informer in the error, which
// comes only from an informer that has already stopped.
func OnEvents(informer cache.SharedInformer, what string, add func(obj any), update func(oldObj, newObj any), del func(obj any)) error {
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: add, UpdateFunc: update, DeleteFunc: del,
	}); err != nil {
		return fmt.Errorf("register %s handler: %w", what, err)
	}
	return nil
}

// OnChange registers f for every add, update (with the new object) and
// delete on informer, the handler most informers of a controller need.
func OnChange(informer cache.SharedInformer, what string, f func(obj any)) error {
	return OnEvents(informer, what, f, func(_, newObj any) { f(newObj) }, f)
}

// EnqueueKey returns a handler adding an object's "namespace/name" key
// (tombstones included) to q; an object without a key is skipped.
func EnqueueKey(q Queue) func(obj any) {
	return func(obj any) {
		if k := KeyOf(obj); k != "" {
			q.Add(k)
		}
	}
}
