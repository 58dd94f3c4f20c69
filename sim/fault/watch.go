package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"lvslab/sim/spec"
	"lvslab/sim/topo"
)

// labWatcher waits for log and state triggers by polling: a process's
// output file (topo writes <run dir>/nodes/<node>/<process>.log) and
// netlink or a command for states. Polling keeps it simple and cheap: a
// stat and a short read, or a netlink dump, every interval.
type labWatcher struct {
	lab      *topo.Lab
	interval time.Duration

	mu      sync.Mutex
	offsets map[*spec.LogMatch]int64 // where each log trigger starts reading
}

func newLabWatcher(lab *topo.Lab, interval time.Duration) *labWatcher {
	return &labWatcher{lab: lab, interval: interval, offsets: map[*spec.LogMatch]int64{}}
}

// arm notes the current end of every log a trigger reads: only lines
// written after the timeline starts count (a startup message of the build
// must not fire an entry).
func (w *labWatcher) arm(timeline []spec.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range timeline {
		t := timeline[i].When
		if t == nil || t.Log == nil {
			continue
		}
		path, err := w.logPath(t.Log.Process)
		if err != nil {
			return fmt.Errorf("timeline %s: %w", timeline[i].Name, err)
		}
		w.offsets[t.Log] = logEnd(path)
	}
	return nil
}

// rearm moves a log trigger's start to the log's current end.
func (w *labWatcher) rearm(t *spec.Trigger) error {
	if t.Log == nil {
		return nil
	}
	path, err := w.logPath(t.Log.Process)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.offsets[t.Log] = logEnd(path)
	w.mu.Unlock()
	return nil
}

// logEnd is where a log trigger starts reading: the file's current end (0
// while the process has written nothing).
func logEnd(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return 0
}

func (w *labWatcher) logPath(ref string) (string, error) {
	node, name, ok := spec.SplitProcessRef(ref)
	if !ok {
		return "", fmt.Errorf("%q is not node/process", ref)
	}
	p := w.lab.Process(node, name)
	if p == nil {
		return "", fmt.Errorf("no process %s in the lab", ref)
	}
	return p.Status().Log, nil
}

func (w *labWatcher) wait(ctx context.Context, t *spec.Trigger) error {
	switch {
	case t.Log != nil:
		path, err := w.logPath(t.Log.Process)
		if err != nil {
			return err
		}
		w.mu.Lock()
		off := w.offsets[t.Log]
		w.mu.Unlock()
		return waitLog(ctx, path, off, t.Log.Match, w.interval)
	case t.State != nil:
		interval := w.interval
		if t.State.Command != nil {
			// A command costs a process: poll it less often.
			interval = max(interval, 500*time.Millisecond)
		}
		for {
			ok, err := checkState(ctx, w.lab, t.State)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
			select {
			case <-time.After(interval):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return errors.New("not a log or state trigger")
}

// waitLog reads path from off on, line by line, until a line matches. A
// file that does not exist yet (the process starts later) or shrinks (it
// was replaced) is read from the start. topo's own "# lvslab" header lines
// are not the process's output and never match.
func waitLog(ctx context.Context, path string, off int64, re spec.Regexp, interval time.Duration) error {
	var partial []byte
	buf := make([]byte, 64<<10)
	for {
		f, err := os.Open(path)
		if err == nil {
			if fi, serr := f.Stat(); serr == nil && fi.Size() < off {
				off, partial = 0, nil
			}
			for {
				n, rerr := f.ReadAt(buf, off)
				off += int64(n)
				data := append(partial, buf[:n]...)
				for {
					i := bytes.IndexByte(data, '\n')
					if i < 0 {
						break
					}
					line := data[:i]
					data = data[i+1:]
					if !bytes.HasPrefix(line, []byte("# lvslab ")) && re.Match(line) {
						f.Close()
						return nil
					}
				}
				if len(data) > 64<<10 {
					// A line this long is judged as it is, so memory
					// stays bounded.
					if re.Match(data) {
						f.Close()
						return nil
					}
					data = nil
				}
				partial = append(partial[:0:0], data...)
				if rerr != nil || n < len(buf) {
					if rerr != nil && !errors.Is(rerr, io.EOF) {
						f.Close()
						return fmt.Errorf("read %s: %w", path, rerr)
					}
					break
				}
			}
			f.Close()
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
