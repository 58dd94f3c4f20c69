package capture

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offload features are read and set with the ethtool ioctl (SIOCETHTOOL),
// by the kernel's feature names — the names `ethtool -k` prints indented,
// e.g. rx-gro, rx-lro, tx-tcp-segmentation, tx-generic-segmentation.

// Feature is one netdev feature of an interface.
type Feature struct {
	Name string
	// Changeable is set for features the user may toggle; ethtool -k
	// prints "[fixed]" after the others.
	Changeable bool
	// Requested is what was asked for; Active is what is in effect (a
	// feature can be requested but held off by another one).
	Requested, Active bool
}

// Features is an interface's feature set.
type Features struct {
	Ifname string
	List   []Feature
}

// Get returns the feature called name.
func (fs Features) Get(name string) (Feature, bool) {
	for _, f := range fs.List {
		if f.Name == name {
			return f, true
		}
	}
	return Feature{}, false
}

// AggregationFeatures are the receive aggregations that hand a forwarder
// frames larger than the MTU: GRO, hardware GRO, LRO, and GRO's variants.
func AggregationFeatures() []string {
	return []string{"rx-gro", "rx-gro-hw", "rx-lro", "rx-gro-list", "rx-udp-gro-forwarding"}
}

// SegmentationFeatures are the transmit offloads that make the sending
// stack emit GSO super-frames (what `ethtool -K IF tso off gso off` turns
// off).
func SegmentationFeatures() []string {
	return []string{
		"tx-tcp-segmentation", "tx-tcp-ecn-segmentation", "tx-tcp-mangleid-segmentation",
		"tx-tcp6-segmentation", "tx-tcp-accecn-segmentation", "tx-udp-segmentation",
		"tx-generic-segmentation",
	}
}

// FeatureChange is one feature whose active state a SetFeatures changed,
// directly or as a consequence (turning off checksumming turns off TSO).
type FeatureChange struct {
	Name     string
	Was, Now bool
}

// OffloadChanges is what SetFeatures did to an interface, and what Restore
// needs to undo it.
type OffloadChanges struct {
	Ifname  string
	Changes []FeatureChange
	// requested holds the requested state, before the change, of every
	// feature SetFeatures asked to change.
	requested map[string]bool
}

// Empty reports whether nothing changed.
func (c OffloadChanges) Empty() bool { return len(c.Changes) == 0 }

// String says what changed, e.g. "veth0: rx-gro on→off".
func (c OffloadChanges) String() string {
	if len(c.Changes) == 0 {
		return c.Ifname + ": no offload changed"
	}
	var b strings.Builder
	b.WriteString(c.Ifname)
	b.WriteString(":")
	for i, ch := range c.Changes {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %s→%s", ch.Name, onOff(ch.Was), onOff(ch.Now))
	}
	return b.String()
}

func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}

// ReadFeatures returns the features of the interface called ifname in the
// network namespace of the calling thread.
func ReadFeatures(ifname string) (Features, error) {
	e, err := openEthtool(ifname)
	if err != nil {
		return Features{}, err
	}
	defer e.close()
	return e.features()
}

// SetFeatures requests each named feature on (true) or off (false) and
// returns the changes in effect afterwards, side effects included. Names
// the interface does not have are ignored (the set differs between kernels
// and drivers); a feature that cannot reach the wanted state (fixed, or
// held by another) is an error, after the others were applied.
func SetFeatures(ifname string, want map[string]bool) (OffloadChanges, error) {
	e, err := openEthtool(ifname)
	if err != nil {
		return OffloadChanges{Ifname: ifname}, err
	}
	defer e.close()
	return e.set(want)
}

// DisableAggregation turns off GRO, LRO and their kin on ifname: what the
// seeds' manual does to a director's interfaces, and what lvsd does at
// start. Keep the result to say what changed and to Restore it on exit.
func DisableAggregation(ifname string) (OffloadChanges, error) {
	return SetFeatures(ifname, featuresOff(AggregationFeatures()))
}

// DisableSegmentation turns off TSO and GSO on ifname, so a local sender
// hands the link MTU-sized frames.
func DisableSegmentation(ifname string) (OffloadChanges, error) {
	return SetFeatures(ifname, featuresOff(SegmentationFeatures()))
}

func featuresOff(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = false
	}
	return m
}

// Restore requests the changed features back as they were requested before
// and returns what that changed.
func (c OffloadChanges) Restore() (OffloadChanges, error) {
	if len(c.requested) == 0 {
		return OffloadChanges{Ifname: c.Ifname}, nil
	}
	return SetFeatures(c.Ifname, c.requested)
}

// ethtool ioctl numbers and sizes (linux/ethtool.h).
const (
	ethSSFeatures = 4 // ETH_SS_FEATURES
	ethGStringLen = 32
)

type ethtool struct {
	fd     int
	ifname string
	names  []string
}

// ifreqData is struct ifreq with ifr_data: the name, then a pointer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

func openEthtool(ifname string) (*ethtool, error) {
	if len(ifname) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("capture: interface name %q too long", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("capture: ethtool socket: %w", err)
	}
	e := &ethtool{fd: fd, ifname: ifname}
	if err := e.loadNames(); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *ethtool) close() { unix.Close(e.fd) }

