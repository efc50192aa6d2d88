package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/peapod/peapod/internal/image"
)

// PresentImage returns the image when the pull policy needs no pull:
// IfNotPresent and Never with the image there, or a pinned (imported) image
// under any policy.
func (r *Runtime) PresentImage(ref string, policy corev1.PullPolicy) (*image.Image, bool) {
	img, err := r.images.Get(ref)
	if err != nil || (policy == corev1.PullAlways && !img.Pinned) {
		return nil, false
	}
	return img, true
}

// EnsureImage makes the image present as the pull policy says: Always
// pulls (but for pinned images), IfNotPresent pulls only when missing,
// Never fails when missing. An empty policy is IfNotPresent.
func (r *Runtime) EnsureImage(ctx context.Context, ref string, policy corev1.PullPolicy, progress func(image.Progress)) (*image.Image, error) {
	if img, ok := r.PresentImage(ref, policy); ok {
		return img, nil
	}
	if policy == corev1.PullNever {
		return nil, fmt.Errorf("image %q is not present and imagePullPolicy is Never: %w", ref, ErrImageNotPresent)
	}
	if progress == nil {
		progress = image.LogProgress(r.log, time.Second)
	}
	img, err := r.images.Pull(ctx, ref, progress)
	if err != nil {
		return nil, fmt.Errorf("pull image %q: %w", ref, err)
	}
	return img, nil
}

// StartPod runs a whole pod once, in order: the sandbox, the images, each
// init container to successful completion, then every container. It is
// what a node does for a new pod, without restarts or probes (the agent
// adds those). On error nothing is left behind.
func (r *Runtime) StartPod(ctx context.Context, pod *corev1.Pod, handler string) (sandboxID string, retErr error) {
	if err := validatePod(pod); err != nil {
		return "", err
	}
	for _, c := range allContainers(pod) {
		if _, err := r.EnsureImage(ctx, c.Image, c.ImagePullPolicy, nil); err != nil {
			return "", fmt.Errorf("container %q: %w", c.Name, err)
		}
	}
	id, err := r.RunPodSandbox(ctx, pod, handler)
	if err != nil {
		return "", err
	}
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if err := r.DeletePod(cctx, id, 0); err != nil {
				r.log.Error("roll back failed pod", "sandbox", id, "err", err)
			}
		}
	}()
	for _, c := range pod.Spec.InitContainers {
		cid, err := r.runContainer(ctx, id, c.Name)
		if err != nil {
			return id, err
		}
		st, err := r.WaitContainer(ctx, cid)
		if err != nil {
			return id, err
		}
		if st.ExitCode != 0 {
			return id, fmt.Errorf("init container %q exited with code %d", c.Name, st.ExitCode)
		}
	}
	for _, c := range pod.Spec.Containers {
		if _, err := r.runContainer(ctx, id, c.Name); err != nil {
			return id, err
		}
	}
	return id, nil
}

func (r *Runtime) runContainer(ctx context.Context, sandboxID, name string) (string, error) {
	cid, err := r.CreateContainer(ctx, sandboxID, name, ContainerOptions{})
	if err != nil {
		return "", err
	}
	if err := r.StartContainer(ctx, cid); err != nil {
		_ = r.RemoveContainer(context.WithoutCancel(ctx), cid)
		return "", err
	}
	return cid, nil
}

// DeletePod removes the sandbox and the pod's logs.
func (r *Runtime) DeletePod(ctx context.Context, sandboxID string, grace time.Duration) error {
	sb, err := r.loadSandbox(sandboxID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.RemovePodSandbox(ctx, sandboxID, grace); err != nil {
		return err
	}
	return r.RemovePodLogs(sb.Pod)
}

// RemovePodLogs removes the log directory of a pod, once no sandbox of it remains.
func (r *Runtime) RemovePodLogs(pod *corev1.Pod) error {
	if pod == nil {
		return nil
	}
	dir := r.paths.PodLogs(pod.Namespace, pod.Name, string(pod.UID))
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove logs of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
