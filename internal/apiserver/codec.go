package apiserver

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// newScheme registers every built-in API type plus the meta.k8s.io types
// (Table, PartialObjectMetadata) and the unversioned option types.
func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	if err := metav1.AddMetaToScheme(s); err != nil {
		panic(err)
	}
	if err := apidiscoveryv2.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// mediaChoice is the negotiated response format.
type mediaChoice struct {
	info runtime.SerializerInfo
	// as is the "as" parameter accepted: "", "Table", "APIGroupDiscoveryList".
	as string
	// contentType is sent back to the client.
	contentType string
}

const maxBody = 3 << 20

// negotiate picks the response format from the Accept header. allowAs lists
// the "as=" conversions this endpoint can produce.
func (a *api) negotiate(r *http.Request, allowAs ...string) (mediaChoice, error) {
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "application/json"
	}
	for _, item := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(item))
		if err != nil {
			continue
		}
		if mt == "*/*" || mt == "application/*" {
			mt = runtime.ContentTypeJSON
		}
		info, ok := runtime.SerializerInfoForMediaType(a.codecs.SupportedMediaTypes(), mt)
		if !ok {
			continue
		}
		as := params["as"]
		if as != "" {
			if !contains(allowAs, as) {
				continue
			}
			switch as {
			case "Table":
				if params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") || mt == runtime.ContentTypeProtobuf {
					continue
				}
			case "APIGroupDiscoveryList":
				if params["g"] != "apidiscovery.k8s.io" || params["v"] != "v2" || mt != runtime.ContentTypeJSON {
					continue
				}
			}
		}
		ct := info.MediaType
		if as != "" {
			ct = fmt.Sprintf("%s;as=%s;g=%s;v=%s", mt, as, params["g"], params["v"])
		}
		return mediaChoice{info: info, as: as, contentType: ct}, nil
	}
	return mediaChoice{}, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "", "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf", 0, false)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// encode serialises obj with its own group/version set.
func (a *api) encode(ser runtime.Serializer, obj runtime.Object) ([]byte, error) {
	gvks, _, err := a.scheme.ObjectKinds(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", obj, err)
	}
	return runtime.Encode(a.codecs.EncoderForVersion(ser, gvks[0].GroupVersion()), obj)
}

// writeObject writes obj with the negotiated format; on negotiation
// failure it writes the error.
func (a *api) writeObject(w http.ResponseWriter, r *http.Request, code int, obj runtime.Object) {
	mc, err := a.negotiate(r)
	if err != nil {
		mc = mediaChoice{info: a.jsonInfo, contentType: runtime.ContentTypeJSON}
		obj, code = statusFor(err), http.StatusNotAcceptable
	}
	a.writeWith(w, mc, code, obj)
}

func (a *api) writeWith(w http.ResponseWriter, mc mediaChoice, code int, obj runtime.Object) {
	data, err := a.encode(mc.info.Serializer, obj)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mc.contentType)
	w.WriteHeader(code)
	w.Write(data)
}

// statusFor turns any error into a metav1.Status; unknown errors are 500.
func statusFor(err error) *metav1.Status {
	var st metav1.Status
	if s, ok := asAPIStatus(err); ok {
		st = s.Status()
	} else {
		st = apierrors.NewInternalError(err).Status()
	}
	st.Kind, st.APIVersion = "Status", "v1"
	return &st
}

func asAPIStatus(err error) (apierrors.APIStatus, bool) {
	for e := err; e != nil; {
		if s, ok := e.(apierrors.APIStatus); ok {
			return s, true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return nil, false
		}
		e = u.Unwrap()
	}
	return nil, false
}

// writeError writes err as a metav1.Status with its HTTP code.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errNoRoute) {
		writeNoRoute(w)
		return
	}
	st := statusFor(err)
	a.writeObject(w, r, int(st.Code), st)
}

// decodeBody reads a request body of the resource's kind. Malformed input
// is a 400 BadRequest; with fieldValidation=Strict unknown or duplicate
// fields are too.
func (a *api) decodeBody(r *http.Request, res *Resource) (runtime.Object, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read body: %v", err))
	}
	if len(body) > maxBody {
		return nil, apierrors.NewRequestEntityTooLargeError("limit is 3MB")
	}
	return a.decodeBytes(r, body, res)
}

// strictFields says whether the request asks unknown and duplicate fields
// to be refused (fieldValidation=Strict); otherwise they are dropped, as
// kube-apiserver does with Ignore and Warn.
func strictFields(r *http.Request) bool {
	return r.URL.Query().Get("fieldValidation") == "Strict"
}

func (a *api) decodeBytes(r *http.Request, body []byte, res *Resource) (runtime.Object, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		mt = runtime.ContentTypeJSON
	}
	info, ok := runtime.SerializerInfoForMediaType(a.codecs.SupportedMediaTypes(), mt)
	if !ok {
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "", fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %s)", mt), 0, false)
	}
	dec := info.Serializer
	strict := strictFields(r)
	if strict && info.StrictSerializer != nil {
		dec = info.StrictSerializer
	}
	gvk := res.GroupVersionKind()
	obj, _, err := dec.Decode(body, &gvk, res.New())
	if err != nil && !(runtime.IsStrictDecodingError(err) && !strict) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("decode %s: %v", res.Kind, err))
	}
	if obj == nil {
		return nil, apierrors.NewBadRequest("empty body")
	}
	got := obj.GetObjectKind().GroupVersionKind()
	if got.Kind != "" && (got.Kind != gvk.Kind || got.GroupVersion() != gvk.GroupVersion()) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body of the request was in an unknown format or of kind %s, expected %s", got, gvk))
	}
	if fmt.Sprintf("%T", obj) != fmt.Sprintf("%T", res.New()) {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("decode %s: got %T", res.Kind, obj))
	}
	return obj, nil
}

// newCodecs builds the serializers and the storage codec (protobuf).
func newCodecs(s *runtime.Scheme) (serializer.CodecFactory, runtime.Serializer) {
	cf := serializer.NewCodecFactory(s, serializer.EnableStrict)
	return cf, protobuf.NewSerializer(s, s)
}
