package apiserver

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// serviceResource registers core/v1 Services: defaulted and validated as
// Kubernetes does, with ClusterIPs and NodePorts allocated from persisted
// bitmaps (services.go). Routing traffic to them is not this package's job.
func serviceResource() *Resource {
	return &Resource{
		GVR: core("services"), Kind: "Service", Singular: "service", Namespaced: true,
		ShortNames: []string{"svc"}, Categories: []string{"all"}, Status: true, Table: serviceTable,
		New:     func() runtime.Object { return &corev1.Service{} },
		NewList: func() runtime.Object { return &corev1.ServiceList{} },
		Strategy: Strategy{
			ValidateName: func(n string, _ bool) []string { return validation.IsDNS1035Label(n) },
			PrepareForCreate: func(obj runtime.Object) {
				s := obj.(*corev1.Service)
				s.Status = corev1.ServiceStatus{}
				DefaultService(s)
			},
			PrepareForUpdate: func(obj, old runtime.Object) {
				s := obj.(*corev1.Service)
				DefaultService(s)
				carryAllocations(s, old.(*corev1.Service))
				DefaultService(s)
			},
			Validate: func(obj runtime.Object) field.ErrorList { return ValidateService(obj.(*corev1.Service)) },
			ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
				return append(ValidateService(obj.(*corev1.Service)), ValidateServiceUpdate(obj.(*corev1.Service), old.(*corev1.Service))...)
			},
		},
		Fields: func(obj runtime.Object) fields.Set {
			s := obj.(*corev1.Service)
			return fields.Set{"spec.clusterIP": s.Spec.ClusterIP, "spec.type": string(s.Spec.Type)}
		},
		Allocate: func(ctx context.Context, a *api, obj, old runtime.Object) (func(), func(), error) {
			var o *corev1.Service
			if old != nil {
				o = old.(*corev1.Service)
			}
			return a.services.allocate(ctx, obj.(*corev1.Service), o)
		},
		Release: func(ctx context.Context, a *api, obj runtime.Object) { a.services.release(ctx, obj.(*corev1.Service)) },
	}
}

// needsClusterIP reports whether a Service of this shape gets a ClusterIP.
func needsClusterIP(s *corev1.Service) bool {
	return s.Spec.Type != corev1.ServiceTypeExternalName && s.Spec.ClusterIP != corev1.ClusterIPNone
}

// needsNodePorts reports whether a Service's ports get NodePorts.
func needsNodePorts(s *corev1.Service) bool {
	switch s.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		return s.Spec.AllocateLoadBalancerNodePorts == nil || *s.Spec.AllocateLoadBalancerNodePorts
	}
	return false
}

