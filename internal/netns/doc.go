// Package netns is the module's one network-namespace toolkit, in the style
// of Cilium's pkg/netns: namespaces are held as handles, work that must run
// inside one is done on a locked OS thread that never leaks, and nothing is
// left behind. The lab (sim/topo, sim/fault, sim/capture), the test helpers
// (internal/nstest) and the daemons' sysctl writes (rs, cmd/lvsd) all go
// through it.
//
// Handles. An NS is an open nsfs descriptor plus a netlink handle bound to
// the namespace, so links, addresses, routes and qdiscs are configured from
// any thread without entering it. NewPinned creates a namespace pinned by a
// bind mount under a directory (/run/netns for iproute2's `ip netns exec`),
// with lo up; Open opens one by its pin; Close drops the descriptors (the
// namespace lives on while pinned or used); Delete closes and unpins, after
// which the kernel frees the namespace once no process and no descriptor
// holds it. Unpin removes a pin by path, for sweeping what a crashed run
// left.
//
// Threads. A Linux namespace belongs to an OS thread, not to a goroutine.
// Do runs its function on a fresh goroutine locked to its thread, switched
// into the namespace and back. The calling goroutine's thread never moves.
// If switching back fails the goroutine ends still locked, so the Go
// runtime terminates the thread instead of handing it to other goroutines
// in the wrong namespace: the error is returned, nothing panics. fn must not
// unlock the thread, change other per-thread state, or expect goroutines it
// starts to run in the namespace (they run on other threads). Sockets and
// AF_PACKET rings opened inside fn stay in the namespace after it returns,
// which is what Do is mostly for; so are sysctls and ethtool ioctls.
//
// Sysctls. Keys are dotted (net.ipv4.ip_forward) or, when an interface name
// has a dot, slashed (net/ipv4/conf/eth0.100/rp_filter); a key with an empty,
// "." or ".." element is refused. ReadSysctl and WriteSysctl act in the
// calling thread's namespace (inside Do, or a process started in the
// namespace, as lvsrs and lvsd are); the NS methods of the same names enter
// the namespace first.
//
// Netlink dumps. A dump that a concurrent change interrupts
// (NLM_F_DUMP_INTR, netlink.ErrDumpInterrupted) or a call interrupted by a
// signal (EINTR) is retried by Retry, as CNI's netlinksafe does.
package netns
