package translations

import "testing"

func TestRunsKubectl(t *testing.T) {
	for argv, want := range map[*[]string]bool{
		{"peapod", "kubectl", "get", "pods"}:       true,
		{"peapod", "-v", "kubectl", "version"}:     true,
		{"peapod", "--verbose", "kubectl"}:         true,
		{"peapod", "agent", "--server", "kubectl"}: false,
		{"peapod", "server"}:                       false,
		{"peapod"}:                                 false,
		{}:                                         false,
		{"/tmp/translations.test", "-test.v=true"}: false,
	} {
		if got := runsKubectl(*argv); got != want {
			t.Errorf("runsKubectl(%q) = %v, want %v", *argv, got, want)
		}
	}
}
