package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrNotLoopback is wrapped by CheckListen's error for an address that is not
// loopback while remote access is not allowed.
var ErrNotLoopback = errors.New("METRICS_LISTEN is not a loopback address")

// CheckListen validates a METRICS_LISTEN value: host:port with a numeric port. The
// host must be a loopback IP literal or "localhost" unless allowRemote is set: the
// endpoint has no authentication and tells anyone who can reach it the queue's shape
// and the channel names. An empty host or an unspecified address (0.0.0.0, ::) means
// every interface and counts as remote; other host names are refused too, since we
// cannot know where they resolve. METRICS_LISTEN is our option, not the product's.
func CheckListen(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("METRICS_LISTEN %q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("METRICS_LISTEN %q: bad port %q", addr, port)
	}
	if allowRemote {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q (metrics are served on 127.0.0.1 or ::1 unless remote access is allowed)", ErrNotLoopback, addr)
	}
	return nil
}

// Registry builds the daemon's registry: the state collector, the Go runtime and
// process collectors, and the hooks when given (nil: none, see Hooks).
func Registry(src Source, hooks *Hooks) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	if hooks != nil {
		cs = append(cs, hooks.Collectors()...)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return reg, nil
}

// Server is a running /metrics endpoint.
type Server struct {
	l    net.Listener
	http *http.Server
	done chan struct{}
}

// Listen opens addr (after CheckListen) and serves reg's metrics at /metrics until
// Close. Anything else is 404.
func Listen(addr string, allowRemote bool, reg prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	if err := CheckListen(addr, allowRemote); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrintln{log},
		ErrorHandling: promhttp.ContinueOnError, // one failing collector must not hide the rest
		Timeout:       10 * time.Second,
	}))
	s := &Server{
		l: l,
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "addr", l.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address (the port chosen when METRICS_LISTEN says :0).
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Close stops the endpoint, letting a scrape in progress finish within ctx.
func (s *Server) Close(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.http.Close())
	}
	<-s.done
	if err != nil {
		return fmt.Errorf("close metrics endpoint: %w", err)
	}
	return nil
}

// slogPrintln adapts slog to promhttp's Logger.
type slogPrintln struct{ log *slog.Logger }

func (l slogPrintln) Println(v ...any) { l.log.Warn("metrics", "err", fmt.Sprint(v...)) }
