package sched

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// DefaultName is the scheduler ipvsadm uses when -s is not given (DEF_SCHED).
const DefaultName = "wlc"

// Flag names as ipvsadm spells them (-b and the listing).
const (
	FlagNameSHFallback = "sh-fallback"
	FlagNameSHPort     = "sh-port"
	FlagNameMHFallback = "mh-fallback"
	FlagNameMHPort     = "mh-port"
	FlagName1          = "flag-1"
	FlagName2          = "flag-2"
	FlagName3          = "flag-3"
)

// Scheduler-specific meanings of Flag1/Flag2 (IP_VS_SVC_F_SCHED_SH_*,
// IP_VS_SVC_F_SCHED_MH_*).
const (
	FlagSHFallback = Flag1
	FlagSHPort     = Flag2
	FlagMHFallback = Flag1
	FlagMHPort     = Flag2
)

// FlagMask is every bit a scheduler flag may use (SCHED1|SCHED2|SCHED3).
const FlagMask = Flag1 | Flag2 | Flag3

var (
	// ErrUnknownScheduler is returned for a name no scheduler has.
	ErrUnknownScheduler = errors.New("unknown scheduler")
	// ErrInvalidFlag is returned for a flag name or bit that does not exist.
	ErrInvalidFlag = errors.New("invalid scheduler flag")
	// ErrIncompatibleFlag is returned for an sh-*/mh-* flag given to another
	// scheduler (ipvsadm: "incompatible scheduler flag").
	ErrIncompatibleFlag = errors.New("incompatible scheduler flag")
)

// schedulerNames lists the schedulers in the kernel's Kconfig order.
const schedulerNames = "rr wrr lc wlc fo ovf lblc lblcr dh sh mh sed nq twos"

// Names returns every scheduler name, in the kernel's Kconfig order.
func Names() []string { return strings.Fields(schedulerNames) }

// Rand is the random source twos draws from; *math/rand/v2.Rand satisfies
// it. Uint32N returns a uniform value in [0, n), like get_random_u32_below.
type Rand interface {
	Uint32N(n uint32) uint32
}

// runtimeRand draws from math/rand/v2's runtime-seeded source, which is safe
// for concurrent use and keeps no state in this package.
type runtimeRand struct{}

func (runtimeRand) Uint32N(n uint32) uint32 { return rand.Uint32N(n) }

type options struct {
	rand       Rand
	expiration time.Duration
}

// Option configures a scheduler built by New.
type Option func(*options)

// WithRand sets the random source of twos (other schedulers ignore it), so
// tests can make its choices deterministic.
func WithRand(r Rand) Option {
	return func(o *options) { o.rand = r }
}

// WithExpiration sets lblc_expiration / lblcr_expiration (default 24 h):
// how long an unused lblc/lblcr cache entry lives, and how long an lblcr set
// stays unmodified before its most loaded member is dropped. Other
// schedulers ignore it.
func WithExpiration(d time.Duration) Option {
	return func(o *options) { o.expiration = d }
}

// New returns a fresh scheduler called name (ipvsadm -s; "" means wlc) for a
// service with the given scheduler flags. The scheduler has no destinations
// until its Update is called.
func New(name string, flags Flags, opts ...Option) (Scheduler, error) {
	if name == "" {
		name = DefaultName
	}
	if flags&^FlagMask != 0 {
		return nil, fmt.Errorf("scheduler %s: flags %#x: %w", name, uint32(flags&^FlagMask), ErrInvalidFlag)
	}
	o := options{rand: runtimeRand{}, expiration: defaultExpiration}
	for _, opt := range opts {
		opt(&o)
	}
	if o.rand == nil {
		return nil, fmt.Errorf("scheduler %s: nil random source", name)
	}
	if o.expiration <= 0 {
		return nil, fmt.Errorf("scheduler %s: expiration %v must be positive", name, o.expiration)
	}
	b := base{name: name, flags: flags}
	switch name {
	case "rr":
		return &roundRobin{base: b, pos: -1}, nil
	case "wrr":
		s := &weightedRoundRobin{base: b}
		s.Update(nil)
		return s, nil
	case "lc":
		return &leastConn{stateless{b}}, nil
	case "wlc":
		return &weightedLeastConn{stateless{b}}, nil
	case "sed":
		return &shortestExpectedDelay{stateless{b}}, nil
	case "nq":
		return &neverQueue{stateless{b}}, nil
	case "fo":
		return &failover{stateless{b}}, nil
	case "ovf":
		return &overflow{stateless{b}}, nil
	case "twos":
		return &twoChoices{stateless: stateless{b}, rand: o.rand}, nil
	case "sh":
		return &sourceHash{base: b}, nil
	case "dh":
		return &destHash{base: b}, nil
	case "mh":
		return newMaglev(b), nil
	case "lblc":
		return &lblc{base: b, cache: newCacheTable[*Dest](int64(o.expiration))}, nil
	case "lblcr":
		return &lblcr{base: b, cache: newCacheTable[destSet](int64(o.expiration))}, nil
	}
	return nil, fmt.Errorf("scheduler %q: %w", name, ErrUnknownScheduler)
}

