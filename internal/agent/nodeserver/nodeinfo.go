package nodeserver

import (
	"encoding/json"
	"net/http"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodLister lists the pods bound to this node as the agent knows them;
// *agent.Agent implements it.
type PodLister interface {
	Pods() []*corev1.Pod
}

// Configz is the node's configuration as GET /configz shows it, under
// the kubelet's KubeletConfiguration field names (kubelet.config.k8s.io/
// v1beta1), for the settings peapod has. Kind and APIVersion are filled
// in by the server.
type Configz struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	// Port is the node server's port (the kubelet's 10250).
	Port int32 `json:"port"`
	// PodCIDR is the range this node's pods get their IPs from.
	PodCIDR string `json:"podCIDR,omitempty"`
	// CgroupRoot is the cgroup every pod's cgroup is created under.
	CgroupRoot string `json:"cgroupRoot,omitempty"`
	// CgroupDriver is how cgroups are managed: peapod writes cgroupfs
	// itself.
	CgroupDriver string `json:"cgroupDriver"`
	// StreamingConnectionIdleTimeout closes idle exec, attach and
	// port-forward connections.
	StreamingConnectionIdleTimeout metav1.Duration `json:"streamingConnectionIdleTimeout"`
}

// servePods serves GET /pods: a v1 PodList of the pods bound to this
// node, as the kubelet answers it (kubectl get --raw
// /api/v1/nodes/NAME/proxy/pods).
func (s *Server) servePods(w http.ResponseWriter, r *http.Request) {
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: []corev1.Pod{}}
	if s.opts.Pods != nil {
		for _, p := range s.opts.Pods.Pods() {
			list.Items = append(list.Items, *p)
		}
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	s.writeJSON(w, r, list)
}

// serveConfigz serves GET /configz: {"kubeletconfig": {...}}, as the
// kubelet answers it.
func (s *Server) serveConfigz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Configz == nil {
		http.NotFound(w, r)
		return
	}
	cfg := *s.opts.Configz
	cfg.Kind, cfg.APIVersion = "KubeletConfiguration", "kubelet.config.k8s.io/v1beta1"
	cfg.StreamingConnectionIdleTimeout = metav1.Duration{Duration: s.opts.StreamIdleTimeout}
	s.writeJSON(w, r, map[string]any{"kubeletconfig": cfg})
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
