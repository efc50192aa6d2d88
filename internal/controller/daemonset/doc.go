// Package daemonset runs apps/v1 DaemonSets: one pod on every node that
// matches the template's nodeSelector, required node affinity and
// taints, as kube-controller-manager's daemonset controller does.
//
// Use:
//
//  1. factory := informers.NewSharedInformerFactory(client, 0)
//  2. dc, err := daemonset.New(client, factory, opts)
//  3. factory.Start(ctx.Done()); dc.Run(ctx, workers) blocks until ctx ends.
//
// Placement. ShouldRun decides per node, for the template with the
// DaemonSet tolerations Kubernetes adds (not-ready and unreachable
// NoExecute; disk-, memory- and pid-pressure and unschedulable NoSchedule;
// network-unavailable for hostNetwork pods): a node that fails the node
// name, selector or affinity gets no pod; an untolerated NoSchedule taint
// keeps a new pod off but lets a running one stay; an untolerated
// NoExecute taint removes it. Pods are not bound here: each gets a
// required node affinity `metadata.name In [node]` (replacing the
// template's required terms, which the node already matched) and the
// scheduler binds it, as Kubernetes does.
//
// Pods carry the labels controller-revision-hash (the current
// ControllerRevision's hash) and pod-template-generation (the DaemonSet's
// deprecated.daemonset.template.generation annotation, kept by the API
// server); either one matching makes a pod "updated".
//
// History. Every distinct template is a ControllerRevision
// "<ds>-<hash>" owned by the DaemonSet, its data the strategic merge patch
// that restores the template (kubectl rollout undo applies it), revisions
// numbered upward; a template seen again gets its old revision renumbered
// as the newest. Old revisions beyond revisionHistoryLimit are deleted,
// oldest first, unless a live pod still runs them.
//
// Updates. OnDelete replaces a pod only once the user deletes it.
// RollingUpdate with maxSurge 0 deletes old pods while at most
// maxUnavailable nodes (scaled up from a percentage of the desired
// number) lack an available pod, and the next round creates the new pod
// in its place; with maxSurge > 0 a new pod starts beside the old one on
// up to maxSurge nodes at once and the old one goes when the new one is
// available. A failed daemon pod is deleted and replaced, backing off
// per node (1 s doubling to 15 min), as Kubernetes does.
//
// A Node that is deleted takes its daemon pod with it through the pod
// garbage collector (package podgc), as in Kubernetes; an unscheduled pod
// pinned to a node that no longer exists is deleted here.
package daemonset
