package channels

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/emersion/go-smtp"
)

// An LMTP server on a Unix socket has no DNS name: its results say so, so that a
// notice does not show the socket path as Remote-MTA. A TCP server's do not.
func TestLMTPUnixSocketHasNoRemoteMTA(t *testing.T) {
	be := &lmtpSink{}
	srv := smtp.NewServer(be)
	srv.LMTP = true
	srv.Domain = "lmtp.test"
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := NewLMTP(SMTPOptions{SMTPSettings: SMTPSettings{Daemon: sock, Network: "unix", HeloName: "client.test"}})
	t.Cleanup(func() { c.Close() })
	res := c.Deliver(testCtx(t), msgOf([]byte("x\r\n"), "s@d", "a@d", "full@d"))
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
