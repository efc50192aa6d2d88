package translations_test

import (
	"testing"

	"github.com/chai2010/gettext-go"
	// Its package-level help texts call i18n.T during init, which is
	// what loads a catalog.
	_ "k8s.io/kubectl/pkg/cmd/options"
	"k8s.io/kubectl/pkg/util/i18n"

	_ "github.com/peapod/peapod/internal/kubectl/translations"
)

// TestNoCatalogOutsideKubectl: this test binary is not kubectl, so this
// package's init ran before kubectl's command packages' and no catalog was
// loaded (LoadTranslations sets gettext's domain to k8s); i18n.T returns
// its English text.
func TestNoCatalogOutsideKubectl(t *testing.T) {
	if got := i18n.T("Display one or many resources"); got != "Display one or many resources" {
		t.Errorf("T returned %q", got)
	}
	if domain := gettext.SetDomain(""); domain == "k8s" {
		t.Errorf("kubectl's catalog was loaded (gettext domain %q)", domain)
	}
}
