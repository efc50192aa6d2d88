package ctrlutil

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SlowStartInitialBatchSize is the first batch of SlowStartBatch, as in
// Kubernetes' controllers.
const SlowStartInitialBatchSize = 1

// PodFromTemplate returns a new pod for template owned by ref, named by
// generateName "<prefix>" (callers pass "<owner>-"). Labels, annotations
// and finalizers are copied; the spec is deep-copied.
func PodFromTemplate(template *v1.PodTemplateSpec, namespace, generateName string, ref *metav1.OwnerReference) *v1.Pod {
	t := template.DeepCopy()
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    namespace,
			GenerateName: generateName,
			Labels:       t.Labels,
			Annotations:  t.Annotations,
			Finalizers:   t.Finalizers,
		},
		Spec: t.Spec,
	}
	if ref != nil {
		p.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return p
}

// SlowStartBatch calls fn count times in batches of growing size (1, 2, 4,
// ...), the calls of one batch concurrently, and stops after the first
// batch with a failure, so a failing create (quota, webhook, bad template)
// costs a few calls, not count. It returns the number of successful calls
// and one of the errors.
func SlowStartBatch(count, initialBatchSize int, fn func() error) (int, error) {
	remaining := count
	successes := 0
	for batch := min(remaining, initialBatchSize); batch > 0; batch = min(2*batch, remaining) {
		errCh := make(chan error, batch)
		var wg sync.WaitGroup
		for range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(); err != nil {
					errCh <- err
				}
			}()
		}
		wg.Wait()
		successes += batch - len(errCh)
		if len(errCh) > 0 {
			return successes, <-errCh
		}
		remaining -= batch
	}
	return successes, nil
}
