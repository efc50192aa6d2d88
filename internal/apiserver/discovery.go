package apiserver

import (
	"net/http"
	"sort"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var allVerbs = metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

// serveDiscovery answers /api, /apis, /api/v1, /apis/<g> and /apis/<g>/<v>.
// /api and /apis also speak aggregated discovery (apidiscovery.k8s.io/v2)
// when the client asks for it. ok=false when path is not a discovery path.
func (a *api) serveDiscovery(w http.ResponseWriter, r *http.Request) bool {
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	switch {
	case p == "api":
		mc, err := a.negotiate(r, "APIGroupDiscoveryList")
		if err != nil {
			a.writeError(w, r, err)
		} else if mc.as == "APIGroupDiscoveryList" {
			a.writeWith(w, mc, http.StatusOK, a.aggregated(true))
		} else {
			a.writeWith(w, mc, http.StatusOK, &metav1.APIVersions{Versions: []string{"v1"},
				ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: a.serverAddress}}})
		}
	case p == "apis":
		mc, err := a.negotiate(r, "APIGroupDiscoveryList")
		if err != nil {
			a.writeError(w, r, err)
		} else if mc.as == "APIGroupDiscoveryList" {
			a.writeWith(w, mc, http.StatusOK, a.aggregated(false))
		} else {
			list := &metav1.APIGroupList{}
			for _, g := range a.groupNames() {
				list.Groups = append(list.Groups, a.apiGroup(g))
			}
			a.writeWith(w, mc, http.StatusOK, list)
		}
	case len(parts) == 2 && parts[0] == "api":
		a.writeResourceList(w, r, schema.GroupVersion{Version: parts[1]})
	case len(parts) == 2 && parts[0] == "apis":
		for _, g := range a.groupNames() {
			if g == parts[1] {
				grp := a.apiGroup(g)
				a.writeObject(w, r, http.StatusOK, &grp)
				return true
			}
		}
		writeNoRoute(w)
	case len(parts) == 3 && parts[0] == "apis":
		a.writeResourceList(w, r, schema.GroupVersion{Group: parts[1], Version: parts[2]})
	default:
		return false
	}
	return true
}

// groupNames lists the served non-core groups in registration order.
func (a *api) groupNames() []string {
	var out []string
	seen := map[string]bool{}
	for _, gv := range a.groups {
		if gv.Group != "" && !seen[gv.Group] {
			seen[gv.Group] = true
			out = append(out, gv.Group)
		}
	}
	return out
}

func (a *api) apiGroup(group string) metav1.APIGroup {
	g := metav1.APIGroup{Name: group}
	for _, gv := range a.groups {
		if gv.Group == group {
			v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
			g.Versions = append(g.Versions, v)
			if g.PreferredVersion.Version == "" {
				g.PreferredVersion = v
			}
		}
	}
	return g
}

func (a *api) writeResourceList(w http.ResponseWriter, r *http.Request, gv schema.GroupVersion) {
	list := &metav1.APIResourceList{GroupVersion: gv.String()}
	for _, res := range a.resources {
		if res.GVR.GroupVersion() != gv {
			continue
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: res.GVR.Resource, SingularName: res.Singular, Namespaced: res.Namespaced,
			Kind: res.Kind, Verbs: allVerbs, ShortNames: res.ShortNames, Categories: res.Categories,
		})
		for _, sub := range subresourceNames(res) {
			ar := metav1.APIResource{Name: res.GVR.Resource + "/" + sub, Namespaced: res.Namespaced,
				Kind: res.Kind, Verbs: metav1.Verbs{"get", "patch", "update"}}
			switch {
			case sub == "status", res.Views[sub] != nil:
			case sub == "scale":
				ar.Group, ar.Version, ar.Kind = "autoscaling", "v1", "Scale"
			default:
				ar.Verbs, ar.Kind = metav1.Verbs{"create"}, strings.ToUpper(sub[:1])+sub[1:]
			}
			list.APIResources = append(list.APIResources, ar)
		}
	}
	if len(list.APIResources) == 0 {
		writeNoRoute(w)
		return
	}
	a.writeObject(w, r, http.StatusOK, list)
}

func subresourceNames(res *Resource) []string {
	var subs []string
	if res.Status {
		subs = append(subs, "status")
	}
	if res.Scale != nil {
		subs = append(subs, "scale")
	}
	for name := range res.Subresources {
		subs = append(subs, name)
	}
	for name := range res.Views {
		subs = append(subs, name)
	}
	sort.Strings(subs)
	return subs
}

// aggregated builds the apidiscovery.k8s.io/v2 document for the core
// group (legacy=true) or the named groups.
func (a *api) aggregated(legacy bool) *apidiscoveryv2.APIGroupDiscoveryList {
	out := &apidiscoveryv2.APIGroupDiscoveryList{}
	var groups []string
	if legacy {
		groups = []string{""}
	} else {
		groups = a.groupNames()
	}
	for _, g := range groups {
		gd := apidiscoveryv2.APIGroupDiscovery{}
		gd.Name = g
		for _, gv := range a.groups {
			if gv.Group != g {
				continue
			}
			vd := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
			for _, res := range a.resources {
				if res.GVR.GroupVersion() != gv {
					continue
				}
				scope := apidiscoveryv2.ScopeCluster
				if res.Namespaced {
					scope = apidiscoveryv2.ScopeNamespace
				}
				rd := apidiscoveryv2.APIResourceDiscovery{
					Resource: res.GVR.Resource, Scope: scope, SingularResource: res.Singular,
					ResponseKind: &metav1.GroupVersionKind{Group: g, Version: gv.Version, Kind: res.Kind},
					Verbs:        allVerbs, ShortNames: res.ShortNames, Categories: res.Categories,
				}
				for _, sub := range subresourceNames(res) {
					sd := apidiscoveryv2.APISubresourceDiscovery{Subresource: sub, Verbs: []string{"get", "patch", "update"},
						ResponseKind: &metav1.GroupVersionKind{Group: g, Version: gv.Version, Kind: res.Kind}}
					if sub == "scale" {
						sd.ResponseKind = &metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
					} else if sub != "status" && res.Views[sub] == nil {
						sd.Verbs = []string{"create"}
						sd.ResponseKind = &metav1.GroupVersionKind{Version: "v1", Kind: strings.ToUpper(sub[:1]) + sub[1:]}
					}
					rd.Subresources = append(rd.Subresources, sd)
				}
				vd.Resources = append(vd.Resources, rd)
			}
			gd.Versions = append(gd.Versions, vd)
		}
		out.Items = append(out.Items, gd)
	}
	return out
}

var _ runtime.Object = (*apidiscoveryv2.APIGroupDiscoveryList)(nil)
