package apiserver

// extendedResources lists the kinds registered beyond the first slice
// (workloads, services and endpoint slices, events.k8s.io events), in
// discovery order. builtinResources appends them.
func extendedResources() []*Resource {
	return workloadResources()
}
