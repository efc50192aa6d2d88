package apiserver

import (
	"testing"
)

func TestPrefersOpenAPIProtobuf(t *testing.T) {
	for accept, want := range map[string]bool{
		"application/com.github.proto-openapi.spec.v2@v1.0+protobuf": true,
		"application/com.github.proto-openapi.spec.v2.v1.0+protobuf": true,
		"application/json": false,
		"":                 false,
		"application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf":        false,
		"application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json":        true,
		"application/com.github.proto-openapi.spec.v2@v1.0+protobuf; q=0.5, application/json": false,
		"application/com.github.proto-openapi.spec.v2@v1.0+protobuf; q=0":                     false,
	} {
		if got := prefersOpenAPIProtobuf(accept); got != want {
			t.Errorf("%q: protobuf %v, want %v", accept, got, want)
		}
	}
}

// TestOpenAPIV2ForKubectl: client-go reads /openapi/v2 as kubectl does to
// validate a List's items, and finds a document without schemas (so the
// server validates), rather than an error that makes kubectl refuse Lists.
func TestOpenAPIV2ForKubectl(t *testing.T) {
	s, stop := startServer(t, tempDir(t))
	defer stop()
	c, _ := clientFor(t, s.Kubeconfig())
	doc, err := c.Discovery().OpenAPISchema()
	if err != nil {
		t.Fatalf("OpenAPI v2: %v", err)
	}
	if doc.Swagger != "2.0" || len(doc.GetDefinitions().GetAdditionalProperties()) != 0 {
		t.Fatalf("OpenAPI v2 document: %v", doc)
	}
	out := mustKubectl(t, s.Kubeconfig(), `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a"},"stringData":{"k":"v"}}]}`, "create", "-f", "-")
	wantAll(t, "create a List", out, "secret/a created")
	out = mustKubectl(t, s.Kubeconfig(), "", "get", "secrets", "-o", "json")
	wantAll(t, "replace a List", mustKubectl(t, s.Kubeconfig(), out, "replace", "-f", "-"), "secret/a replaced")
}
