package apiserver

import (
	"strings"
	"testing"
)

// TestStorageResources: PersistentVolumes, claims and StorageClasses are
// served with Kubernetes' defaults, finalizers, DefaultStorageClass
// admission, immutability and kubectl's columns.
func TestStorageResources(t *testing.T) {
	srv, _ := newTestAPI(t)
	const (
		classes = "/apis/storage.k8s.io/v1/storageclasses"
		pvs     = "/api/v1/persistentvolumes"
		claims  = "/api/v1/namespaces/default/persistentvolumeclaims"
	)
	r := do(t, srv, "POST", classes, "application/json",
		`{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"lp","annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},"provisioner":"rancher.io/local-path"}`)
	if r.code != 201 || jfield(r.obj, "reclaimPolicy") != "Delete" || jfield(r.obj, "volumeBindingMode") != "Immediate" {
		t.Fatalf("storage class: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PUT", classes+"/lp", "application/json",
		`{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"lp","resourceVersion":"`+jfield(r.obj, "metadata", "resourceVersion").(string)+`"},"provisioner":"other.io/x"}`)
	if r.code != 422 || !strings.Contains(r.body, "provisioner: Forbidden: updates to provisioner are forbidden.") {
		t.Fatalf("provisioner change: %d %s", r.code, r.body)
	}

	r = do(t, srv, "POST", pvs, "application/json",
		`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv1"},"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce","ReadOnlyMany"],"hostPath":{"path":"/srv/pv1"}}}`)
	if r.code != 201 || jfield(r.obj, "spec", "persistentVolumeReclaimPolicy") != "Retain" || jfield(r.obj, "spec", "volumeMode") != "Filesystem" ||
		jfield(r.obj, "status", "phase") != "Pending" || !strings.Contains(r.body, `"finalizers":["kubernetes.io/pv-protection"]`) {
		t.Fatalf("volume defaults: %d %s", r.code, r.body)
	}
	r = do(t, srv, "POST", pvs, "application/json",
		`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"lv"},"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"local":{"path":"rel"}}}`)
	if r.code != 422 || !strings.Contains(r.body, `spec.local.path: Invalid value: \"rel\": must be an absolute path`) ||
		!strings.Contains(r.body, "spec.nodeAffinity: Required value: Local volume requires node affinity") {
		t.Fatalf("local volume without affinity: %d %s", r.code, r.body)
	}

	// A claim without a class gets the default; "" means none.
	r = do(t, srv, "POST", claims, "application/json",
		`{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c1"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}`)
	if r.code != 201 || jfield(r.obj, "spec", "storageClassName") != "lp" || jfield(r.obj, "status", "phase") != "Pending" ||
		!strings.Contains(r.body, `"finalizers":["kubernetes.io/pvc-protection"]`) || jfield(r.obj, "spec", "volumeMode") != "Filesystem" {
		t.Fatalf("claim defaults: %d %s", r.code, r.body)
	}
	rv := jfield(r.obj, "metadata", "resourceVersion").(string)
	r = do(t, srv, "POST", claims, "application/json",
		`{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c2"},"spec":{"storageClassName":"","accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}`)
	if r.code != 201 || jfield(r.obj, "spec", "storageClassName") != "" {
		t.Fatalf("claim with no class: %d %s", r.code, r.body)
	}
	// The spec is immutable but for binding.
	r = do(t, srv, "PUT", claims+"/c1", "application/json",
		`{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c1","resourceVersion":"`+rv+`"},"spec":{"storageClassName":"lp","accessModes":["ReadWriteMany"],"resources":{"requests":{"storage":"1Gi"}}}}`)
	if r.code != 422 || !strings.Contains(r.body, "spec: Forbidden: spec is immutable after creation") {
		t.Fatalf("claim spec change: %d %s", r.code, r.body)
	}
	r = do(t, srv, "PUT", claims+"/c1", "application/json",
		`{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c1","resourceVersion":"`+rv+`"},"spec":{"volumeName":"pv1","storageClassName":"lp","accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}`)
	if r.code != 200 || jfield(r.obj, "spec", "volumeName") != "pv1" {
		t.Fatalf("binding a claim: %d %s", r.code, r.body)
	}

	// kubectl's columns.
	table := "application/json;as=Table;v=v1;g=meta.k8s.io"
	for path, want := range map[string][]string{
		pvs:     {"Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim", "StorageClass", "VolumeAttributesClass", "Reason", "Age", "pv1", "1Gi", "RWO,ROX", "Retain", "Pending", `\u003cunset\u003e`},
		claims:  {"Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass", "VolumeAttributesClass", "Age", "c1", "pv1", "lp"},
		classes: {"Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion", "Age", "lp (default)", "rancher.io/local-path"},
	} {
		r = do(t, srv, "GET", path, "", "", "Accept", table)
		for _, w := range want {
			if !strings.Contains(r.body, `"`+w+`"`) {
				t.Errorf("%s table lacks %q: %s", path, w, r.body)
			}
		}
	}
}
