package keepalived

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzLoad: the reader never panics and never hangs, on any main file and
// any included file; include loops (a file including itself, or the other
// one including it back) are caught; every problem names a file and a
// line inside the files read; the result encodes as JSON.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/corpus/*.conf")
	more, _ := filepath.Glob("../../scenarios/keepalived/*.conf")
	for _, s := range append(seeds, more...) {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(string(b), "include main.conf\n")
		}
	}
	f.Add("include other.conf\n", "include main.conf\n")
	f.Add("include *.conf\nvirtual_server 1.2.3.4 80 {\n", "}\n}\n}\n")
	f.Add("$A=${A}${A}\n$B=$A$A\nx $B\n", "@^h include main.conf\n")
	f.Add("a\"{\"}{{{{{\n", "virtual_server group x {\nreal_server 1.1.1.1 {\nHTTP_GET {\nurl {\n")
	f.Fuzz(func(t *testing.T, main, other string) {
		if len(main) > 64<<10 || len(other) > 64<<10 {
			return // bounded inputs: the size limits have their own tests
		}
		fsys := MapFS{"/etc/keepalived/main.conf": main, "/etc/keepalived/other.conf": other}
		done := make(chan *Config, 1)
		go func() { done <- LoadOptions(fsys, "/etc/keepalived/main.conf", Options{ConfigID: "h"}) }()
		var cfg *Config
		select {
		case cfg = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Load did not return within 10 s")
		}
		lines := map[string]int{}
		for name, text := range fsys {
			lines[name] = strings.Count(text, "\n") + 1
		}
		for _, d := range cfg.Diags {
			if d.Pos.File == "" {
				t.Fatalf("problem without a file: %s", d)
			}
			if n, ok := lines[d.Pos.File]; ok && (d.Pos.Line < 0 || d.Pos.Line > n) {
				t.Fatalf("problem outside its file (%d lines): %s", n, d)
			}
		}
		if len(cfg.Files) > maxFiles {
			t.Fatalf("%d files read", len(cfg.Files))
		}
		if _, err := json.Marshal(cfg); err != nil {
			t.Fatalf("JSON: %v", err)
		}
		cfg.Table()
	})
}
