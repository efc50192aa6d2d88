package apiserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Defaults of the service ranges.
const (
	DefaultServiceCIDR   = "10.96.0.0/12"
	DefaultNodePortRange = "30000-32767"
)

// Storage keys of the persisted allocation bitmaps (as Kubernetes names
// them).
const (
	serviceIPsKey   = "/registry/ranges/serviceips"
	serviceNodesKey = "/registry/ranges/servicenodeports"
)

// serviceAllocators hands out ClusterIPs and NodePorts. err is set when
// the configured ranges are invalid; every Service write then fails.
type serviceAllocators struct {
	err   error
	ips   ipRange
	ports portRange
	ipA   *rangeAllocator
	portA *rangeAllocator
}

func serviceCIDROrDefault(cidr string) string {
	if cidr == "" {
		return DefaultServiceCIDR
	}
	return cidr
}

func newServiceAllocators(a *api, cidr, ports string, reserved []string) *serviceAllocators {
	cidr = serviceCIDROrDefault(cidr)
	if ports == "" {
		ports = DefaultNodePortRange
	}
	s := &serviceAllocators{}
	var err1, err2 error
	s.ips, err1 = parseIPRange(cidr)
	s.ports, err2 = parsePortRange(ports)
	if s.err = errors.Join(err1, err2); s.err != nil {
		a.log.Error("invalid service ranges; Services cannot be written", "err", s.err)
		return s
	}
	s.ipA = newRangeAllocator(a, serviceIPsKey, s.ips.cidr.String(), s.ips.size)
	for _, ip := range reserved {
		if off, ok := s.ips.offset(ip); ok {
			s.ipA.reserve(off)
		} else {
			a.log.Warn("reserved ClusterIP outside the service range; ignored", "ip", ip, "range", s.ips.cidr)
		}
	}
	s.portA = newRangeAllocator(a, serviceNodesKey, s.ports.String(), s.ports.size)
	return s
}

// FirstServiceIP is the kubernetes Service's ClusterIP in a range.
func (s *serviceAllocators) firstIP() string { return s.ips.ip(0) }

func invalidService(name string, p *field.Path, v interface{}, msg string) error {
	return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), name, field.ErrorList{field.Invalid(p, v, msg)})
}

// allocate gives svc what its type needs and old (nil on create) did not
// hold: a ClusterIP (next free or the requested one) and NodePorts. undo
// releases what this call allocated; commit releases what old held that
// svc no longer does.
func (s *serviceAllocators) allocate(ctx context.Context, svc, old *corev1.Service) (commit, undo func(), retErr error) {
	if s.err != nil {
		return nil, nil, apierrors.NewInternalError(s.err)
	}
	var gotIPs, gotPorts []int
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, off := range gotIPs {
			s.ipA.release(rctx, off)
		}
		for _, off := range gotPorts {
			s.portA.release(rctx, off)
		}
	}
	defer func() {
		if retErr != nil {
			release()
		}
	}()
	oldIP := ""
	oldPorts := map[int32]bool{}
	if old != nil {
		if needsClusterIP(old) {
			oldIP = old.Spec.ClusterIP
		}
		if needsNodePorts(old) {
			for _, p := range old.Spec.Ports {
				oldPorts[p.NodePort] = p.NodePort != 0
			}
		}
	}
	if needsClusterIP(svc) {
		ip := svc.Spec.ClusterIP
		ipsPath := field.NewPath("spec", "clusterIPs")
		switch {
		case ip == "":
			off, err := s.ipA.allocateNext(ctx)
			if err != nil {
				return nil, nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: %w", err))
			}
			gotIPs = append(gotIPs, off)
			svc.Spec.ClusterIP = s.ips.ip(off)
			svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		case ip != oldIP:
			off, ok := s.ips.offset(ip)
			if !ok {
				return nil, nil, invalidService(svc.Name, ipsPath, []string{ip}, fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", ip, ip, s.ips.cidr))
			}
			if err := s.ipA.allocate(ctx, off, errAllocated); err != nil {
				if errors.Is(err, errAllocated) {
					return nil, nil, invalidService(svc.Name, ipsPath, []string{ip}, fmt.Sprintf("failed to allocate IP %s: %v", ip, err))
				}
				return nil, nil, apierrors.NewInternalError(err)
			}
			gotIPs = append(gotIPs, off)
		}
	}
	newPorts := map[int32]bool{}
	if needsNodePorts(svc) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			pp := field.NewPath("spec", "ports").Index(i).Child("nodePort")
			switch {
			case p.NodePort == 0:
				off, err := s.portA.allocateNext(ctx)
				if err != nil {
					return nil, nil, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %w", err))
				}
				gotPorts = append(gotPorts, off)
				p.NodePort = int32(s.ports.base + off)
			case oldPorts[p.NodePort] || newPorts[p.NodePort]:
			default:
				off := int(p.NodePort) - s.ports.base
				if off < 0 || off >= s.ports.size {
					return nil, nil, invalidService(svc.Name, pp, p.NodePort, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %s", s.ports))
				}
				if err := s.portA.allocate(ctx, off, errPortInUse); err != nil {
					if errors.Is(err, errPortInUse) {
						return nil, nil, invalidService(svc.Name, pp, p.NodePort, err.Error())
					}
					return nil, nil, apierrors.NewInternalError(err)
				}
				gotPorts = append(gotPorts, off)
			}
			newPorts[p.NodePort] = true
		}
	}
	commit = func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if oldIP != "" && (!needsClusterIP(svc) || svc.Spec.ClusterIP != oldIP) {
			if off, ok := s.ips.offset(oldIP); ok {
				s.ipA.release(rctx, off)
			}
		}
		for port, held := range oldPorts {
			if held && !newPorts[port] {
				s.portA.release(rctx, int(port)-s.ports.base)
			}
		}
	}
	return commit, release, nil
}