// ParseFlags parses ipvsadm's -b argument ("sh-fallback,sh-port") for the
// scheduler sched ("" means wlc), with ipvsadm's rules: flag-1..3 go with any
// scheduler, sh-* only with sh, mh-* only with mh.
func ParseFlags(sched, list string) (Flags, error) {
	if sched == "" {
		sched = DefaultName
	}
	var f Flags
	seen := false
	// strtok semantics: empty items between commas are skipped.
	for item := range strings.SplitSeq(list, ",") {
		if item == "" {
			continue
		}
		seen = true
		switch item {
		case FlagName1:
			f |= Flag1
		case FlagName2:
			f |= Flag2
		case FlagName3:
			f |= Flag3
		case FlagNameSHFallback, FlagNameSHPort:
			if sched != "sh" {
				return 0, fmt.Errorf("scheduler %s: `%s': %w", sched, item, ErrIncompatibleFlag)
			}
			if item == FlagNameSHFallback {
				f |= FlagSHFallback
			} else {
				f |= FlagSHPort
			}
		case FlagNameMHFallback, FlagNameMHPort:
			if sched != "mh" {
				return 0, fmt.Errorf("scheduler %s: `%s': %w", sched, item, ErrIncompatibleFlag)
			}
			if item == FlagNameMHFallback {
				f |= FlagMHFallback
			} else {
				f |= FlagMHPort
			}
		default:
			return 0, fmt.Errorf("scheduler %s: `%s': %w", sched, item, ErrInvalidFlag)
		}
	}
	if !seen {
		return 0, fmt.Errorf("scheduler %s: empty flag list: %w", sched, ErrInvalidFlag)
	}
	return f, nil
}

// FlagNames renders flags as ipvsadm's print_sched_flags does: sh and mh
// name their own two flags, every other scheduler prints flag-N; items are
// comma-separated in bit order. The listing wraps it in parentheses, -S
// writes it after -b. Empty when no flag is set.
func FlagNames(sched string, f Flags) string {
	var parts [3]string
	n := 0
	add := func(s string) { parts[n] = s; n++ }
	switch sched {
	case "sh":
		if f&FlagSHFallback != 0 {
			add(FlagNameSHFallback)
		}
		if f&FlagSHPort != 0 {
			add(FlagNameSHPort)
		}
	case "mh":
		if f&FlagMHFallback != 0 {
			add(FlagNameMHFallback)
		}
		if f&FlagMHPort != 0 {
			add(FlagNameMHPort)
		}
	default:
		if f&Flag1 != 0 {
			add(FlagName1)
		}
		if f&Flag2 != 0 {
			add(FlagName2)
		}
	}
	if f&Flag3 != 0 {
		add(FlagName3)
	}
	return strings.Join(parts[:n], ",")
}

// base holds what every scheduler has: its name, the service's scheduler
// flags and its own copy of the destination list (kernel order), so a caller
// reusing its slice cannot change the list behind the scheduler's back.
type base struct {
	name  string
	flags Flags
	dests []*Dest
}

func (b *base) Name() string { return b.name }

// Flags returns the service's scheduler flags.
func (b *base) Flags() Flags { return b.flags }

// SetFlags changes the service's scheduler flags in place, as ipvsadm -E -b
// does: the kernel reads svc->flags at every decision, so no state is reset.
func (b *base) SetFlags(f Flags) error {
	if f&^FlagMask != 0 {
		return fmt.Errorf("scheduler %s: flags %#x: %w", b.name, uint32(f&^FlagMask), ErrInvalidFlag)
	}
	b.flags = f
	return nil
}

func (b *base) setDests(dests []*Dest) {
	clear(b.dests) // drop references to removed destinations
	b.dests = append(b.dests[:0], dests...)
}