// DefaultService applies core/v1 Service defaults: type ClusterIP,
// sessionAffinity None, protocol TCP and targetPort = port on each port,
// traffic policies Cluster, IPv4 single-stack. Pure and idempotent.
func DefaultService(s *corev1.Service) {
	sp := &s.Spec
	if sp.Type == "" {
		sp.Type = corev1.ServiceTypeClusterIP
	}
	if sp.SessionAffinity == "" {
		sp.SessionAffinity = corev1.ServiceAffinityNone
	}
	if sp.SessionAffinity == corev1.ServiceAffinityClientIP && sp.SessionAffinityConfig == nil {
		secs := int32(corev1.DefaultClientIPServiceAffinitySeconds)
		sp.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &secs}}
	}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == intstr.FromInt32(0) || p.TargetPort == intstr.FromString("") {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if sp.Type == corev1.ServiceTypeExternalName {
		return
	}
	if sp.InternalTrafficPolicy == nil {
		c := corev1.ServiceInternalTrafficPolicyCluster
		sp.InternalTrafficPolicy = &c
	}
	if (sp.Type == corev1.ServiceTypeNodePort || sp.Type == corev1.ServiceTypeLoadBalancer) && sp.ExternalTrafficPolicy == "" {
		sp.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if sp.Type == corev1.ServiceTypeLoadBalancer && sp.AllocateLoadBalancerNodePorts == nil {
		t := true
		sp.AllocateLoadBalancerNodePorts = &t
	}
	if len(sp.IPFamilies) == 0 {
		sp.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	if sp.IPFamilyPolicy == nil {
		p := corev1.IPFamilyPolicySingleStack
		sp.IPFamilyPolicy = &p
	}
	if sp.ClusterIP == "" && len(sp.ClusterIPs) > 0 {
		sp.ClusterIP = sp.ClusterIPs[0]
	}
	if sp.ClusterIP != "" && len(sp.ClusterIPs) == 0 {
		sp.ClusterIPs = []string{sp.ClusterIP}
	}
}

// carryAllocations keeps the ClusterIP and NodePorts of old when an
// update (kubectl replace/apply of a manifest without them) omits them
// and the type still needs them, as Kubernetes does. Pure.
func carryAllocations(s, old *corev1.Service) {
	if s.Spec.ClusterIP == "" && len(s.Spec.ClusterIPs) == 0 && needsClusterIP(old) && s.Spec.Type != corev1.ServiceTypeExternalName {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = old.Spec.ClusterIP, append([]string(nil), old.Spec.ClusterIPs...)
	}
	if !needsNodePorts(s) {
		return
	}
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if p.NodePort != 0 {
			continue
		}
		for _, op := range old.Spec.Ports {
			if op.NodePort != 0 && op.Protocol == p.Protocol && (op.Port == p.Port || (p.Name != "" && op.Name == p.Name)) {
				p.NodePort = op.NodePort
				break
			}
		}
	}
}

// ValidateService returns every failure of a defaulted Service: type,
// ports (names, numbers, protocols, target and node ports), clusterIP
// shape, selector, externalName and session affinity. Range checks and
// collisions are the allocator's. Pure.
func ValidateService(s *corev1.Service) field.ErrorList {
	sp := &s.Spec
	var errs field.ErrorList
	types := []string{string(corev1.ServiceTypeClusterIP), string(corev1.ServiceTypeExternalName), string(corev1.ServiceTypeLoadBalancer), string(corev1.ServiceTypeNodePort)}
	if !sets.New(types...).Has(string(sp.Type)) {
		errs = append(errs, field.NotSupported(specPath.Child("type"), sp.Type, types))
	}
	switch sp.Type {
	case corev1.ServiceTypeExternalName:
		if sp.ClusterIP != "" {
			errs = append(errs, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if sp.ExternalName == "" {
			errs = append(errs, field.Required(specPath.Child("externalName"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Subdomain(strings.TrimSuffix(sp.ExternalName, ".")) {
				errs = append(errs, field.Invalid(specPath.Child("externalName"), sp.ExternalName, msg))
			}
		}
	default:
		if ip := sp.ClusterIP; ip != "" && ip != corev1.ClusterIPNone && net.ParseIP(ip).To4() == nil {
			errs = append(errs, field.Invalid(specPath.Child("clusterIPs").Index(0), ip, "must be a valid IPv4 address (peapod's service range is IPv4)"))
		}
		if len(sp.ClusterIPs) > 1 {
			errs = append(errs, field.Forbidden(specPath.Child("clusterIPs").Index(1), "dual-stack is "+unsupportedMsg))
		}
		if len(sp.ClusterIPs) > 0 && sp.ClusterIPs[0] != sp.ClusterIP {
			errs = append(errs, field.Invalid(specPath.Child("clusterIPs").Index(0), sp.ClusterIPs[0], "must match `clusterIP`"))
		}
		if len(sp.Ports) == 0 && sp.ClusterIP != corev1.ClusterIPNone {
			errs = append(errs, field.Required(specPath.Child("ports"), ""))
		}
		for i, f := range sp.IPFamilies {
			if f != corev1.IPv4Protocol {
				errs = append(errs, field.Forbidden(specPath.Child("ipFamilies").Index(i), string(f)+" is "+unsupportedMsg))
			}
		}
		if sp.Type == corev1.ServiceTypeClusterIP && sp.ExternalTrafficPolicy != "" {
			errs = append(errs, field.Invalid(specPath.Child("externalTrafficPolicy"), sp.ExternalTrafficPolicy, "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
		}
	}
	errs = append(errs, validateServicePorts(s)...)
	errs = append(errs, validateLabels(specPath.Child("selector"), sp.Selector)...)
	for i, ip := range sp.ExternalIPs {
		if net.ParseIP(ip) == nil {
			errs = append(errs, field.Invalid(specPath.Child("externalIPs").Index(i), ip, "must be a valid IP address"))
		}
	}
	switch sp.SessionAffinity {
	case corev1.ServiceAffinityNone, corev1.ServiceAffinityClientIP:
	default:
		errs = append(errs, field.NotSupported(specPath.Child("sessionAffinity"), sp.SessionAffinity, []string{"ClientIP", "None"}))
	}
	return errs
}

func validateServicePorts(s *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	type key struct {
		port  int32
		proto corev1.Protocol
	}
	seen := map[key]bool{}
	for i, p := range s.Spec.Ports {
		pp := specPath.Child("ports").Index(i)
		if len(s.Spec.Ports) > 1 || p.Name != "" {
			if p.Name == "" {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			} else {
				errs = append(errs, dns1123Label(pp.Child("name"), p.Name)...)
				if names.Has(p.Name) {
					errs = append(errs, field.Duplicate(pp.Child("name"), p.Name))
				}
				names.Insert(p.Name)
			}
		}
		for _, msg := range validation.IsValidPortNum(int(p.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), p.Port, msg))
		}
		switch p.Protocol {
		case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		default:
			errs = append(errs, field.NotSupported(pp.Child("protocol"), p.Protocol, []string{"SCTP", "TCP", "UDP"}))
		}
		if p.TargetPort.Type == intstr.Int {
			for _, msg := range validation.IsValidPortNum(p.TargetPort.IntValue()) {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), p.TargetPort.IntValue(), msg))
			}
		} else {
			for _, msg := range validation.IsValidPortName(p.TargetPort.StrVal) {
				errs = append(errs, field.Invalid(pp.Child("targetPort"), p.TargetPort.StrVal, msg))
			}
		}
		if p.NodePort != 0 {
			if s.Spec.Type != corev1.ServiceTypeNodePort && s.Spec.Type != corev1.ServiceTypeLoadBalancer {
				errs = append(errs, field.Forbidden(pp.Child("nodePort"), fmt.Sprintf("may not be used when `type` is '%s'", s.Spec.Type)))
			}
			for _, msg := range validation.IsValidPortNum(int(p.NodePort)) {
				errs = append(errs, field.Invalid(pp.Child("nodePort"), p.NodePort, msg))
			}
		}
		k := key{p.Port, p.Protocol}
		if seen[k] {
			errs = append(errs, field.Duplicate(pp, fmt.Sprintf("%d/%s", p.Port, p.Protocol)))
		}
		seen[k] = true
	}
	return errs
}

// ValidateServiceUpdate refuses a changed ClusterIP, except when the
// type moves to or from ExternalName. Pure.
func ValidateServiceUpdate(s, old *corev1.Service) field.ErrorList {
	if old.Spec.Type == corev1.ServiceTypeExternalName || s.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	if s.Spec.ClusterIP != old.Spec.ClusterIP {
		return field.ErrorList{field.Invalid(specPath.Child("clusterIPs").Index(0), s.Spec.ClusterIP, "may not change once set")}
	}
	return nil
}

// serviceTable: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE, wide adds
// SELECTOR.
var serviceTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Type", Type: "string", Description: "type determines how the Service is exposed."},
		{Name: "Cluster-IP", Type: "string", Description: "clusterIP is the IP address of the service."},
		{Name: "External-IP", Type: "string", Description: "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."},
		{Name: "Port(s)", Type: "string", Description: "The list of ports that are exposed by this service."},
		ageColumn,
		{Name: "Selector", Type: "string", Priority: 1, Description: "Route service traffic to pods with label keys and values matching this selector."},
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		s := obj.(*corev1.Service)
		ip := s.Spec.ClusterIP
		if ip == "" {
			ip = "<none>"
		}
		return []interface{}{s.Name, string(s.Spec.Type), ip, serviceExternalIP(s), servicePorts(s), age(s.CreationTimestamp, now), selectorOrNone(s.Spec.Selector)}
	},
}

func serviceExternalIP(s *corev1.Service) string {
	switch s.Spec.Type {
	case corev1.ServiceTypeExternalName:
		return s.Spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, ing := range s.Status.LoadBalancer.Ingress {
			if ing.IP != "" {
				ips = append(ips, ing.IP)
			} else if ing.Hostname != "" {
				ips = append(ips, ing.Hostname)
			}
		}
		ips = append(ips, s.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	}
	if len(s.Spec.ExternalIPs) > 0 {
		return strings.Join(s.Spec.ExternalIPs, ",")
	}
	return "<none>"
}

func servicePorts(s *corev1.Service) string {
	if len(s.Spec.Ports) == 0 {
		return "<none>"
	}
	var out []string
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			out = append(out, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
		} else {
			out = append(out, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
	}
	return strings.Join(out, ",")
}

func selectorOrNone(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	return labels.FormatLabels(m)
}
