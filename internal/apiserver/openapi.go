package apiserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// openAPI serves a minimal OpenAPI v3 document set: one path per
// resource operation, tagged with x-kubernetes-group-version-kind and the
// query parameters the server supports. It is enough for kubectl to learn
// that the server validates fields itself (fieldValidation), so it skips
// client-side schema validation; it carries no schemas.
//
// /openapi/v2 is one empty document (no paths, no definitions): kubectl
// still reads v2 to validate the items of a List client-side (`kubectl
// replace -f` of `kubectl get ... -o json`, as the key rotation in
// docs/architecture.md does); finding no schema for a kind, it skips that
// and the server validates each object. Without it, kubectl refuses Lists.
type openAPI struct {
	index  []byte
	docs   map[string][]byte // "api/v1" -> document
	v2pb   []byte            // the v2 document as kubectl asks for it
	v2json []byte
}

// The v2 protobuf media type as clients ask for it, and as kube-openapi
// answers it ("@" is not valid in a Content-Type).
const (
	openAPIV2ProtobufAsked    = "com.github.proto-openapi.spec.v2@v1.0+protobuf"
	openAPIV2ProtobufAnswered = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
)

func newOpenAPI(a *api) *openAPI {
	o := &openAPI{docs: map[string][]byte{}}
	type ref struct {
		URL string `json:"serverRelativeURL"`
	}
	index := map[string]map[string]ref{"paths": {}}
	for _, gv := range a.groups {
		key := "apis/" + gv.Group + "/" + gv.Version
		if gv.Group == "" {
			key = "api/" + gv.Version
		}
		doc := o.document(a, gv, key)
		data, _ := json.Marshal(doc)
		sum := sha256.Sum256(data)
		o.docs[key] = data
		index["paths"][key] = ref{URL: "/openapi/v3/" + key + "?hash=" + strings.ToUpper(hex.EncodeToString(sum[:]))}
	}
	o.index, _ = json.Marshal(index)
	info := &openapi_v2.Info{Title: "Kubernetes", Version: gitVersion}
	o.v2pb, _ = proto.Marshal(&openapi_v2.Document{Swagger: "2.0", Info: info, Paths: &openapi_v2.Paths{}})
	o.v2json, _ = json.Marshal(map[string]interface{}{"swagger": "2.0", "info": map[string]string{"title": info.Title, "version": info.Version}, "paths": map[string]interface{}{}})
	return o
}

func (o *openAPI) document(a *api, gv schema.GroupVersion, key string) map[string]interface{} {
	param := func(name string) map[string]interface{} {
		return map[string]interface{}{"name": name, "in": "query", "schema": map[string]interface{}{"type": "string"}}
	}
	params := []interface{}{param("dryRun"), param("fieldManager"), param("fieldValidation"), param("pretty"), param("force")}
	paths := map[string]interface{}{}
	for _, res := range a.resources {
		if res.GVR.GroupVersion() != gv {
			continue
		}
		gvk := map[string]string{"group": gv.Group, "version": gv.Version, "kind": res.Kind}
		op := func(id string) map[string]interface{} {
			return map[string]interface{}{
				"operationId":                     id + res.Kind,
				"parameters":                      params,
				"x-kubernetes-group-version-kind": gvk,
				"x-kubernetes-action":             id,
				"responses":                       map[string]interface{}{"200": map[string]interface{}{"description": "OK"}},
			}
		}
		base := "/" + key + "/"
		if res.Namespaced {
			base += "namespaces/{namespace}/"
		}
		paths[base+res.GVR.Resource] = map[string]interface{}{"post": op("post")}
		paths[base+res.GVR.Resource+"/{name}"] = map[string]interface{}{"put": op("put"), "patch": op("patch")}
	}
	return map[string]interface{}{
		"openapi":    "3.0.0",
		"info":       map[string]string{"title": "Kubernetes", "version": KubernetesVersion},
		"paths":      paths,
		"components": map[string]interface{}{"schemas": map[string]interface{}{}},
	}
}

func (o *openAPI) serve(w http.ResponseWriter, r *http.Request) {
	if strings.TrimSuffix(r.URL.Path, "/") == "/openapi/v2" {
		if prefersOpenAPIProtobuf(r.Header.Get("Accept")) {
			w.Header().Set("Content-Type", openAPIV2ProtobufAnswered)
			w.Write(o.v2pb)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(o.v2json)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/openapi/v3")
	p = strings.Trim(p, "/")
	var data []byte
	if p == "" && strings.HasPrefix(r.URL.Path, "/openapi/v3") {
		data = o.index
	} else if d, ok := o.docs[p]; ok {
		data = d
	}
	if data == nil {
		st := statusFor(apierrors.NewNotFound(schema.GroupResource{}, ""))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(st)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

// prefersOpenAPIProtobuf reports whether the Accept header ranks the v2
// protobuf type above JSON (highest q wins, then the first listed).
func prefersOpenAPIProtobuf(accept string) bool {
	best, bestQ := "", -1.0
	for _, item := range strings.Split(accept, ",") {
		parts := strings.Split(strings.TrimSpace(item), ";")
		mt, q := strings.TrimSpace(parts[0]), 1.0
		for _, p := range parts[1:] {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		if q > bestQ && q > 0 {
			best, bestQ = mt, q
		}
	}
	return best == "application/"+openAPIV2ProtobufAsked || best == openAPIV2ProtobufAnswered
}
