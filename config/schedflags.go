package config

import (
	"slices"
	"strings"

	"lvslab/sched"
)

// Schedulers are the IPVS scheduler names ipvsadm -s accepts (§3.2).
var schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// Schedulers returns the scheduler names -s accepts.
func Schedulers() []string { return slices.Clone(schedulers) }

func knownScheduler(name string) bool { return slices.Contains(schedulers, name) }

// schedFlagName is one word of ipvsadm's -b vocabulary. sched names the
// scheduler the word is restricted to ("" for the generic names).
type schedFlagName struct {
	name  string
	flag  sched.Flags
	sched string
}

var schedFlagNames = []schedFlagName{
	{"flag-1", sched.Flag1, ""},
	{"flag-2", sched.Flag2, ""},
	{"flag-3", sched.Flag3, ""},
	{"sh-fallback", sched.Flag1, "sh"},
	{"sh-port", sched.Flag2, "sh"},
	{"mh-fallback", sched.Flag1, "mh"},
	{"mh-port", sched.Flag2, "mh"},
}

// parseSchedFlags is ipvsadm's parse_sched_flags: a comma list, sh-/mh- names
// only with their scheduler (the default wlc when none is named).
func parseSchedFlags(schedName, arg string) (sched.Flags, error) {
	if schedName == "" {
		schedName = DefaultScheduler
	}
	var flags sched.Flags
	n := 0
	for f := range strings.SplitSeq(arg, ",") {
		if f == "" {
			continue // strtok skips empty fields
		}
		n++
		i := slices.IndexFunc(schedFlagNames, func(e schedFlagName) bool { return e.name == f })
		if i < 0 {
			return 0, argErrorf("invalid scheduler flag `%s'", f)
		}
		e := schedFlagNames[i]
		if e.sched != "" && e.sched != schedName {
			return 0, argErrorf("incompatible scheduler flag `%s'", f)
		}
		flags |= e.flag
	}
	if n == 0 {
		// ipvsadm crashes on "-b ,"; say what is wrong instead.
		return 0, argErrorf("invalid scheduler flag `%s'", arg)
	}
	return flags, nil
}

// SchedFlagsString is how ipvsadm prints a service's scheduler flags: the
// sh-/mh- names for sh and mh, flag-N otherwise, comma separated.
//
// ipvsadm prints nothing for flag-3 on sh and mh services (and then saves an
// unloadable "-b "); it is printed as flag-3 here so -S output reloads.
func SchedFlagsString(schedName string, f sched.Flags) string {
	var out []string
	switch schedName {
	case "sh", "mh":
		if f&sched.Flag1 != 0 {
			out = append(out, schedName+"-fallback")
		}
		if f&sched.Flag2 != 0 {
			out = append(out, schedName+"-port")
		}
	default:
		if f&sched.Flag1 != 0 {
			out = append(out, "flag-1")
		}
		if f&sched.Flag2 != 0 {
			out = append(out, "flag-2")
		}
	}
	if f&sched.Flag3 != 0 {
		out = append(out, "flag-3")
	}
	return strings.Join(out, ",")
}
