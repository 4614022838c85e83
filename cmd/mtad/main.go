// Command mtad is the mail transfer agent daemon: the SMTP service, the queue, the job
// controller and the delivery channels, configured by a compiled image (see mtactl
// cnbuild) or, without -config, by the configuration embedded in the binary.
//
//	mtad [-config DIR] [-data DIR] [-listen ADDR] [-ready-file PATH] [-log-level LEVEL] [-log-format text|json] [-pprof ADDR]
//
// Signals: SIGTERM/SIGINT shut down gracefully; SIGHUP reloads the configuration;
// SIGUSR1 reopens mail.log (logrotate). Under systemd (NOTIFY_SOCKET set) it
// reports its state with the notify protocol (daemon/notify.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"mtad.dev/mta/daemon"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mtad", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configDir = fs.String("config", "", "configuration `directory` (compiled.image or the text files); default: the embedded configuration")
		dataDir   = fs.String("data", "mta-data", "data `directory`: queue, mail.log, Maildirs")
		listen    = fs.String("listen", "", "SMTP listen `address`, overriding dispatcher.cnf (e.g. 127.0.0.1:0)")
		readyFile = fs.String("ready-file", "", "write the bound SMTP address to this `file` once ready")
		logLevel  = fs.String("log-level", "info", "diagnostic log `level`: debug, info, warn, error")
		logFormat = fs.String("log-format", "text", "diagnostic log `format`: text or json")
		grace     = fs.Duration("shutdown-grace", 30*time.Second, "how long sessions and deliveries may finish on shutdown")
		pprofAddr = fs.String("pprof", "", "serve net/http/pprof on this loopback `address` (e.g. 127.0.0.1:6060); off when empty")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mtad: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "mtad: %v\n", err)
		return 2
	}
	slog.SetDefault(logger)
	if *pprofAddr != "" {
		if err := startPprof(*pprofAddr, logger); err != nil {
			fmt.Fprintf(stderr, "mtad: %v\n", err)
			return 2
		}
	}

	notifySocket, watchdog := serviceManager()
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Options{
		ConfigDir: *configDir, DataDir: *dataDir, Listen: *listen, ReadyFile: *readyFile, Logger: logger,
		NotifySocket: notifySocket, WatchdogInterval: watchdog,
	})
	if err != nil {
		fmt.Fprintf(stderr, "mtad: %v\n", err)
		return 1
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	for {
		select {
		case err := <-d.Errors():
			logger.Error("fatal", "err", err)
			shutdown(d, *grace, logger)
			return 1
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				d.Reload() // logs its own outcome; a bad image leaves the old one in force
			case syscall.SIGUSR1:
				if err := d.ReopenLog(); err != nil {
					logger.Error("reopen mail.log", "err", err)
				}
			default:
				logger.Info("shutting down", "signal", s.String())
				if err := shutdown(d, *grace, logger); err != nil {
					return 1
				}
				return 0
			}
		}
	}
}

func shutdown(d *daemon.Daemon, grace time.Duration, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := d.Shutdown(ctx)
	if err != nil {
		logger.Error("shutdown", "err", err)
	}
	return err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad -log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad -log-format %q: want text or json", format)
}

// startPprof serves the profiling endpoints on a loopback address only: profiles reveal
// message data in memory, so they must never be reachable from the network.
func startPprof(addr string, logger *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad -pprof address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("bad -pprof address %q: must be a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if err := srv.Serve(ln); err != nil {
			logger.Error("pprof server stopped", "err", err)
		}
	}()
	logger.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}

// serviceManager reads what systemd (or another service manager speaking its
// protocol) tells mtad in the environment: where to send its notifications
// and how often to ping the watchdog. It removes them from the environment, so
// that the programs mtad runs (pipe channels) do not talk to the manager in
// mtad's name.
func serviceManager() (socket string, watchdog time.Duration) {
	socket = os.Getenv("NOTIFY_SOCKET")
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		if pid := os.Getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			watchdog = time.Duration(us) * time.Microsecond
		}
	}
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		os.Unsetenv(v)
	}
	return socket, watchdog
}
