package apiserver

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/peapod/peapod/internal/storage"
)

func TestBitmapAndRanges(t *testing.T) {
	r, err := parseIPRange("10.96.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	if r.size != 1<<20-2 || r.ip(0) != "10.96.0.1" || r.ip(r.size-1) != "10.111.255.254" {
		t.Fatalf("range: size %d first %s last %s", r.size, r.ip(0), r.ip(r.size-1))
	}
	for _, c := range []struct {
		ip  string
		off int
		ok  bool
	}{{"10.96.0.1", 0, true}, {"10.96.0.0", 0, false}, {"10.111.255.255", 0, false}, {"10.96.1.0", 255, true}, {"192.168.0.1", 0, false}, {"bogus", 0, false}} {
		off, ok := r.offset(c.ip)
		if ok != c.ok || (ok && off != c.off) {
			t.Errorf("offset(%s) = %d %v", c.ip, off, ok)
		}
	}
	for _, bad := range []string{"10.0.0.0/31", "fd00::/112", "x"} {
		if _, err := parseIPRange(bad); err == nil {
			t.Errorf("parseIPRange(%s) accepted", bad)
		}
	}
	p, err := parsePortRange("30000-32767")
	if err != nil || p.base != 30000 || p.size != 2768 || p.String() != "30000-32767" {
		t.Fatalf("ports: %+v %v", p, err)
	}
	b := newBitmap(10, nil)
	for i := 0; i < 9; i++ {
		b.set(i)
	}
	if off, ok := b.next(3, 0, 10); !ok || off != 9 {
		t.Fatalf("next: %d %v", off, ok)
	}
	b.set(9)
	if _, ok := b.next(0, 0, 10); ok {
		t.Fatal("full bitmap had room")
	}
	b.clear(4)
	if off, ok := b.next(7, 2, 10); !ok || off != 4 {
		t.Fatalf("wrap: %d %v", off, ok)
	}
	if staticBand(1<<20) != 256 || staticBand(100) != 16 || staticBand(8) != 8 {
		t.Fatal("static band")
	}
}

