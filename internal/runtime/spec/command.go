package spec

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Command returns the process args for c under Kubernetes' rules, expanding
// $(VAR) references with c's literal env values (env entries with a value,
// themselves expanded in order). Env vars that come from valueFrom or envFrom
// need the pod and are only known to Build; use ExpandCommand with the full
// env to include them.
func Command(c *corev1.Container, img ImageConfig) ([]string, error) {
	vars := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			vars[e.Name] = expand(e.Value, vars)
		}
	}
	return ExpandCommand(c, img, vars)
}

// ExpandCommand returns the process args for c given the container's env as
// the kubelet computes it (env and envFrom, without the image's env):
//
//   - command replaces the image ENTRYPOINT, and then the image CMD is
//     ignored;
//   - args replaces the image CMD;
//   - an ENTRYPOINT of exactly [""] counts as none;
//   - $(VAR) in command and args expands to env[VAR], stays as written when
//     VAR is not in env, and $$ escapes a $.
//
// An empty result is an error ("no command specified"), as in containerd.
func ExpandCommand(c *corev1.Container, img ImageConfig, env map[string]string) ([]string, error) {
	var command, args []string
	for _, s := range c.Command {
		command = append(command, expand(s, env))
	}
	for _, s := range c.Args {
		args = append(args, expand(s, env))
	}
	if len(command) == 0 {
		if len(args) == 0 {
			args = append([]string(nil), img.Cmd...)
		}
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			command = append([]string(nil), img.Entrypoint...)
		}
	}
	out := append(command, args...)
	if len(out) == 0 {
		return nil, fmt.Errorf("no command specified: %w", ErrInvalid)
	}
	return out, nil
}

// expand replaces $(NAME) in s by vars[NAME] following the kubelet's
// expansion rules: "$$" is an escaped "$", a reference to an unknown name is
// kept verbatim, and a "$" not starting "$(" or "$$" is kept as is, as is an
// unterminated "$(".
func expand(s string, vars map[string]string) string {
	return expandWith(s, func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	})
}

// expandWith is expand with the names resolved by lookup: a name lookup
// does not know (ok false) is kept verbatim.
func expandWith(s string, lookup func(name string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
			b.WriteByte(s[i+1])
			i++
		}
	}
	return b.String()
}
