package keepalived

import "testing"

// TestTrackFile: the track_file block and FILE_CHECK as keepalived 2.2.7
// reads them: weight 1 by default, a FILE_CHECK without weight takes the
// track_file's (and its reverse), init_file with and without overwrite; a
// track_file used before it is defined is not found.
func TestTrackFile(t *testing.T) {
	cfg := loadMap(t, MapFS{"/k/keepalived.conf": `
track_file a {
  file /run/a
}
track_file b {
  file "/run/b"
  weight -7 reverse
  init_file 3 overwrite
}
virtual_server 192.0.2.1 80 {
  protocol TCP
  real_server 192.0.2.2 80 {
    FILE_CHECK {
      track_file b
    }
    FILE_CHECK {
      track_file a
      weight 4 noreverse
    }
    FILE_CHECK {
      track_file later
    }
  }
}
track_file later {
  file /run/later
  init_file
}
`})
	if len(cfg.TrackFiles) != 3 {
		t.Fatalf("%d track_files", len(cfg.TrackFiles))
	}
	a, b, later := cfg.TrackFiles[0], cfg.TrackFiles[1], cfg.TrackFiles[2]
	if a.Weight != 1 || a.Reverse || a.Init || a.File != "/run/a" {
		t.Errorf("a: %+v", a)
	}
	if b.Weight != -7 || !b.Reverse || !b.Init || b.InitValue != 3 || !b.InitOverwrite || b.File != "/run/b" {
		t.Errorf("b: %+v", b)
	}
	if !later.Init || later.InitValue != 0 || later.InitOverwrite {
		t.Errorf("later: %+v", later)
	}
	cs := cfg.VirtualServers[0].RealServers[0].Checkers
	if len(cs) != 2 {
		t.Fatalf("%d checkers, want 2 (the one naming an undefined track_file dropped)", len(cs))
	}
	if f := cs[0].File; f.Track != b || f.Weight != -7 || !f.Reverse {
		t.Errorf("FILE_CHECK on b: %+v", f)
	}
	if f := cs[1].File; f.Track != a || f.Weight != 4 || f.Reverse {
		t.Errorf("FILE_CHECK on a: %+v", f)
	}
	want := map[string]bool{"track_file later not found": false, "FILE_CHECK has no track_file specified - ignoring": false}
	for _, d := range cfg.Diags {
		if _, ok := want[d.Msg]; ok {
			want[d.Msg] = true
		}
	}
	for m, seen := range want {
		if !seen {
			t.Errorf("no diagnostic %q in %v", m, cfg.Diags)
		}
	}
}

// TestTrackFileInstance: a vrrp_instance's track_file block (keepalived's
// vrrp_alloc_track_file): the weight defaults to the track_file's, an
// unknown name, a duplicate and bad options are errors and skipped.
func TestTrackFileInstance(t *testing.T) {
	cfg := loadMap(t, MapFS{"/k/keepalived.conf": `
track_file a {
  file /run/a
  weight 3 reverse
}
track_file b {
  file /run/b
}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  track_file {
    a
    b weight -9 noreverse
    nosuch
    a weight 2
    b scale
  }
}
`})
	got := cfg.VRRP.Instances[0].TrackFiles
	if len(got) != 2 || got[0].Name != "a" || got[0].Weight != 3 || !got[0].Reverse || got[1].Name != "b" || got[1].Weight != -9 || got[1].Reverse {
		t.Errorf("track files: %+v", got)
	}
	want := map[string]bool{"(VI_1) track file nosuch not found, ignoring...": false, "(VI_1) duplicate track_file a - ignoring": false,
		"(VI_1) duplicate track_file b - ignoring": false}
	for _, d := range cfg.Diags {
		if _, ok := want[d.Msg]; ok {
			want[d.Msg] = true
		}
	}
	for m, seen := range want {
		if !seen {
			t.Errorf("no diagnostic %q in %v", m, cfg.Diags)
		}
	}
}
