// LEAD: remove the build constraint above when merging branch svcproxy.
// These tests ask the cluster DNS through kube-dns's ClusterIP
// (10.96.0.10), which only the service proxy's DNAT leads to the DNS
// endpoint, and read the StatefulSet's hostnames from the EndpointSlices
// the EndpointSlice controller writes. Until both are in the tree they
// cannot pass, so they are not compiled; once they are, they run in
// `make test` like every other test (never skipped).

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestClusterDNSThroughClusterIP is TestClusterDNS's acceptance through
// the path pods really take: ClusterFirst pods' resolv.conf names
// 10.96.0.10, the service proxy sends it to the DNS endpoint.
func TestClusterDNSThroughClusterIP(t *testing.T) {
	upstream := startUpstream(t)
	c := startOwnNetworkCluster(t, "ppdns1", "10.233.0.0/16", "--cluster-dns-upstream", upstream.addr)
	c.namespace("dnstest")
	c.apply(dnsFixtureManifest)
	t.Cleanup(func() {
		_ = c.client.AppsV1().StatefulSets("dnstest").Delete(context.Background(), "db", metav1.DeleteOptions{})
	})
	c.waitPod("dnstest", "client", 90*time.Second, "running", running)
	db0 := c.waitPod("dnstest", "db-0", 90*time.Second, "running", running)
	clientNS := podNetNS(t, c, "dnstest", "client")
	web, err := c.client.CoreV1().Services("dnstest").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const clusterDNS = "10.96.0.10:53"

	// Over UDP and TCP through the ClusterIP, from the pod's namespace.
	for _, tcp := range []bool{false, true} {
		resp := query(t, clientNS, clusterDNS, "web.dnstest.svc.cluster.local", mdns.TypeA, tcp)
		if got := answers(resp); !slices.Equal(got, []string{"A " + web.Spec.ClusterIP}) {
			t.Errorf("through the ClusterIP (tcp %v): %q", tcp, got)
		}
	}
	// The StatefulSet's pods by hostname, from the controller's slices.
	c.eventually(30*time.Second, func() error {
		resp := query(t, clientNS, clusterDNS, "db-0.db.dnstest.svc.cluster.local", mdns.TypeA, false)
		if got := answers(resp); !slices.Equal(got, []string{"A " + db0.Status.PodIP}) {
			return fmt.Errorf("db-0.db: %s %q", mdns.RcodeToString[resp.Rcode], got)
		}
		return nil
	})
	// nslookup with the pod's own resolv.conf (ClusterFirst).
	for name, want := range map[string]string{
		"web.dnstest.svc.cluster.local": web.Spec.ClusterIP,
		"outside.example":               "192.0.2.77",
	} {
		out, err := c.kubectl("exec", "-n", "dnstest", "client", "--", "nslookup", "-type=a", name)
		if err != nil || !strings.Contains(out, "Address: "+want) {
			t.Errorf("nslookup %s: %v\n%s", name, err, out)
		}
	}
	// The search path of a ClusterFirst pod: its own namespace's short
	// names, and <svc>.<ns> from another namespace.
	out, _ := c.kubectl("exec", "-n", "dnstest", "client", "--", "ping", "-c", "1", "-W", "1", "web")
	if !strings.Contains(out, fmt.Sprintf("PING web (%s)", web.Spec.ClusterIP)) {
		t.Errorf("short name from its own namespace:\n%s", out)
	}
	c.namespace("dnsother")
	c.apply(`
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: dnsother}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
`)
	c.waitPod("dnsother", "other", 90*time.Second, "running", running)
	out, _ = c.kubectl("exec", "-n", "dnsother", "other", "--", "ping", "-c", "1", "-W", "1", "web.dnstest")
	if !strings.Contains(out, fmt.Sprintf("PING web.dnstest (%s)", web.Spec.ClusterIP)) {
		t.Errorf("<svc>.<ns> from another namespace:\n%s", out)
	}
}
