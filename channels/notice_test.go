package channels

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/emersion/go-smtp"
)

// lmtpOnUnixSocket starts an LMTP server for be (offering DSN or not) on a Unix
// socket and returns an LMTP client channel for it.
func lmtpOnUnixSocket(t *testing.T, be *lmtpSink, dsn bool) *SMTP {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.LMTP, srv.Domain, srv.EnableDSN = true, "lmtp.test", dsn
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := NewLMTP(SMTPOptions{SMTPSettings: SMTPSettings{Daemon: sock, Network: "unix", HeloName: "client.test"}})
	t.Cleanup(func() { c.Close() })
	return c
}

// An LMTP server on a Unix socket has no DNS name: its results say so, so that a
// notice does not show the socket path as Remote-MTA. A TCP server's do not.
func TestLMTPUnixSocketHasNoRemoteMTA(t *testing.T) {
	res := lmtpOnUnixSocket(t, &lmtpSink{}, false).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "full@d"))
	for i, r := range res {
		if !r.NoRemoteMTA {
			t.Errorf("result %d over a Unix socket: NoRemoteMTA false (%+v)", i, r)
		}
	}

	port := startSink(t, &sink{}, nil)
	for i, r := range newClient(t, port, nil).Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d")) {
		if r.NoRemoteMTA {
			t.Errorf("result %d over TCP: NoRemoteMTA true", i)
		}
	}
}

// Each program says who reports a delivery's success (Result.Handoff): an SMTP
// server that offers DSN takes the request over (it got NOTIFY and ORCPT), one
// that does not is a relay beyond which nothing is reported (and got neither);
// an LMTP store without DSN, a Maildir, a pipe program and the bitbucket are
// final.
func TestDeliveryHandoff(t *testing.T) {
	smtpTo := func(t *testing.T, dsn bool) (Result, sunk) {
		be := &sink{}
		port := startSink(t, be, func(s *smtp.Server) { s.EnableDSN = dsn })
		m := msgOf([]byte("x\r\n"), "s@d", "a@d")
		m.RET, m.EnvID = "HDRS", "env1"
		m.Rcpts[0].Notify, m.Rcpts[0].ORCPT = "SUCCESS", "rfc822;orig@d"
		res := newClient(t, port, nil).Deliver(testCtx(t), m)
		wantDelivered(t, res, 1)
		return res[0], be.received()[0]
	}
	t.Run("smtp with DSN", func(t *testing.T) {
		res, got := smtpTo(t, true)
		if res.Handoff != HandedOn {
			t.Errorf("Handoff %d, want HandedOn", res.Handoff)
		}
		if len(got.ropts) != 1 || len(got.ropts[0].Notify) != 1 || got.ropts[0].OriginalRecipient != "orig@d" ||
			got.opts.Return != smtp.DSNReturnHeaders || got.opts.EnvelopeID != "env1" {
			t.Errorf("the DSN request was not passed on: MAIL %+v RCPT %+v", got.opts, got.ropts)
		}
	})
	t.Run("smtp without DSN", func(t *testing.T) {
		res, got := smtpTo(t, false)
		if res.Handoff != RelayedWithoutDSN {
			t.Errorf("Handoff %d, want RelayedWithoutDSN", res.Handoff)
		}
		if len(got.ropts) == 1 && (len(got.ropts[0].Notify) != 0 || got.ropts[0].OriginalRecipient != "") {
			t.Errorf("NOTIFY or ORCPT sent to a server without DSN: %+v", got.ropts)
		}
	})
	t.Run("lmtp", func(t *testing.T) {
		for _, dsn := range []bool{false, true} {
			c := lmtpOnUnixSocket(t, &lmtpSink{}, dsn)
			want := DeliveredHere
			if dsn {
				want = HandedOn
			}
			res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d"))
			if res[0].Err != nil || res[0].Handoff != want {
				t.Errorf("LMTP store (DSN %v): %v, Handoff %d, want %d", dsn, res[0].Err, res[0].Handoff, want)
			}
		}
	})
	t.Run("local programs", func(t *testing.T) {
		progs := map[string]Program{
			"maildir":   NewMaildir(t.TempDir(), "h"),
			"pipe":      NewPipe(PipeOptions{Command: []string{"/bin/true"}}),
			"bitbucket": Bitbucket{},
		}
		for name, p := range progs {
			res := p.Deliver(context.Background(), msgOf([]byte("x\r\n"), "s@d", "a@d"))
			if res[0].Err != nil || res[0].Handoff != DeliveredHere {
				t.Errorf("%s: %v, Handoff %d, want DeliveredHere", name, res[0].Err, res[0].Handoff)
			}
		}
		if res := progs["pipe"].Deliver(context.Background(), msgOf([]byte("x\r\n"), "s@d", "a@d")); !res[0].NoRemoteMTA {
			t.Errorf("pipe: NoRemoteMTA false: \"pipe\" is no DNS host")
		}
	})
}
