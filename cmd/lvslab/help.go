package main

import (
	"fmt"
	"io"
	"strings"
)

// wantsHelp reports whether a subcommand's arguments ask for help: -h,
// -help or --help before any "--" (after it they belong to the command
// lvslab exec runs).
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// commandUsage is the part of the usage text about one subcommand: its
// line and the indented lines under it. "" for a command usage does not
// describe.
func commandUsage(cmd string) string {
	lines := strings.Split(usage, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if !strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "   ") || len(f) == 0 || f[0] != cmd {
			continue
		}
		out := []string{l}
		for _, m := range lines[i+1:] {
			if !strings.HasPrefix(m, "   ") || strings.TrimSpace(m) == "" {
				break
			}
			out = append(out, m)
		}
		return strings.Join(out, "\n") + "\n"
	}
	return ""
}

// printCommandHelp writes "usage: lvslab CMD ..." and the command's
// lines of the usage text.
func printCommandHelp(w io.Writer, cmd string) {
	u := commandUsage(cmd)
	if u == "" {
		fmt.Fprint(w, usage)
		return
	}
	synopsis := strings.TrimSpace(strings.SplitN(u, "\n", 2)[0])
	if i := strings.Index(synopsis, "  "); i >= 0 {
		synopsis = synopsis[:i] // the description follows after two spaces
	}
	fmt.Fprintf(w, "usage: lvslab [global flags] %s\n", synopsis)
	fmt.Fprint(w, u)
}
