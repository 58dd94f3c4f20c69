package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"lvslab/ipvs"
	"lvslab/ipvs/ctl"
)

// startEngine serves a real (interface-less) engine on an abstract socket:
// the commands go through lvsd's own checks and listings.
func startEngine(t *testing.T, suffix string) string {
	t.Helper()
	e, err := ipvs.New(ipvs.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	name := fmt.Sprintf("lvslab-lvsadm-fnat-%d-%s-%s", os.Getpid(), t.Name(), suffix)
	ln, err := ctl.Listen(name)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctl.Serve(ctx, ln, e) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("engine's control socket did not stop")
		}
	})
	return name
}

// Seed 002's FULLNAT service, by the fork's ipvsadm commands.
func TestFullNATCommands(t *testing.T) {
	sock := startEngine(t, "a")
	for _, args := range [][]string{
		{"-A", "-t", "1.1.1.1:80", "-s", "rr"},
		{"-A", "-t", "1.1.1.2:80", "-s", "rr"},
		{"-P", "-t", "1.1.1.1:80", "-z", "192.168.100.1"},
		{"--add-laddr", "-t", "1.1.1.1:80", "-z", "192.168.100.2"},
		{"-a", "-t", "1.1.1.1:80", "-r", "192.168.1.1:80", "-b", "-w", "100"},
		{"-a", "-t", "1.1.1.1:80", "-r", "192.168.1.2:80", "--fullnat", "-w", "100"},
	} {
		r := runWith(sock, "", args...)
		require.Equal(t, result{0, "", ""}, r, "%q", args)
	}
	// Errors in the fork's words, and a FULLNAT real server needs a local
	// address first.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-P", "-t", "1.1.1.1:80", "-z", "192.168.100.1"}, "Local address already exists\n"},
		{[]string{"-Q", "-t", "1.1.1.1:80", "-z", "192.168.100.9"}, "No such Local address\n"},
		{[]string{"-P", "-t", "1.1.1.3:80", "-z", "192.168.100.1"}, "Service not defined\n"},
		{[]string{"-G", "-t", "1.1.1.3:80"}, "Service not defined\n"},
		{[]string{"-a", "-t", "1.1.1.2:80", "-r", "192.168.1.1:80", "-b"},
			"forwarding method FullNat needs local addresses for TCP 1.1.1.2:80 first (-P -z LADDR)\n"},
		{[]string{"-P", "-t", "1.1.1.2:80", "-z", "224.0.0.1"},
			"local address 224.0.0.1 for TCP 1.1.1.2:80: lvsd needs a unicast IPv4 address\n"},
	} {
		r := runWith(sock, "", tc.args...)
		assert.Equal(t, result{exitFailed, "", tc.msg}, r, "%q", tc.args)
	}

	r := runWith(sock, "", "-G")
	assert.Equal(t, result{0, "" +
		"VIP:VPORT            TOTAL    LADDR                CONFLICTS  CONNS     \n" +
		"1.1.1.1:80           2        \n" +
		"                              192.168.100.1        0          0         \n" +
		"                              192.168.100.2        0          0         \n" +
		"1.1.1.2:80           0        \n", ""}, r)
	r = runWith(sock, "", "-G", "-t", "1.1.1.1:80")
	assert.Equal(t, 0, r.code)
	assert.Equal(t, 4, strings.Count(r.stdout, "\n"), r.stdout)

	r = runWith(sock, "", "-L", "-n")
	assert.Equal(t, result{0, "IP Virtual Server version 1.2.1 (size=4096)\n" +
		"Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  1.1.1.1:80 rr\n" +
		"  -> 192.168.1.1:80               FullNat 100    0          0         \n" +
		"  -> 192.168.1.2:80               FullNat 100    0          0         \n" +
		"TCP  1.1.1.2:80 rr\n", ""}, r)

	// The last local address of a service with FULLNAT real servers stays.
	require.Equal(t, 0, runWith(sock, "", "-Q", "-t", "1.1.1.1:80", "-z", "192.168.100.1").code)
	r = runWith(sock, "", "-Q", "-t", "1.1.1.1:80", "-z", "192.168.100.2")
	assert.Equal(t, result{exitFailed, "", "local address 192.168.100.2 is the last of TCP 1.1.1.1:80, which has FULLNAT real servers (delete them first)\n"}, r)

	// -S | -R into another lvsd gives the same table.
	saved := runWith(sock, "", "-S", "-n")
	require.Equal(t, 0, saved.code, saved.stderr)
	assert.Equal(t, "-A -t 1.1.1.1:80 -s rr\n"+
		"-P -t 1.1.1.1:80 -z 192.168.100.2\n"+
		"-a -t 1.1.1.1:80 -r 192.168.1.1:80 --fullnat -w 100\n"+
		"-a -t 1.1.1.1:80 -r 192.168.1.2:80 --fullnat -w 100\n"+
		"-A -t 1.1.1.2:80 -s rr\n", saved.stdout)
	other := startEngine(t, "b")
	r = runWith(other, saved.stdout, "-R")
	require.Equal(t, result{0, "", ""}, r)
	assert.Equal(t, saved, runWith(other, "", "-S", "-n"))
	assert.Equal(t, runWith(sock, "", "-G"), runWith(other, "", "-G"))
}