func TestServicesAllocation(t *testing.T) {
	srv, mem := newTestAPI(t)
	const svcs = "/api/v1/namespaces/default/services"
	r := do(t, srv, "GET", svcs+"/kubernetes", "", "")
	if r.code != 200 || jfield(r.obj, "spec", "clusterIP") != "10.96.0.1" || !strings.Contains(r.body, `"port":443`) {
		t.Fatalf("kubernetes service: %d %s", r.code, r.body)
	}
	r = do(t, srv, "POST", svcs, "application/yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n")
	ip, _ := jfield(r.obj, "spec", "clusterIP").(string)
	if r.code != 201 || !strings.HasPrefix(ip, "10.") || ip == "10.96.0.1" || jfield(r.obj, "spec", "type") != "ClusterIP" ||
		!strings.Contains(r.body, `"targetPort":80`) || !strings.Contains(r.body, `"ipFamilies":["IPv4"]`) || !strings.Contains(r.body, `"clusterIPs":["`+ip+`"]`) {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	svc := func(name, spec string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\nspec: " + spec + "\n"
	}
	if r := do(t, srv, "POST", svcs, "application/yaml", svc("dup", "{clusterIP: "+ip+", ports: [{port: 80}]}")); r.code != 422 || !strings.Contains(r.body, "already allocated") || !strings.Contains(r.body, "spec.clusterIPs") {
		t.Fatalf("duplicate IP: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", svcs, "application/yaml", svc("out", "{clusterIP: 10.0.0.9, ports: [{port: 80}]}")); r.code != 422 || !strings.Contains(r.body, "The range of valid IPs is 10.96.0.0/12") {
		t.Fatalf("out of range: %d %s", r.code, r.body)
	}
	// NodePorts
	r = do(t, srv, "POST", svcs, "application/yaml", svc("np", "{type: NodePort, ports: [{port: 80, name: http}, {port: 443, name: https, nodePort: 30443}]}"))
	np, _ := jfield(r.obj, "spec", "ports").([]interface{})
	if r.code != 201 || len(np) != 2 || np[1].(map[string]interface{})["nodePort"] != float64(30443) || jfield(r.obj, "spec", "externalTrafficPolicy") != "Cluster" {
		t.Fatalf("nodeport: %d %s", r.code, r.body)
	}
	if n := np[0].(map[string]interface{})["nodePort"].(float64); n < 30000 || n > 32767 {
		t.Fatalf("nodePort %v out of range", n)
	}
	if r := do(t, srv, "POST", svcs, "application/yaml", svc("np2", "{type: NodePort, ports: [{port: 1, nodePort: 30443}]}")); r.code != 422 || !strings.Contains(r.body, "spec.ports[0].nodePort") {
		t.Fatalf("nodePort reuse: %d %s", r.code, r.body)
	}
	// An update without clusterIP/nodePorts keeps them (kubectl replace).
	r = do(t, srv, "PUT", svcs+"/np", "application/yaml", svc("np", "{type: NodePort, ports: [{port: 80, name: http}, {port: 443, name: https}]}"))
	if r.code != 200 || !strings.Contains(r.body, `"nodePort":30443`) || jfield(r.obj, "spec", "clusterIP") == "" {
		t.Fatalf("replace keeps allocations: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "PATCH", svcs+"/web", "application/merge-patch+json", `{"spec":{"clusterIP":"10.96.0.77","clusterIPs":["10.96.0.77"]}}`); r.code != 422 || !strings.Contains(r.body, "may not change once set") {
		t.Fatalf("clusterIP change: %d %s", r.code, r.body)
	}
	// Switching to ClusterIP releases the node ports.
	if r := do(t, srv, "PATCH", svcs+"/np", "application/json-patch+json",
		`[{"op":"replace","path":"/spec/type","value":"ClusterIP"},{"op":"remove","path":"/spec/ports/0/nodePort"},{"op":"remove","path":"/spec/ports/1/nodePort"},{"op":"remove","path":"/spec/externalTrafficPolicy"}]`); r.code != 200 {
		t.Fatalf("to ClusterIP: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", svcs, "application/yaml", svc("np3", "{type: NodePort, ports: [{port: 1, nodePort: 30443}]}")); r.code != 201 {
		t.Fatalf("released nodePort not reusable: %d %s", r.code, r.body)
	}

	// A restart over the same storage keeps the allocations.
	a2 := newAPI(apiOptions{Store: mem, Authn: NewTokenAuthenticator(map[string]User{adminToken: {Name: "admin", Groups: []string{"system:masters"}}})})
	if err := a2.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(a2)
	defer srv2.Close()
	if r := do(t, srv2, "POST", svcs, "application/yaml", svc("dup", "{clusterIP: "+ip+", ports: [{port: 80}]}")); r.code != 422 || !strings.Contains(r.body, "already allocated") {
		t.Fatalf("after restart: %d %s", r.code, r.body)
	}
	// Deleting releases the IP.
	if r := do(t, srv2, "DELETE", svcs+"/web", "", ""); r.code != 200 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	if r := do(t, srv2, "POST", svcs, "application/yaml", svc("dup", "{clusterIP: "+ip+", ports: [{port: 80}]}")); r.code != 201 {
		t.Fatalf("released IP not reusable: %d %s", r.code, r.body)
	}
	// Table
	r = do(t, srv2, "GET", svcs, "", "", "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	for _, want := range []string{`"Cluster-IP"`, `"External-IP"`, `"Port(s)"`, `"443/TCP"`, `"1:30443/TCP"`, `"\u003cnone\u003e"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("table lacks %s: %s", want, r.body)
		}
	}
	_ = storage.ErrNotFound
}

func TestServiceAndSliceValidation(t *testing.T) {
	srv, _ := newTestAPI(t)
	r := do(t, srv, "POST", "/api/v1/namespaces/default/services", "application/yaml", `apiVersion: v1
kind: Service
metadata: {name: 1bad}
spec:
  type: ClusterIP
  sessionAffinity: Sticky
  ports:
  - {port: 0, protocol: HTTP, nodePort: 30001}
  - {port: 80, targetPort: "no_such_name!"}
`)
	if r.code != 422 {
		t.Fatalf("invalid service: %d %s", r.code, r.body)
	}
	for _, want := range []string{"metadata.name", "spec.sessionAffinity", "spec.ports[0].name", "spec.ports[0].port", "spec.ports[0].protocol",
		"spec.ports[0].nodePort", "spec.ports[1].name", "spec.ports[1].targetPort"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("422 lacks %s: %s", want, r.body)
		}
	}
	if r := do(t, srv, "POST", "/api/v1/namespaces/default/services", "application/yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: example.com}\n"); r.code != 201 || jfield(r.obj, "spec", "clusterIP") != nil {
		t.Fatalf("externalName: %d %s", r.code, r.body)
	}
	if r := do(t, srv, "POST", "/api/v1/namespaces/default/services", "application/yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: headless}\nspec: {clusterIP: None, selector: {a: b}}\n"); r.code != 201 || jfield(r.obj, "spec", "clusterIP") != "None" {
		t.Fatalf("headless: %d %s", r.code, r.body)
	}
	const slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
	r = do(t, srv, "POST", slices, "application/yaml", `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
- addresses: [10.88.0.5]
  conditions: {ready: true}
- addresses: [10.88.0.6]
ports: [{name: http, port: 80, protocol: TCP}]
`)
	if r.code != 201 {
		t.Fatalf("slice: %d %s", r.code, r.body)
	}
	r = do(t, srv, "POST", slices, "application/yaml", `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: bad}
addressType: IPv4
endpoints:
- addresses: [fd00::1]
- addresses: []
ports: [{name: http, port: 70000, protocol: ICMP}]
`)
	for _, want := range []string{"endpoints[0].addresses[0]", "endpoints[1].addresses", "ports[0].port", "ports[0].protocol"} {
		if r.code != 422 || !strings.Contains(r.body, want) {
			t.Errorf("slice 422 lacks %s: %d %s", want, r.code, r.body)
		}
	}
	r = do(t, srv, "GET", slices, "", "", "Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	if !strings.Contains(r.body, `"10.88.0.5,10.88.0.6"`) || !strings.Contains(r.body, `"AddressType"`) {
		t.Errorf("slice table: %s", r.body)
	}
	_ = time.Second
}

// TestReservedServiceIP: the cluster DNS's address is never handed to a
// Service that asks for none, even when it is the last free one, and a
// Service asking for it by address gets it.
func TestReservedServiceIP(t *testing.T) {
	mem := storage.NewMemory()
	defer mem.Close()
	a := newAPI(apiOptions{Store: mem, ServiceCIDR: "10.96.0.0/28", ReservedServiceIPs: []string{"10.96.0.10"},
		Authn: NewTokenAuthenticator(map[string]User{adminToken: {Name: "admin", Groups: []string{"system:masters"}}})})
	if err := a.bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	const svcs = "/api/v1/namespaces/default/services"
	svc := func(name, spec string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\nspec: " + spec + "\n"
	}
	// 14 usable addresses: the kubernetes Service holds one, DNS is reserved, 12 remain.
	for i := range 12 {
		r := do(t, srv, "POST", svcs, "application/yaml", svc(fmt.Sprintf("s%d", i), "{ports: [{port: 80}]}"))
		if r.code != 201 || jfield(r.obj, "spec", "clusterIP") == "10.96.0.10" {
			t.Fatalf("service %d: %d %s", i, r.code, r.body)
		}
	}
	if r := do(t, srv, "POST", svcs, "application/yaml", svc("full", "{ports: [{port: 80}]}")); r.code == 201 {
		t.Fatalf("the reserved address was handed out: %s", r.body)
	}
	r := do(t, srv, "POST", "/api/v1/namespaces/kube-system/services", "application/yaml",
		"apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 53, protocol: UDP}]}\n")
	if r.code != 201 {
		t.Fatalf("asking for the reserved address: %d %s", r.code, r.body)
	}
}
