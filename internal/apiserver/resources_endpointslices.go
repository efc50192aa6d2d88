package apiserver

import (
	"fmt"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// endpointSliceResource registers discovery.k8s.io/v1 EndpointSlices:
// stored and validated (internal/controller/endpointslice and
// endpointslicemirroring write them, the service proxy reads them).
func endpointSliceResource() *Resource {
	return &Resource{
		GVR:  schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
		Kind: "EndpointSlice", Singular: "endpointslice", Namespaced: true, Table: endpointSliceTable,
		New:     func() runtime.Object { return &discoveryv1.EndpointSlice{} },
		NewList: func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
		Strategy: Strategy{
			Validate: func(obj runtime.Object) field.ErrorList {
				return ValidateEndpointSlice(obj.(*discoveryv1.EndpointSlice))
			},
			ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
				errs := ValidateEndpointSlice(obj.(*discoveryv1.EndpointSlice))
				if n, o := obj.(*discoveryv1.EndpointSlice).AddressType, old.(*discoveryv1.EndpointSlice).AddressType; n != o {
					errs = append(errs, field.Invalid(field.NewPath("addressType"), n, "field is immutable"))
				}
				return errs
			},
		},
	}
}

// ValidateEndpointSlice checks the address type, every endpoint's
// addresses (1-100, of that type), hostname and conditions, and the ports
// (name, protocol, number); at most 1000 endpoints and 100 ports. Pure.
func ValidateEndpointSlice(s *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	at := field.NewPath("addressType")
	switch s.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	case "":
		errs = append(errs, field.Required(at, ""))
	default:
		errs = append(errs, field.NotSupported(at, s.AddressType, []string{"FQDN", "IPv4", "IPv6"}))
	}
	ep := field.NewPath("endpoints")
	if len(s.Endpoints) > 1000 {
		errs = append(errs, field.TooMany(ep, len(s.Endpoints), 1000))
	}
	for i, e := range s.Endpoints {
		p := ep.Index(i)
		ap := p.Child("addresses")
		if len(e.Addresses) == 0 {
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		} else if len(e.Addresses) > 100 {
			errs = append(errs, field.TooMany(ap, len(e.Addresses), 100))
		}
		for j, addr := range e.Addresses {
			errs = append(errs, validateSliceAddress(ap.Index(j), s.AddressType, addr)...)
		}
		if e.Hostname != nil {
			errs = append(errs, dns1123Label(p.Child("hostname"), *e.Hostname)...)
		}
		if e.NodeName != nil {
			for _, msg := range validation.IsDNS1123Subdomain(*e.NodeName) {
				errs = append(errs, field.Invalid(p.Child("nodeName"), *e.NodeName, msg))
			}
		}
	}
	pp := field.NewPath("ports")
	if len(s.Ports) > 100 {
		errs = append(errs, field.TooMany(pp, len(s.Ports), 100))
	}
	names := map[string]bool{}
	for i, port := range s.Ports {
		p := pp.Index(i)
		if port.Name != nil && *port.Name != "" {
			errs = append(errs, dns1123Label(p.Child("name"), *port.Name)...)
		}
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if names[name] {
			errs = append(errs, field.Duplicate(p.Child("name"), name))
		}
		names[name] = true
		if port.Protocol == nil {
			errs = append(errs, field.Required(p.Child("protocol"), ""))
		} else if pr := *port.Protocol; pr != corev1.ProtocolTCP && pr != corev1.ProtocolUDP && pr != corev1.ProtocolSCTP {
			errs = append(errs, field.NotSupported(p.Child("protocol"), pr, []string{"SCTP", "TCP", "UDP"}))
		}
		if port.Port != nil {
			for _, msg := range validation.IsValidPortNum(int(*port.Port)) {
				errs = append(errs, field.Invalid(p.Child("port"), *port.Port, msg))
			}
		}
	}
	return errs
}

func validateSliceAddress(p *field.Path, t discoveryv1.AddressType, addr string) field.ErrorList {
	ip := net.ParseIP(addr)
	switch t {
	case discoveryv1.AddressTypeIPv4:
		if ip == nil || ip.To4() == nil {
			return field.ErrorList{field.Invalid(p, addr, "must be a valid IPv4 address")}
		}
		return validateEndpointIP(p, addr)
	case discoveryv1.AddressTypeIPv6:
		if ip == nil || ip.To4() != nil {
			return field.ErrorList{field.Invalid(p, addr, "must be a valid IPv6 address")}
		}
		return validateEndpointIP(p, addr)
	case discoveryv1.AddressTypeFQDN:
		return validation.IsFullyQualifiedDomainName(p, addr)
	}
	return nil
}

// endpointSliceTable: NAME ADDRESSTYPE PORTS ENDPOINTS AGE.
var endpointSliceTable = funcTable{
	cols: []metav1.TableColumnDefinition{
		nameColumn,
		{Name: "AddressType", Type: "string", Description: "addressType specifies the type of address carried by this EndpointSlice."},
		{Name: "Ports", Type: "string", Description: "ports specifies the list of network ports exposed by each endpoint in this slice."},
		{Name: "Endpoints", Type: "string", Description: "endpoints is a list of unique endpoints in this slice."},
		ageColumn,
	},
	cells: func(obj runtime.Object, now time.Time) []interface{} {
		s := obj.(*discoveryv1.EndpointSlice)
		return []interface{}{s.Name, string(s.AddressType), slicePorts(s), sliceEndpoints(s), age(s.CreationTimestamp, now)}
	},
}

func slicePorts(s *discoveryv1.EndpointSlice) string {
	if len(s.Ports) == 0 {
		return "<unset>"
	}
	var out []string
	for _, p := range s.Ports {
		if p.Port == nil {
			out = append(out, "<unset>")
		} else {
			out = append(out, fmt.Sprint(*p.Port))
		}
	}
	return strings.Join(out, ",")
}

// sliceEndpoints lists up to three addresses, then "+ N more...", as
// kubectl does.
func sliceEndpoints(s *discoveryv1.EndpointSlice) string {
	var all []string
	for _, e := range s.Endpoints {
		all = append(all, e.Addresses...)
	}
	if len(all) == 0 {
		return "<unset>"
	}
	if len(all) > 3 {
		return strings.Join(all[:3], ",") + fmt.Sprintf(" + %d more...", len(all)-3)
	}
	return strings.Join(all, ",")
}
