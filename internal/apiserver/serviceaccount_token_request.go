package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// enableServiceAccountTokens serves POST serviceaccounts/<name>/token
// (the TokenRequest API) on a with tokens issued by t.
func enableServiceAccountTokens(a *api, t *ServiceAccountTokens) {
	res := a.resourceFor("", "v1", "serviceaccounts")
	if res.Subresources == nil {
		res.Subresources = map[string]SubresourceHandler{}
	}
	res.Subresources["token"] = tokenRequestHandler(t)
}

var tokenRequestGK = schema.GroupKind{Group: "authentication.k8s.io", Kind: "TokenRequest"}

// tokenRequestHandler serves an authentication.k8s.io/v1 TokenRequest for
// service account ns/name, as Kubernetes' TokenREST does: audiences default
// to the issuer, expirationSeconds to 3600 (at least 600); a boundObjectRef
// must be a v1 Pod of that service account (its uid, when given, must
// match). A node (system:node:<n>) may only request tokens bound to a pod
// scheduled on itself (NodeRestriction). It answers 201 with the request,
// its defaulted spec and status.token/expirationTimestamp.
func tokenRequestHandler(t *ServiceAccountTokens) SubresourceHandler {
	return func(ctx context.Context, a *api, res *Resource, ns, name string, body []byte, _ string) (runtime.Object, int, error) {
		var tr authenticationv1.TokenRequest
		if _, _, err := a.codecs.UniversalDeserializer().Decode(body, nil, &tr); err != nil {
			if jerr := json.Unmarshal(body, &tr); jerr != nil {
				return nil, 0, apierrors.NewBadRequest(fmt.Sprintf("decode TokenRequest: %v", err))
			}
		}
		if tr.Name != "" && tr.Name != name {
			return nil, 0, apierrors.NewBadRequest(fmt.Sprintf("TokenRequest name %q does not match the service account %q", tr.Name, name))
		}
		defaultTokenRequest(&tr, t.issuer)
		if errs := validateTokenRequest(&tr); len(errs) > 0 {
			return nil, 0, apierrors.NewInvalid(tokenRequestGK, name, errs)
		}
		objs := apiObjects{a}
		sa, err := objs.ServiceAccount(ctx, ns, name)
		if err != nil {
			return nil, 0, err
		}
		spec := tokenSpec{ServiceAccount: sa, Audiences: tr.Spec.Audiences,
			TTL: time.Duration(*tr.Spec.ExpirationSeconds) * time.Second}
		user, _ := UserFrom(ctx)
		node, isNode := NodeName(user)
		ref := tr.Spec.BoundObjectRef
		if isNode && ref == nil {
			return nil, 0, apierrors.NewForbidden(res.GVR.GroupResource(), name,
				fmt.Errorf("node %q requested token not bound to a pod", node))
		}
		if ref != nil {
			pod, err := objs.Pod(ctx, ns, ref.Name)
			if err != nil {
				return nil, 0, err
			}
			if ref.UID != "" && ref.UID != pod.UID {
				return nil, 0, apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, ref.Name,
					fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", ref.UID, pod.UID))
			}
			if pod.Spec.ServiceAccountName != name {
				return nil, 0, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", name))
			}
			if isNode && pod.Spec.NodeName != node {
				return nil, 0, apierrors.NewForbidden(res.GVR.GroupResource(), name,
					fmt.Errorf("node %q requested token bound to a pod scheduled on a different node", node))
			}
			spec.Pod = pod
			ref.UID = pod.UID
			if pod.Spec.NodeName != "" {
				spec.Node = &objectRef{Name: pod.Spec.NodeName}
				if obj, _, err := a.getObject(ctx, a.resourceFor("", "v1", "nodes"), "", pod.Spec.NodeName); err == nil {
					spec.Node.UID = string(metaOf(obj).GetUID())
				}
			}
		}
		tok, exp, err := t.issue(spec)
		if err != nil {
			return nil, 0, apierrors.NewInternalError(err)
		}
		tr.TypeMeta = metav1.TypeMeta{}
		tr.Name, tr.Namespace = name, ns
		tr.CreationTimestamp = metav1.NewTime(t.now().Truncate(time.Second))
		tr.Status = authenticationv1.TokenRequestStatus{Token: tok, ExpirationTimestamp: metav1.NewTime(exp)}
		return &tr, http.StatusCreated, nil
	}
}

