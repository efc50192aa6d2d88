// Package cronjob is kube-controller-manager's CronJob controller (v2)
// for peapod: it creates a CronJob's Jobs on its schedule.
//
// One sync (Controller.sync) of a CronJob, as in Kubernetes:
//
//  1. Its Jobs (controllerRef) are read: finished ones leave
//     status.active, a successful one moves lastSuccessfulTime, vanished
//     ones are dropped.
//  2. Unless it is suspended or being deleted, the most recent schedule
//     time not yet run is found with robfig/cron/v3 in spec.timeZone (the
//     parser kube-apiserver and the controller use). A time older than
//     startingDeadlineSeconds is missed (MissSchedule); Forbid skips it
//     while a Job is active (JobAlreadyActive); Replace deletes the active
//     Jobs first; then the Job <cronjob>-<minutes since the epoch> is
//     created from jobTemplate, its scheduled time in the annotation
//     batch.kubernetes.io/cronjob-scheduled-timestamp.
//  3. Finished Jobs beyond successfulJobsHistoryLimit and
//     failedJobsHistoryLimit are deleted, oldest first.
//  4. The CronJob is queued again for its next schedule time.
package cronjob
