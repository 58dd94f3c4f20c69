package config

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseArgs: the command-line parser never panics, whatever it gets; a
// command it accepts is one the configuration accepts, and survives the
// control socket's JSON encoding unchanged.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{
		"-A -t 207.175.44.110:80 -s wlc -p 360 -M 255.255.255.0",
		"-a -t 207.175.44.110:80 -r 192.168.10.1:80 -m -w 1",
		"-a -u 1.2.3.4:53 -r [2001:db8::5]:53 -i --tun-type gue --tun-port 6080 --tun-remcsum",
		"-Lnc", "-L -n --stats --exact", "--set 900 120 300", "-A -f 1 -6 -p -M 64",
		"–A –t 172.16.100.1:80 –s rr", "-At1.2.3.4:http -p600 -b flag-1",
		"-E -t [::1]:80 -s mh -b mh-port,mh-fallback -o", "-L --mcast-group ff02::1",
		"--set-defense drop_entry=1 secure_tcp=3 amemthresh=200", "-L --defense",
	} {
		f.Add(s)
	}
	p := Parser{Names: testNames()}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		c, err := p.ParseArgs(args)
		if err != nil {
			if c != (Command{}) {
				t.Fatalf("error %v with a non-zero command %+v", err, c)
			}
			return
		}
		switch c.Op {
		case OpAddService, OpEditService:
			if err := c.Service.Validate(); err != nil {
				t.Fatalf("%q parsed to an invalid service: %v", args, err)
			}
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		var back Command
		if err := json.Unmarshal(b, &back); err != nil || back != c {
			t.Fatalf("%q: JSON %s does not round-trip: %+v, %v", args, b, back, err)
		}
	})
}

// FuzzParseRules: the rules parser never panics, is all or nothing, and a
// configuration it loads saves (-S -n) to rules that load back and save
// identically.
func FuzzParseRules(f *testing.F) {
	f.Add(sampleSave)
	f.Add(everyOption)
	f.Add("# c\nipvsadm -A -t 1.2.3.4:80\n\n-a -t 1.2.3.4:80 -r 5.6.7.8 -m -x 3 -y 2\n--set 1 2 3\n-C\n")
	p := Parser{Names: testNames()}
	f.Fuzz(func(t *testing.T, text string) {
		rules, err := p.ParseRuleLines(strings.NewReader(text), "fuzz")
		if err != nil && rules != nil {
			t.Fatalf("partial result with error %v", err)
		}
		tab, err := p.LoadRules(strings.NewReader(text), "fuzz")
		if err != nil {
			return
		}
		saved := FormatSave(tab.Services, nil)
		tab2, err := p.LoadRules(strings.NewReader(saved), "saved")
		if err != nil {
			t.Fatalf("saved rules do not load: %v\n%s", err, saved)
		}
		if again := FormatSave(tab2.Services, nil); again != saved {
			t.Fatalf("save is not a fixed point:\n%s\n---\n%s", saved, again)
		}
	})
}
