package spec

import (
	"slices"
	"strings"
)

// backendsCheck validates a backends: expectation.
func (c *checker) backendsCheck(p string, b *BackendsCheck) {
	if len(b.Traffic) == 0 {
		c.errorf(p+".traffic", "name at least one http or udp traffic")
	}
	for k, name := range b.Traffic {
		tp := indexPath(p+".traffic", k)
		if t := c.trafficRef(tp, name); t != nil && !t.Kind.NamesBackend() {
			c.errorf(tp, "backends need http or udp traffic (they name their backend); %s is %s", t.Name, t.Kind)
		}
	}
	if len(b.Only) == 0 && !b.PerClient {
		c.errorf(p, "give only: [backends...] or per_client: true")
	}
	for k, id := range b.Only {
		if !slices.Contains(c.identities, id) {
			c.errorf(indexPath(p+".only", k), "no http-echo or udp-echo service answers as %q%s", id, suggest(id, c.identities))
		}
	}
}

// metricKinds lists the traffic kinds that have metric m.
func metricKinds(m string) string {
	var kinds []string
	for _, k := range TrafficKind("").enumValues() {
		if _, ok := metricUnit(m, TrafficKind(k)); ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 1 {
		return strings.Join(kinds[:len(kinds)-1], ", ") + " and " + kinds[len(kinds)-1]
	}
	return strings.Join(kinds, "")
}