// release frees a deleted Service's ClusterIP and NodePorts.
func (s *serviceAllocators) release(ctx context.Context, svc *corev1.Service) {
	if s.err != nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if off, ok := s.ips.offset(svc.Spec.ClusterIP); ok && needsClusterIP(svc) {
		s.ipA.release(rctx, off)
	}
	for _, p := range svc.Spec.Ports {
		if off := int(p.NodePort) - s.ports.base; p.NodePort != 0 && off >= 0 && off < s.ports.size {
			s.portA.release(rctx, off)
		}
	}
}

// ensureKubernetesService creates (or corrects) the `kubernetes` Service
// in default: ClusterIP the first address of the range, port 443 → the
// API server's advertised port, no selector (its endpoints are the API
// servers', kubernetes_endpoints.go). Idempotent; run at every start.
func (a *api) ensureKubernetesService(ctx context.Context) error {
	if a.services.err != nil {
		return a.services.err
	}
	port := a.advertise.port
	if port == 0 {
		port = 6443
	}
	meta := metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
		Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}}
	svc := &corev1.Service{ObjectMeta: meta, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeClusterIP, ClusterIP: a.services.firstIP(),
		Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)}},
	}}
	if err := a.ensure(ctx, a.resourceFor("", "v1", "services"), svc, func(cur runtime.Object) {
		c := cur.(*corev1.Service)
		c.Spec.Ports = svc.Spec.Ports
		c.Spec.Selector = nil
	}); err != nil {
		return fmt.Errorf("kubernetes service: %w", err)
	}
	return nil
}

// ensure creates obj, or applies fix to the existing object and updates
// it (a no-op when nothing changed).
func (a *api) ensure(ctx context.Context, res *Resource, obj runtime.Object, fix func(cur runtime.Object)) error {
	m := metaOf(obj)
	_, _, err := a.getObject(ctx, res, m.GetNamespace(), m.GetName())
	if apierrors.IsNotFound(err) {
		_, err = a.create(ctx, res, m.GetNamespace(), obj.DeepCopyObject(), false)
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
	} else if err != nil {
		return err
	}
	_, err = a.update(ctx, res, m.GetNamespace(), m.GetName(), false, false, func(cur runtime.Object) (runtime.Object, error) {
		fix(cur)
		metaOf(cur).SetResourceVersion("")
		return cur, nil
	})
	return err
}
