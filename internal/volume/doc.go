// Package volume prepares a pod's volumes on the node and tears them down.
//
// Volumes live under the sandbox directory as the kubelet lays them out:
//
//	<podDir>/volumes/kubernetes.io~empty-dir/<name>     emptyDir (a dir, or a tmpfs for medium Memory)
//	<podDir>/volumes/kubernetes.io~configmap/<name>     configMap   (files + ..data symlink, see atomic.go)
//	<podDir>/volumes/kubernetes.io~secret/<name>        secret      (on a tmpfs, as the kubelet does)
//	<podDir>/volumes/kubernetes.io~downward-api/<name>  downwardAPI
//	<podDir>/volumes/kubernetes.io~projected/<name>     projected
//
// hostPath volumes are not copied anywhere: Setup checks their type (and
// creates them for DirectoryOrCreate/FileOrCreate) and hands back the host
// path itself. A persistentVolumeClaim volume is the same for the volume
// bound to the claim (hostPath, or local: a directory that must exist),
// read through Sources; a local-path volume's directory is made 0777 on
// first use. Teardown never touches either: the data outlives the pod.
//
// Usage, as internal/runtime does:
//
//  1. m := volume.NewManager(logger) (add volume.WithSources(s) to serve
//     configMap and secret volumes and projected serviceAccountToken
//     sources: Sources.Token asks the API's TokenRequest for a token bound
//     to the pod).
//  2. prep, err := m.Setup(ctx, podDir, pod) before the first container is
//     created. prep.Paths maps each volume name to the host path to bind;
//     Setup is idempotent (a second call keeps emptyDir contents and
//     refreshes configMap/secret/downwardAPI/projected contents through the
//     ..data swap, as the kubelet's periodic sync does) and on error undoes
//     what that call created.
//  3. For a volumeMount with subPath (or an expanded subPathExpr):
//     volume.BindSubPath(prep.Paths[name], subPath, target) with target
//     under <podDir>/volume-subpaths (SubPathsDir), then bind target into
//     the container: the bind holds the resolved directory, so nothing
//     written into the volume can redirect it. Before binding a volume
//     with mountPropagation, CheckPropagation(path, mode) refuses a host
//     side that cannot carry it (containerd's rule); Setup puts the pod's
//     volumes on a shared mount itself when its spec asks for propagation
//     on them (ShareVolumes, as the kubelet keeps its pods dir shared).
//     While the pod runs, call m.Refresh(ctx, podDir, pod) periodically
//     (every minute, say): it rewrites configMap/secret/downwardAPI/projected
//     contents that changed and renews service-account tokens at 80% of
//     their lifetime (read from the token's iat/exp claims, so no state is
//     kept in memory); unchanged volumes are not touched.
//  4. m.Teardown(ctx, podDir, pod), or m.TeardownDir(ctx, podDir) when the
//     spec is gone (after a restart): unmounts every mount under
//     <podDir>/volume-subpaths and <podDir>/volumes and removes both
//     directories. Idempotent.
//
// A disk-backed emptyDir's sizeLimit is not enforced here: Setup reports it
// in Prepared.EmptyDirLimits and eviction (the agent's job) enforces it. A
// memory-backed emptyDir's limit is the tmpfs size.
package volume
