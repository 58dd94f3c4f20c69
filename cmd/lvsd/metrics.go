package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"lvslab/ipvs"
	"lvslab/ipvs/ctl"
)

// newRegistry gathers what lvsd exports: the engine (node_exporter's ipvs
// families and lvsd's own), VIP ownership and the VRRP state lvskeepalived
// reports, the control socket's requests, and the Go
// runtime and process collectors every Go exporter has.
func newRegistry(eng *ipvs.Engine, requests *prometheus.CounterVec) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		eng.Collector(),
		eng.OwnershipCollector(),
		requests,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

// newRequestCounter counts the control socket's requests by ipvsadm command
// and result.
func newRequestCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lvsd_control_requests_total",
		Help: "Requests lvsd answered on its control socket (lvsadm, lvskeepalived), by ipvsadm command and result (ok, error).",
	}, []string{"command", "result"})
}

// countRequests wraps the control socket's handler so that every answered
// request is counted. The commands lvsadm sends are a closed set, so the
// label stays small.
func countRequests(h ctl.Handler, requests *prometheus.CounterVec) ctl.Handler {
	return ctl.HandlerFunc(func(ctx context.Context, peer ctl.Peer, req ctl.Request) ctl.Reply {
		r := h.Handle(ctx, peer, req)
		result := "ok"
		if r.Error != "" {
			result = "error"
		}
		requests.WithLabelValues(req.Command.Op.String(), result).Inc()
		return r
	})
}

// serveMetrics serves the registry on addr at /metrics, in the text format
// or OpenMetrics as the scraper asks.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slogPrintln{log},
		EnableOpenMetrics: true,
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return srv, nil
}

// slogPrintln is promhttp's error logger on top of slog.
type slogPrintln struct{ log *slog.Logger }

func (l slogPrintln) Println(v ...any) { l.log.Error("metrics", "err", fmt.Sprint(v...)) }
