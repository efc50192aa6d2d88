package apiserver

import (
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// toTable renders objs as a meta.k8s.io/v1 Table. includeObject (None,
// Metadata — the default — or Object) chooses what each row embeds.
func (a *api) toTable(r *http.Request, res *Resource, objs []runtime.Object) (*metav1.Table, error) {
	conv := res.Table
	if conv == nil {
		conv = nameAgeTable{}
	}
	include := metav1.IncludeObjectPolicy(r.URL.Query().Get("includeObject"))
	t := &metav1.Table{ColumnDefinitions: conv.Columns(), Rows: []metav1.TableRow{}}
	t.Kind, t.APIVersion = "Table", "meta.k8s.io/v1"
	now := a.now()
	for _, obj := range objs {
		row := metav1.TableRow{Cells: conv.Cells(obj, now)}
		var embed runtime.Object
		switch include {
		case metav1.IncludeNone:
		case metav1.IncludeObject:
			embed = obj
		default:
			pom := &metav1.PartialObjectMetadata{}
			if oma, ok := obj.(metav1.ObjectMetaAccessor); ok {
				if om, ok := oma.GetObjectMeta().(*metav1.ObjectMeta); ok {
					pom.ObjectMeta = *om.DeepCopy()
				}
			}
			embed = pom
		}
		if embed != nil {
			raw, err := a.encode(a.jsonInfo.Serializer, embed)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			row.Object = runtime.RawExtension{Raw: raw}
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// age renders a timestamp's age as kubectl does ("5m", "<unknown>").
func age(ts metav1.Time, now time.Time) string {
	if ts.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(ts.Time))
}

// nameColumn is the first column of every table.
var nameColumn = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace."}
var ageColumn = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: "CreationTimestamp is the time the object was created."}

// nameAgeTable is the generic NAME AGE table.
type nameAgeTable struct{}

func (nameAgeTable) Columns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{nameColumn, ageColumn}
}

func (nameAgeTable) Cells(obj runtime.Object, now time.Time) []interface{} {
	m := metaOf(obj)
	return []interface{}{m.GetName(), age(m.GetCreationTimestamp(), now)}
}

// funcTable adapts column definitions and a cell function.
type funcTable struct {
	cols  []metav1.TableColumnDefinition
	cells func(obj runtime.Object, now time.Time) []interface{}
}

func (f funcTable) Columns() []metav1.TableColumnDefinition { return f.cols }
func (f funcTable) Cells(obj runtime.Object, now time.Time) []interface{} {
	return f.cells(obj, now)
}
