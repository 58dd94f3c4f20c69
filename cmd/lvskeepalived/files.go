package main

// FILE_CHECK: a real server's checker that is a number in a file
// (keepalived 2.2.7's check/check_file.c and trackers/track_file.c). The
// file's value v times the checker's weight w (−w with reverse) is added
// to the real server's weight; with w 0, a non-zero v (zero with
// reverse) takes the checker down. A missing or empty file reads 0.
// keepalived watches the files with inotify; here they are read every
// fileEvery, which costs a read of a few bytes per track_file.

import (
	"context"
	"fmt"
	"math"
	"os"
	"time"

	"lvslab/config/keepalived"
	"lvslab/internal/trackfile"
)

// fileEvery is how often the tracked files are read.
const fileEvery = 100 * time.Millisecond

// trackFiles is the daemon goroutine's view of the track_files: the value
// each was last read at (keepalived's last_status).
type trackFiles struct {
	vals map[string]int64
	logf func(format string, args ...any)
}

type fileEvent struct {
	gen   int
	name  string
	value int64
}

// fileStatus is what value v means to a FILE_CHECK: down, or the weight
// it adds (keepalived's update_track_file_status).
func fileStatus(v int64, f *keepalived.FileCheck) (down bool, add int) {
	if f.Weight == 0 {
		return (v != 0) != f.Reverse, 0
	}
	mult := int64(1)
	if f.Reverse {
		mult = -1
	}
	s := v * int64(f.Weight) * mult
	if v != 0 && s/v != int64(f.Weight)*mult {
		// Overflowed int64: past the clamp either way.
		if (v > 0) == (int64(f.Weight)*mult > 0) {
			s = math.MaxInt64
		} else {
			s = math.MinInt64
		}
	}
	s = min(max(s, math.MinInt32), math.MaxInt32)
	if s == math.MinInt32 { // IPVS_WEIGHT_FAULT
		return true, 0
	}
	return false, int(s)
}

// value is the track_file's current value, read now if not known yet.
func (t *trackFiles) value(tf *keepalived.TrackFile) int64 {
	if t.vals == nil {
		t.vals = map[string]int64{}
	}
	if v, ok := t.vals[tf.Name]; ok {
		return v
	}
	v, ok := trackfile.Read(tf.File)
	if !ok {
		t.logf("Invalid number %d read from %s - ignoring", v, tf.File)
		v = 0
	}
	t.vals[tf.Name] = v
	return v
}

// initial is a FILE_CHECK's state at start: keepalived applies only a
// non-zero value (set_track_file_checkers_down, set_track_file_weights).
func (t *trackFiles) initial(f *keepalived.FileCheck) (down bool, add int) {
	v := t.value(f.Track)
	if v == 0 {
		return false, 0
	}
	return fileStatus(v, f)
}

// initFiles writes init_file's value (keepalived's track_file_end_handler):
// into a file that does not exist, or with overwrite into any regular
// file, but never over an existing one at a reload.
func (t *trackFiles) initFiles(tfs []*keepalived.TrackFile, reload bool) {
	for _, tf := range tfs {
		if !tf.Init {
			continue
		}
		if st, err := os.Stat(tf.File); err == nil {
			if !tf.InitOverwrite {
				continue
			}
			if !st.Mode().IsRegular() {
				t.logf("Cannot initialise track file %s - it is not a regular file", tf.Name)
				continue
			}
			if reload {
				continue
			}
		}
		if err := os.WriteFile(tf.File, []byte(fmt.Sprintf("%d\n", tf.InitValue)), 0o644); err != nil {
			t.logf("Unable to initialise track file %s", tf.Name)
		}
	}
}

// watchFiles reads the track_files every fileEvery and sends each change
// of value, until ctx ends.
func watchFiles(ctx context.Context, gen int, tfs []*keepalived.TrackFile, last map[string]int64, out chan<- fileEvent, logf func(string, ...any)) {
	t := time.NewTicker(fileEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, tf := range tfs {
			v, ok := trackfile.Read(tf.File)
			if !ok {
				if last[tf.Name] != v {
					logf("Invalid number %d read from %s - ignoring", v, tf.File)
				}
				continue
			}
			if v == last[tf.Name] {
				continue
			}
			last[tf.Name] = v
			select {
			case out <- fileEvent{gen, tf.Name, v}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// fileChanged applies a track_file's new value to every FILE_CHECK on it
// (keepalived's process_update_checker_track_file_status).
func (d *daemon) fileChanged(name string, v int64) {
	if old, ok := d.files.vals[name]; ok && old == v {
		return
	}
	d.files.vals[name] = v
	for _, vs := range d.vss {
		for _, r := range vs.rss {
			changed := false
			for i, c := range r.rs.Checkers {
				if c.Kind != keepalived.CheckFile || c.File.Track.Name != name {
					continue
				}
				down, add := fileStatus(v, c.File)
				switch {
				case down && !r.failed[i]:
					if d.opts.logDetail {
						d.log.printf("(%s): tracked file %s now FAULT state", fmtRS(r.rs, vs.vs), name)
					}
					r.failed[i], r.fileW[i] = true, 0
					changed = true
				case !down && r.failed[i]:
					if d.opts.logDetail {
						d.log.printf("(%s): tracked file %s leaving FAULT state", fmtRS(r.rs, vs.vs), name)
					}
					r.failed[i], r.fileW[i] = false, add
					changed = true
				case !down && add != r.fileW[i]:
					d.setWeight(vs, r, func() { r.fileW[i] = add })
				}
			}
			if changed {
				d.settle(vs, r)
			}
		}
	}
}
