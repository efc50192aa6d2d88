// Package job is kube-controller-manager's Job controller for peapod: it
// runs a batch/v1 Job's pods to completion and reports what happened.
//
// How one sync goes (Controller.sync), as in Kubernetes 1.31+:
//
//  1. The Job's pods are claimed through its selector. Every pod is created
//     with the finalizer batch.kubernetes.io/job-tracking, so a finished
//     pod cannot vanish before it is counted.
//  2. A finished pod that still has the finalizer is first written into
//     status.uncountedTerminatedPods (Indexed successes straight into
//     status.completedIndexes), then its finalizer is removed, then it is
//     moved into status.succeeded or status.failed. Each step is persisted
//     before the next, so a restart at any point neither loses nor doubles
//     a completion; removals the informer has not shown yet are
//     remembered so a stale cache cannot count a pod again.
//  3. The decisions are the Kubernetes ones (decide.go, pure): a
//     podFailurePolicy FailJob rule, failures above backoffLimit (or
//     container restarts for restartPolicy OnFailure) and
//     activeDeadlineSeconds fail the Job; completions (or the successPolicy
//     of an Indexed Job) succeed it. The interim conditions FailureTarget and
//     SuccessCriteriaMet come first, the remaining pods are deleted, and
//     Failed or Complete are added only once no pod is left terminating.
//  4. Otherwise pods are created or deleted towards min(parallelism,
//     remaining completions), after the pod-failure back-off (10 s doubling
//     per consecutive failure, at most 6 min); an Indexed Job's pods get
//     their index as annotation, label, hostname and JOB_COMPLETION_INDEX.
//     A suspended Job has no pods and the Suspended condition.
//  5. A finished Job with ttlSecondsAfterFinished is deleted (in the
//     foreground, as the TTL-after-finished controller does) once the time
//     has passed.
package job
