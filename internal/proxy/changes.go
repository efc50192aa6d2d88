package proxy

import (
	"reflect"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// change is one Service's part before (old) and after (new) a sync;
// either may be nil (a Service appearing or going).
type change struct{ old, new *part }

// writeChanges adds to tx the operations that turn every old part into
// its new one. With full, the fixed objects have just been rewritten
// (maps and sets emptied, see addFixed) and every new part is written
// whole; otherwise only what differs is: new chains are added, changed
// chains flushed and refilled, map elements deleted, replaced or added
// one by one. It returns the chains that went out of use: they are
// flushed here and must be deleted by a later transaction (a kernel
// before 6.2 may still see them referenced by the map elements deleted
// in this one). hairpin counts, per endpoint address, the parts using
// it before this sync (read only; with full, taken as empty, the set
// having just been emptied); the hairpin set follows the counts: an
// address's element is added when its count leaves 0 and deleted when it
// returns to 0. counts are the new counts of the addresses the changes
// touch (0: no part uses it any more), for the caller to merge into
// hairpin once tx has been applied (with full, they are all of them).
// The work is proportional to the changes, not to the table: a sync of
// one Service among thousands must not walk every endpoint. Pure.
func writeChanges(tx *knftables.Transaction, changes []change, full bool, hairpin map[string]int) (stale []string, counts map[string]int) {
	empty := newPart()
	olds := make([]*part, len(changes))
	for i, c := range changes {
		olds[i] = c.old
		if olds[i] == nil || full {
			olds[i] = empty
		}
	}
	news := make([]*part, len(changes))
	for i, c := range changes {
		news[i] = c.new
		if news[i] == nil {
			news[i] = empty
		}
	}
	// 1. New chains and affinity sets, before anything names them.
	for i := range changes {
		for _, name := range sortedKeys(news[i].chains) {
			if _, ok := olds[i].chains[name]; !ok {
				tx.Add(&knftables.Chain{Name: name})
			}
		}
		for _, name := range sortedKeys(news[i].affinity) {
			if _, ok := olds[i].affinity[name]; !ok {
				tx.Add(&knftables.Set{Name: name, Type: "ipv4_addr",
					Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
					Timeout: knftables.PtrTo(time.Duration(news[i].affinity[name]) * time.Second)})
			}
		}
	}
	// 2. Rules of new and changed chains. A full sync flushes every
	// chain: one may hold rules from before a restart.
	for i := range changes {
		for _, name := range sortedKeys(news[i].chains) {
			rules := news[i].chains[name]
			old, existed := olds[i].chains[name]
			if existed && reflect.DeepEqual(old, rules) {
				continue
			}
			if existed || full {
				tx.Flush(&knftables.Chain{Name: name})
			}
			for _, r := range rules {
				tx.Add(&knftables.Rule{Chain: name, Rule: r})
			}
		}
	}
	// 3. Map and set elements: every removal before any addition, as a
	// key may move from one Service to another.
	for i := range changes {
		for _, cname := range sortedKeys(olds[i].elements) {
			olde, newe := olds[i].elements[cname], news[i].elements[cname]
			for _, key := range sortedKeys(olde) {
				if v, ok := newe[key]; ok && v == olde[key] {
					continue
				}
				tx.Delete(element(cname, key, ""))
			}
		}
	}
	for i := range changes {
		for _, cname := range sortedKeys(news[i].elements) {
			olde, newe := olds[i].elements[cname], news[i].elements[cname]
			for _, key := range sortedKeys(newe) {
				if v, ok := olde[key]; ok && v == newe[key] {
					continue
				}
				tx.Add(element(cname, key, newe[key]))
			}
		}
	}
	// Endpoint addresses shared by several Services stay in the hairpin
	// set while any of them uses one. Only the addresses of the changed
	// parts are counted again.
	counts = map[string]int{}
	before := func(ip string) int {
		if full {
			return 0
		}
		return hairpin[ip]
	}
	for i, c := range changes {
		if !full && c.old != nil {
			for _, ip := range c.old.hairpin {
				n, ok := counts[ip]
				if !ok {
					n = before(ip)
				}
				counts[ip] = n - 1
			}
		}
		for _, ip := range news[i].hairpin {
			n, ok := counts[ip]
			if !ok {
				n = before(ip)
			}
			counts[ip] = n + 1
		}
	}
	for _, ip := range sortedKeys(counts) {
		switch n, was := counts[ip], before(ip); {
		case n <= 0:
			counts[ip] = 0
			if was > 0 {
				tx.Delete(element(setHairpin, ip+" . "+ip, ""))
			}
		case was <= 0:
			tx.Add(element(setHairpin, ip+" . "+ip, ""))
		}
	}
	// 4. Chains out of use are emptied now and deleted later; their
	// affinity sets, referenced only from chains just emptied or
	// rewritten, go at once.
	for i, c := range changes {
		if c.old == nil {
			continue
		}
		for _, name := range sortedKeys(c.old.chains) {
			if _, ok := news[i].chains[name]; !ok {
				tx.Flush(&knftables.Chain{Name: name})
				stale = append(stale, name)
			}
		}
	}
	for i, c := range changes {
		if c.old == nil {
			continue
		}
		for _, name := range sortedKeys(c.old.affinity) {
			if _, ok := news[i].affinity[name]; !ok {
				tx.Delete(&knftables.Set{Name: name})
			}
		}
	}
	return stale, counts
}

// element is the knftables element of container cname with key and
// value in nft syntax (concatenations joined by " . ").
func element(cname, key, value string) *knftables.Element {
	e := &knftables.Element{Key: strings.Split(key, " . ")}
	if isMap(cname) {
		e.Map = cname
		if value != "" {
			e.Value = []string{value}
		}
	} else {
		e.Set = cname
	}
	return e
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
