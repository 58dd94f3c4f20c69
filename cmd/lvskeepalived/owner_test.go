package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"lvslab/config"
	"lvslab/internal/testenv"
	"lvslab/ipvs/ctl"
)

// fakeLVSD serves the control protocol on a socket of its own, answering
// each request after delay (or never, when wedged) and recording them.
type fakeLVSD struct {
	mu   sync.Mutex
	reqs []string
}

func (f *fakeLVSD) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func startFakeLVSD(t *testing.T, delay time.Duration, wedged bool) (string, *fakeLVSD) {
	t.Helper()
	testenv.Root(t) // the control socket answers administrators only
	name := fmt.Sprintf("lvsk-owner-test-%d-%s", os.Getpid(), t.Name())
	ln, err := ctl.Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeLVSD{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ctl.Serve(ctx, ln, ctl.HandlerFunc(func(ctx context.Context, _ ctl.Peer, req ctl.Request) ctl.Reply {
			if wedged {
				<-ctx.Done()
				return ctl.Reply{}
			}
			time.Sleep(delay)
			op := string(req.Command.Op)
			if req.Own != nil {
				op = fmt.Sprintf("%s %s %v garp=%d", op, req.Own.Instance, req.Own.VIPs, req.Own.GARP)
			}
			f.mu.Lock()
			f.reqs = append(f.reqs, op)
			f.mu.Unlock()
			return ctl.Reply{}
		}))
	}()
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	return name, f
}

// TestOwnerNeverHoldsTheVRRPLoop: the VRRP event loop's ownership calls
// return at once however slow lvsd is, and lvsd hears them in order.
// Before, each call waited for lvsd's answer (up to 500 ms, twice), and on
// a loaded machine a MASTER's next advert came too late for a v3 peer.
func TestOwnerNeverHoldsTheVRRPLoop(t *testing.T) {
	socket, f := startFakeLVSD(t, 100*time.Millisecond, false)
	changed := make(chan struct{}, 1)
	o := &lvsdOwner{socket: socket, logf: t.Logf, notify: changed}
	defer o.close()
	vip := netip.MustParsePrefix("192.0.2.100/24")
	start := time.Now()
	_ = o.OwnVIPs("VI_1", []netip.Prefix{vip}, true)
	_ = o.GARP("VI_1", []netip.Addr{vip.Addr()}, 5)
	_ = o.Report([]ctl.VRRPStatus{{Instance: "VI_1", VRID: 51, State: "MASTER"}})
	_ = o.Report([]ctl.VRRPStatus{{Instance: "VI_1", VRID: 51, State: "BACKUP"}})
	_ = o.OwnVIPs("VI_1", []netip.Prefix{vip}, false)
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("five calls took %v against an lvsd answering in 100 ms: the caller waited", d)
	}
	if !o.flush(5 * time.Second) {
		t.Fatalf("not all sent in 5 s: %q", f.ops())
	}
	want := []string{
		string(config.OpOwn) + " VI_1 [192.0.2.100] garp=0",
		string(config.OpOwn) + " VI_1 [192.0.2.100] garp=5",
		string(config.OpVRRPReport),
		string(config.OpRelease) + " VI_1 [192.0.2.100] garp=0",
	}
	// The second report replaced the first while it waited; where it
	// stands depends on when the sender took the queue.
	got := f.ops()
	if !slices.Equal(got, want) && !slices.Equal(got, []string{want[0], want[1], want[2], want[2], want[3]}) {
		t.Errorf("lvsd heard %q, want %q", got, want)
	}
	select {
	case <-changed:
	default:
		t.Error("no change signalled after lvsd accepted an ownership change")
	}
}

// TestOwnerWedgedLVSD: an lvsd that never answers holds up nothing but
// the queue; flush gives up at its deadline and close returns.
func TestOwnerWedgedLVSD(t *testing.T) {
	socket, _ := startFakeLVSD(t, 0, true)
	o := &lvsdOwner{socket: socket, logf: t.Logf}
	vip := netip.MustParsePrefix("192.0.2.100/24")
	start := time.Now()
	for range 10 {
		_ = o.OwnVIPs("VI_1", []netip.Prefix{vip}, true)
		_ = o.Resend()
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("calls against a wedged lvsd took %v", d)
	}
	if o.flush(300 * time.Millisecond) {
		t.Error("flush reported everything sent to an lvsd that answers nothing")
	}
	o.mu.Lock()
	n := len(o.queue)
	o.mu.Unlock()
	if n > 10 {
		t.Errorf("%d requests queued: the resends grew the queue", n)
	}
	closed := make(chan struct{})
	go func() { o.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return within 5 s")
	}
}