// ioctl runs one SIOCETHTOOL command; buf starts with the command word.
func (e *ethtool) ioctl(buf []byte) (uintptr, error) {
	var ifr ifreqData
	copy(ifr.name[:], e.ifname)
	ifr.data = unsafe.Pointer(&buf[0])
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(e.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

func (e *ethtool) loadNames() error {
	// struct ethtool_sset_info: cmd, reserved, sset_mask (u64), data[].
	info := make([]byte, 16+4)
	ne.PutUint32(info[0:], unix.ETHTOOL_GSSET_INFO)
	ne.PutUint64(info[8:], 1<<ethSSFeatures)
	if _, err := e.ioctl(info); err != nil {
		return fmt.Errorf("capture: %s: ETHTOOL_GSSET_INFO: %w", e.ifname, err)
	}
	if ne.Uint64(info[8:])&(1<<ethSSFeatures) == 0 {
		return fmt.Errorf("capture: %s: the driver reports no feature names", e.ifname)
	}
	count := int(ne.Uint32(info[16:]))
	// struct ethtool_gstrings: cmd, string_set, len, data[len*32].
	strs := make([]byte, 12+count*ethGStringLen)
	ne.PutUint32(strs[0:], unix.ETHTOOL_GSTRINGS)
	ne.PutUint32(strs[4:], ethSSFeatures)
	ne.PutUint32(strs[8:], uint32(count))
	if _, err := e.ioctl(strs); err != nil {
		return fmt.Errorf("capture: %s: ETHTOOL_GSTRINGS: %w", e.ifname, err)
	}
	e.names = make([]string, count)
	for i := range count {
		s := strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		if j := strings.IndexByte(string(s), 0); j >= 0 {
			s = s[:j]
		}
		e.names[i] = string(s)
	}
	return nil
}

func (e *ethtool) blocks() int { return (len(e.names) + 31) / 32 }

func (e *ethtool) features() (Features, error) {
	// struct ethtool_gfeatures: cmd, size, then per block of 32 features
	// available, requested, active, never_changed.
	nb := e.blocks()
	buf := make([]byte, 8+nb*16)
	ne.PutUint32(buf[0:], unix.ETHTOOL_GFEATURES)
	ne.PutUint32(buf[4:], uint32(nb))
	if _, err := e.ioctl(buf); err != nil {
		return Features{}, fmt.Errorf("capture: %s: ETHTOOL_GFEATURES: %w", e.ifname, err)
	}
	fs := Features{Ifname: e.ifname, List: make([]Feature, 0, len(e.names))}
	for i, name := range e.names {
		if name == "" {
			continue
		}
		blk := buf[8+(i/32)*16:]
		bit := uint32(1) << (i % 32)
		fs.List = append(fs.List, Feature{
			Name:       name,
			Changeable: ne.Uint32(blk[0:])&bit != 0 && ne.Uint32(blk[12:])&bit == 0,
			Requested:  ne.Uint32(blk[4:])&bit != 0,
			Active:     ne.Uint32(blk[8:])&bit != 0,
		})
	}
	return fs, nil
}

func (e *ethtool) set(want map[string]bool) (OffloadChanges, error) {
	res := OffloadChanges{Ifname: e.ifname, requested: map[string]bool{}}
	before, err := e.features()
	if err != nil {
		return res, err
	}
	// struct ethtool_sfeatures: cmd, size, then per block valid, requested.
	nb := e.blocks()
	buf := make([]byte, 8+nb*8)
	ne.PutUint32(buf[0:], unix.ETHTOOL_SFEATURES)
	ne.PutUint32(buf[4:], uint32(nb))
	var problems []error
	changing := false
	for i, name := range e.names {
		on, ok := want[name]
		if !ok {
			continue
		}
		f, _ := before.Get(name)
		if f.Requested == on && f.Active == on {
			continue
		}
		if !f.Changeable {
			problems = append(problems, fmt.Errorf("%s is fixed %s", name, onOff(f.Active)))
			continue
		}
		blk := buf[8+(i/32)*8:]
		bit := uint32(1) << (i % 32)
		ne.PutUint32(blk[0:], ne.Uint32(blk[0:])|bit)
		if on {
			ne.PutUint32(blk[4:], ne.Uint32(blk[4:])|bit)
		}
		res.requested[name] = f.Requested
		changing = true
	}
	if changing {
		// A positive result (ETHTOOL_F_WISH and friends) means not
		// everything took effect; the comparison below says what.
		if _, err := e.ioctl(buf); err != nil {
			return res, fmt.Errorf("capture: %s: ETHTOOL_SFEATURES: %w", e.ifname, err)
		}
	}
	after, err := e.features()
	if err != nil {
		return res, err
	}
	for i, f := range after.List {
		if was := before.List[i]; was.Active != f.Active {
			res.Changes = append(res.Changes, FeatureChange{Name: f.Name, Was: was.Active, Now: f.Active})
		}
		if _, tried := res.requested[f.Name]; !tried {
			continue
		}
		// The request must stick; and what we turn off must be off. A
		// feature turned on may stay off, held by another: the kernel's
		// call, visible in Changes.
		if on := want[f.Name]; f.Requested != on || !on && f.Active {
			problems = append(problems, fmt.Errorf("%s requested %s, is %s", f.Name, onOff(on), onOff(f.Active)))
		}
	}
	if len(problems) > 0 {
		return res, fmt.Errorf("capture: %s: offloads: %w", e.ifname, errors.Join(problems...))
	}
	return res, nil
}
