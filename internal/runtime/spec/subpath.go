package spec

import (
	"fmt"
	"sort"
	"strings"
)

// KubeletEnv returns the container's env vars as the kubelet computes them
// (envFrom, then env, valueFrom resolved), without the image's env, PATH
// or HOSTNAME: what $(VAR) in subPathExpr, command and args may name.
func KubeletEnv(in Input) (map[string]string, error) {
	path, err := containerPath(in)
	if err != nil {
		return nil, err
	}
	env, err := kubeletEnv(in, path)
	if err != nil {
		return nil, err
	}
	return env.toMap(), nil
}

// ExpandSubPathExpr expands a volumeMount's subPathExpr with the
// container's env (KubeletEnv) as the kubelet's ExpandContainerVolumeMounts
// does: every $(VAR) must name a var with a non-empty value, else the
// error lists the missing ones ("missing value for A, B"); "$$" is a "$".
// The result is not checked here: the node refuses an absolute one or one
// with "..", as for subPath.
func ExpandSubPathExpr(expr string, env map[string]string) (string, error) {
	missing := map[string]bool{}
	out := expandWith(expr, func(name string) (string, bool) {
		v := env[name]
		if v == "" {
			missing[name] = true
		}
		return v, true
	})
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", fmt.Errorf("missing value for %s: %w", strings.Join(names, ", "), ErrInvalid)
	}
	return out, nil
}
