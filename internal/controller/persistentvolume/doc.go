// Package persistentvolume is peapod's PersistentVolume controller, as
// kube-controller-manager's persistentvolume-binder, pvc-protection and
// pv-protection controllers, with k3s's local-path provisioner built in.
//
//  1. New(client, factory, Options{StorageDir: ...}) registers informers on
//     claims, volumes, StorageClasses, pods and nodes; Run ensures the
//     default StorageClass local-path exists, then syncs.
//  2. A claim without a volume is bound to the smallest Available volume
//     that fits it (FindMatch: class, access modes, volume mode, selector,
//     capacity); a claim of a WaitForFirstConsumer class waits until the
//     scheduler writes the node of its first pod in the annotation
//     volume.kubernetes.io/selected-node, and then only volumes that node
//     can use match. No match: a local-path claim is provisioned (a
//     hostPath volume, DirectoryOrCreate, pinned to the selected node by
//     required node affinity, under that node's storage directory); any
//     other class gets Kubernetes' event (ProvisioningFailed,
//     ExternalProvisioning or FailedBinding) and stays Pending.
//  3. Volumes are Available, Bound, or Released once their claim is gone.
//     A Released volume with reclaim policy Retain stays; with Delete, a
//     local-path volume is removed by the node it lives on (the node's
//     agent owns its disk: it removes the directory, then the volume, see
//     internal/agent's storage cleaner); any other volume is Failed, as
//     Kubernetes has no deleter for it.
//  4. The protection finalizers go once the object is unused: a claim's
//     when no pod that is not finished uses it, a volume's when it is not
//     Bound.
package persistentvolume
