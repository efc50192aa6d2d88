//lint:file-ignore SA1019 core/v1 Endpoints is still served by Kubernetes (deprecated, not removed), and many clients read it
package apiserver

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// endpointsResource registers core/v1 Endpoints, the legacy form of a
// Service's endpoints: stored and validated as Kubernetes does (the
// endpoints controller writes those of Services with selectors, users
// those of Services without).
func endpointsResource() *Resource {
	return &Resource{
		GVR: core("endpoints"), Kind: "Endpoints", Singular: "endpoints", Namespaced: true, ShortNames: []string{"ep"},
		Table:   endpointsTable,
		New:     func() runtime.Object { return &corev1.Endpoints{} },
		NewList: func() runtime.Object { return &corev1.EndpointsList{} },
		Strategy: Strategy{
			Validate: func(obj runtime.Object) field.ErrorList { return ValidateEndpoints(obj.(*corev1.Endpoints)) },
		},
	}
}

// ValidateEndpoints checks every subset of an Endpoints object: at least
// one address, each a usable endpoint IP with a valid hostname and node
// name, and ports with names (required and unique when there are
// several), numbers and protocols. Pure.
func ValidateEndpoints(e *corev1.Endpoints) field.ErrorList {
	var errs field.ErrorList
	for i, s := range e.Subsets {
		p := field.NewPath("subsets").Index(i)
		if len(s.Addresses) == 0 && len(s.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(p, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j, a := range s.Addresses {
			errs = append(errs, validateEndpointAddress(p.Child("addresses").Index(j), a)...)
		}
		for j, a := range s.NotReadyAddresses {
			errs = append(errs, validateEndpointAddress(p.Child("notReadyAddresses").Index(j), a)...)
		}
		names := map[string]bool{}
		for j, port := range s.Ports {
			pp := p.Child("ports").Index(j)
			if len(s.Ports) > 1 || port.Name != "" {
				errs = append(errs, dns1123Label(pp.Child("name"), port.Name)...)
				if names[port.Name] {
					errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
				}
				names[port.Name] = true
			}
			for _, msg := range validation.IsValidPortNum(int(port.Port)) {
				errs = append(errs, field.Invalid(pp.Child("port"), port.Port, msg))
			}
			switch port.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			case "":
				errs = append(errs, field.Required(pp.Child("protocol"), ""))
			default:
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, []string{"SCTP", "TCP", "UDP"}))
			}
		}
	}
	return errs
}

func validateEndpointAddress(p *field.Path, a corev1.EndpointAddress) field.ErrorList {
	errs := validateEndpointIP(p.Child("ip"), a.IP)
	if a.Hostname != "" {
		errs = append(errs, dns1123Label(p.Child("hostname"), a.Hostname)...)
	}
	if a.NodeName != nil {
		for _, msg := range validation.IsDNS1123Subdomain(*a.NodeName) {
			errs = append(errs, field.Invalid(p.Child("nodeName"), *a.NodeName, msg))
		}
	}
	return errs
}

// validateEndpointIP refuses addresses that cannot be a Service's
// endpoint, in Kubernetes' words: unspecified, loopback and link-local
// ones mean something on every node (the node itself, its metadata
// service) rather than one backend.
func validateEndpointIP(p *field.Path, s string) field.ErrorList {
	ip := net.ParseIP(s)
	if ip == nil {
		return field.ErrorList{field.Invalid(p, s, "must be a valid IP address")}
	}
	var errs field.ErrorList
	if ip.IsUnspecified() {
		errs = append(errs, field.Invalid(p, s, fmt.Sprintf("may not be unspecified (%v)", s)))
	}
	if ip.IsLoopback() {
		errs = append(errs, field.Invalid(p, s, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
	}
	if ip.IsLinkLocalUnicast() {
		errs = append(errs, field.Invalid(p, s, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
	}
	if ip.IsLinkLocalMulticast() {
		errs = append(errs, field.Invalid(p, s, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
	}
	return errs
}

// endpointsTable: NAME ENDPOINTS AGE, as kubectl prints Endpoints.
var endpointsTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "Endpoints", Type: "string", Description: "Endpoints is the list of endpoints of the object."},
		ageColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		e := obj.(*corev1.Endpoints)
		return []interface{}{e.Name, formatEndpoints(e), age(e.CreationTimestamp, now)}
	},
}

// formatEndpoints lists up to three ready ip:port pairs, then "+ N
// more...", or "<none>", as kubectl does.
func formatEndpoints(e *corev1.Endpoints) string {
	var list []string
	total := 0
	for _, s := range e.Subsets {
		for _, a := range s.Addresses {
			if len(s.Ports) == 0 {
				total++
				if len(list) < 3 {
					list = append(list, a.IP)
				}
				continue
			}
			for _, p := range s.Ports {
				total++
				if len(list) < 3 {
					list = append(list, net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
				}
			}
		}
	}
	if total == 0 {
		return "<none>"
	}
	out := strings.Join(list, ",")
	if total > len(list) {
		out += fmt.Sprintf(" + %d more...", total-len(list))
	}
	return out
}