// defaultTokenRequest fills audiences (the issuer) and expirationSeconds
// (3600). Pure.
func defaultTokenRequest(tr *authenticationv1.TokenRequest, issuer string) {
	if len(tr.Spec.Audiences) == 0 {
		tr.Spec.Audiences = []string{issuer}
	}
	if tr.Spec.ExpirationSeconds == nil {
		s := int64(defaultTokenExpirationSeconds)
		tr.Spec.ExpirationSeconds = &s
	}
}

// validateTokenRequest returns every invalid field of a defaulted request.
// Pure.
func validateTokenRequest(tr *authenticationv1.TokenRequest) field.ErrorList {
	spec := field.NewPath("spec")
	var errs field.ErrorList
	if s := *tr.Spec.ExpirationSeconds; s < minTokenExpirationSeconds {
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), s, "may not specify a duration less than 10 minutes"))
	} else if s > maxTokenExpirationSeconds {
		errs = append(errs, field.TooLong(spec.Child("expirationSeconds"), s, maxTokenExpirationSeconds))
	}
	if slices.Contains(tr.Spec.Audiences, "") {
		errs = append(errs, field.Invalid(spec.Child("audiences"), tr.Spec.Audiences, "must not contain an empty audience"))
	}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		rp := spec.Child("boundObjectRef")
		if ref.Kind != "Pod" {
			errs = append(errs, field.NotSupported(rp.Child("kind"), ref.Kind, []string{"Pod"}))
		}
		if ref.APIVersion != "" && ref.APIVersion != "v1" {
			errs = append(errs, field.NotSupported(rp.Child("apiVersion"), ref.APIVersion, []string{"v1"}))
		}
		if ref.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), ""))
		}
	}
	return errs
}

// NodeTokenRequestAuthorizer lets nodes (system:node:<name>) create
// serviceaccounts/token; the TokenRequest handler then admits only tokens
// bound to a pod of that service account scheduled on the node, as
// Kubernetes' node authorizer and NodeRestriction do together. It denies
// (without reason) everything else, so compose it with Union.
type NodeTokenRequestAuthorizer struct{}

var _ Authorizer = NodeTokenRequestAuthorizer{}

// Authorize implements Authorizer.
func (NodeTokenRequestAuthorizer) Authorize(_ context.Context, a Attributes) (bool, string, error) {
	if _, ok := NodeName(a.User); !ok {
		return false, "", nil
	}
	if a.Verb == "create" && a.Group == "" && a.Resource == "serviceaccounts" && a.Subresource == "token" && a.Namespace != "" {
		return true, "", nil
	}
	return false, "", nil
}

// ServiceAccountAuthorizer is peapod's fixed policy for service accounts
// (users system:serviceaccount:<ns>:<name> in system:serviceaccounts): they
// may read discovery, OpenAPI, /version and health paths, and get, list and
// watch every namespaced resource of their own namespace but secrets
// (including the status and log subresources). Everything else is denied,
// with a reason for service accounts and silently for others, so compose
// it with Union.
type ServiceAccountAuthorizer struct{}

var _ Authorizer = ServiceAccountAuthorizer{}

// Authorize implements Authorizer.
func (ServiceAccountAuthorizer) Authorize(_ context.Context, a Attributes) (bool, string, error) {
	ns, name, ok := ServiceAccountOf(a.User)
	if !ok || !slices.Contains(a.User.Groups, ServiceAccountsGroup) {
		return false, "", nil
	}
	if a.Resource == "" {
		if a.Verb == "get" && isNodeReadablePath(a.Path) {
			return true, "", nil
		}
		return false, fmt.Sprintf("service account %s/%s may only read discovery paths", ns, name), nil
	}
	if isRead(a.Verb) && a.Namespace == ns && a.Resource != "secrets" &&
		(a.Subresource == "" || a.Subresource == "status" || a.Subresource == "log") {
		return true, "", nil
	}
	return false, fmt.Sprintf("service account %s/%s may only get, list and watch objects (but secrets) in namespace %q", ns, name, ns), nil
}
