package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"lvslab/sim/runner"
	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// progress is a stage that keeps one status line up to date on a terminal
// while a scenario runs: elapsed time and, per traffic, requests answered
// and failed. It claims nothing and prints nothing when output is not a
// terminal (CI logs stay clean).
type progress struct {
	w     io.Writer
	tty   bool
	total time.Duration
	src   runner.RequestSource
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(w io.Writer, s *spec.Spec, src runner.RequestSource) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		tty = err == nil
	}
	return &progress{w: w, tty: tty, total: s.Duration.D(), src: src}
}

func (p *progress) Name() string               { return "progress" }
func (p *progress) Claims(*spec.Spec) []string { return nil }

func (p *progress) Start(_ context.Context, _ *topo.Lab, t0 time.Time) error {
	if !p.tty {
		return nil
	}
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(p.w, "\r\033[K%s", p.line(time.Since(t0)))
			}
		}
	}()
	return nil
}

func (p *progress) line(elapsed time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "   [%4.1fs/%s]", elapsed.Seconds(), p.total)
	for _, name := range p.src.Traffic() {
		ok, bad := 0, 0
		for _, r := range p.src.Requests(name) {
			if r.Err == "" {
				ok++
			} else {
				bad++
			}
		}
		fmt.Fprintf(&b, "  %s %d ok", name, ok)
		if bad > 0 {
			fmt.Fprintf(&b, " %d failed", bad)
		}
	}
	return b.String()
}

func (p *progress) Stop(context.Context) error {
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
		p.stop = nil
	}
	return nil
}
