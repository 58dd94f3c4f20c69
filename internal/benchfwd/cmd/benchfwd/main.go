// Command benchfwd runs the reference AF_PACKET forwarder (package
// lvslab/internal/benchfwd) for a benchmark script: run it inside the
// forwarding namespace, stop it with -duration or SIGINT/SIGTERM, and read
// one JSON line of results from stdout.
//
//	ip netns exec fwd benchfwd -in f0 -out f1 -nexthop 02:00:00:00:00:02 -duration 5s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"lvslab/capture"
	"lvslab/internal/benchfwd"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchfwd:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		in       = flag.String("in", "", "ingress interface")
		out      = flag.String("out", "", "egress interface")
		nextHop  = flag.String("nexthop", "", "destination MAC written into every frame")
		workers  = flag.Int("workers", 1, "forwarding goroutines (hash fanout on the ingress)")
		batch    = flag.Int("batch", 64, "frames per read and write")
		duration = flag.Duration("duration", 0, "stop after this long (0: at SIGINT/SIGTERM)")
		tx       = flag.String("tx", "ring", "transmit path: ring or sendmmsg")
		blocks   = flag.Int("blocks", 0, "receive ring blocks (0: default)")
		blockKB  = flag.Int("block-kb", 0, "receive ring block size in KiB (0: default)")
		bypass   = flag.Bool("bypass", false, "transmit with PACKET_QDISC_BYPASS")
	)
	flag.Parse()
	if *in == "" || *out == "" || *nextHop == "" {
		flag.Usage()
		return fmt.Errorf("-in, -out and -nexthop are required")
	}
	mac, err := net.ParseMAC(*nextHop)
	if err != nil || len(mac) != 6 {
		return fmt.Errorf("-nexthop %q: not an Ethernet address", *nextHop)
	}
	cfg := benchfwd.Config{In: *in, Out: *out, Workers: *workers, Batch: *batch}
	copy(cfg.NextHop[:], mac)
	cfg.Port.Blocks, cfg.Port.BlockSize, cfg.Port.QdiscBypass = *blocks, *blockKB<<10, *bypass
	switch *tx {
	case "ring":
		cfg.Port.TXMode = capture.TXRing
	case "sendmmsg":
		cfg.Port.TXMode = capture.TXSendmmsg
	default:
		return fmt.Errorf("-tx %q: want ring or sendmmsg", *tx)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	res, err := benchfwd.Run(ctx, cfg)
	report := struct {
		Forwarded uint64        `json:"forwarded"`
		Dropped   uint64        `json:"dropped"`
		Seconds   float64       `json:"seconds"`
		PPS       float64       `json:"pps"`
		In        capture.Stats `json:"in"`
		Out       capture.Stats `json:"out"`
	}{res.Forwarded, res.Dropped, res.Elapsed.Round(time.Millisecond).Seconds(), res.PPS(), res.In, res.Out}
	if jerr := json.NewEncoder(os.Stdout).Encode(report); jerr != nil && err == nil {
		err = jerr
	}
	return err
}
