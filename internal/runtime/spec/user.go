package spec

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid uint32
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// parsePasswd parses /etc/passwd contents, skipping malformed lines as libc
// does.
func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid})
	}
	return out
}

// parseGroup parses /etc/group contents, skipping malformed lines.
func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		gid, err := parseID(f[2])
		if err != nil {
			continue
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	}
	return out
}

func parseID(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

// effectiveIDs returns runAsUser, runAsGroup and runAsNonRoot, the
// container's security context overriding the pod's.
func effectiveIDs(pod *corev1.Pod, c *corev1.Container) (user, group *int64, nonRoot bool) {
	if psc := pod.Spec.SecurityContext; psc != nil {
		user, group = psc.RunAsUser, psc.RunAsGroup
		nonRoot = psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			user = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			group = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
	}
	return user, group, nonRoot
}

func toID(v int64, fp string) (uint32, error) {
	if v < 0 || v > 1<<31-1 {
		return 0, fmt.Errorf("%s: %d out of range: %w", fp, v, ErrInvalid)
	}
	return uint32(v), nil
}

// resolveUser computes the process user:
//
//   - runAsUser (container over pod) sets the uid, otherwise the image's USER
//     does ("" is root; a name is looked up in the rootfs's /etc/passwd);
//   - runAsGroup sets the gid, otherwise the image USER's group part, else
//     the user's passwd entry, else 0;
//   - AdditionalGids holds the primary gid, the /etc/group groups listing the
//     user by name (unless supplementalGroupsPolicy is Strict), the pod's
//     supplementalGroups and its fsGroup, sorted and without duplicates;
//   - runAsNonRoot fails on uid 0 with the kubelet's message. Unlike the
//     kubelet, a named image user is verified through /etc/passwd instead of
//     being refused as unverifiable.
func resolveUser(in Input, path string) (specs.User, error) {
	pod, c := in.Pod, in.Container
	runAsUser, runAsGroup, nonRoot := effectiveIDs(pod, c)
	users := parsePasswd(in.Passwd)
	groups := parseGroup(in.Group)
	scPath := path + ".securityContext"

	var (
		u        specs.User
		entry    *passwdEntry
		groupSet bool
	)
	byUID := func(uid uint32) *passwdEntry {
		for i := range users {
			if users[i].uid == uid {
				return &users[i]
			}
		}
		return nil
	}
	if runAsUser != nil {
		uid, err := toID(*runAsUser, scPath+".runAsUser")
		if err != nil {
			return u, err
		}
		u.UID, entry = uid, byUID(uid)
	} else {
		userPart, groupPart, hasGroup := strings.Cut(in.Image.User, ":")
		switch {
		case userPart == "":
			u.UID, entry = 0, byUID(0)
		default:
			if uid, err := parseID(userPart); err == nil {
				u.UID, entry = uid, byUID(uid)
				break
			}
			for i := range users {
				if users[i].name == userPart {
					entry = &users[i]
					break
				}
			}
			if entry == nil {
				return u, fmt.Errorf("%s: image user: unable to find user %s: no matching entries in passwd file: %w",
					path, userPart, ErrInvalid)
			}
			u.UID = entry.uid
		}
		if hasGroup && groupPart != "" && runAsGroup == nil {
			gid, err := lookupGroup(groups, groupPart)
			if err != nil {
				return u, fmt.Errorf("%s: image user %q: %w", path, in.Image.User, err)
			}
			u.GID, groupSet = gid, true
		}
	}
	if runAsGroup != nil {
		gid, err := toID(*runAsGroup, scPath+".runAsGroup")
		if err != nil {
			return u, err
		}
		u.GID, groupSet = gid, true
	}
	if !groupSet && entry != nil {
		u.GID = entry.gid
	}

	if nonRoot && u.UID == 0 {
		who := fmt.Sprintf("(pod: %q, container: %s)",
			fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID), c.Name)
		if runAsUser != nil {
			return u, fmt.Errorf("%w: container's runAsUser breaks non-root policy %s", ErrRunAsNonRoot, who)
		}
		return u, fmt.Errorf("%w: container has runAsNonRoot and image will run as root %s", ErrRunAsNonRoot, who)
	}

	gids := []uint32{u.GID}
	psc := pod.Spec.SecurityContext
	strict := psc != nil && psc.SupplementalGroupsPolicy != nil &&
		*psc.SupplementalGroupsPolicy == corev1.SupplementalGroupsPolicyStrict
	if entry != nil && !strict {
		for _, g := range groups {
			for _, m := range g.members {
				if m == entry.name {
					gids = append(gids, g.gid)
				}
			}
		}
	}
	if psc != nil {
		for i, g := range psc.SupplementalGroups {
			gid, err := toID(g, fmt.Sprintf("spec.securityContext.supplementalGroups[%d]", i))
			if err != nil {
				return u, err
			}
			gids = append(gids, gid)
		}
		if psc.FSGroup != nil {
			gid, err := toID(*psc.FSGroup, "spec.securityContext.fsGroup")
			if err != nil {
				return u, err
			}
			gids = append(gids, gid)
		}
	}
	u.AdditionalGids = uniqueSorted(gids)
	return u, nil
}

// lookupGroup resolves a numeric gid or a group name from /etc/group.
func lookupGroup(groups []groupEntry, s string) (uint32, error) {
	if gid, err := parseID(s); err == nil {
		return gid, nil
	}
	for _, g := range groups {
		if g.name == s {
			return g.gid, nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file: %w", s, ErrInvalid)
}

func uniqueSorted(ids []uint32) []uint32 {
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var out []uint32
	for _, id := range ids {
		if len(out) == 0 || id != out[len(out)-1] {
			out = append(out, id)
		}
	}
	return out
}
