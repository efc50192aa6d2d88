package ctrlutil

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/davecgh/go-spew/spew"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// HashTemplate returns the hash of template and collisionCount computed as
// Kubernetes' controller.ComputeHash: FNV-32a over a spew dump of the
// template, then the collision count, encoded with SafeEncodeString. It is
// the pod-template-hash of Deployments and the revision hash of
// StatefulSets. Pure.
func HashTemplate(template *v1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	printer := spew.ConfigState{Indent: " ", SortKeys: true, DisableMethods: true, SpewKeys: true}
	printer.Fprintf(h, "%#v", *template)
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		h.Write(b)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}
