package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/emersion/go-smtp"

	"mtad.dev/mta/channels"
	"mtad.dev/mta/compiler"
)

// clientAddrSink is a remote SMTP server on 127.0.0.1 that records the address
// each client connects from, and signals every message it accepts.
type clientAddrSink struct {
	port      int
	delivered chan struct{}

	mu      sync.Mutex
	clients []string
}

func newClientAddrSink(t *testing.T) *clientAddrSink {
	t.Helper()
	s := &clientAddrSink{delivered: make(chan struct{}, 16)}
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *clientAddrSink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.clients = append(s.clients, c.Conn().RemoteAddr().(*net.TCPAddr).IP.String())
	s.mu.Unlock()
	return clientAddrSession{s}, nil
}

type clientAddrSession struct{ s *clientAddrSink }

func (clientAddrSession) Mail(string, *smtp.MailOptions) error { return nil }
func (clientAddrSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (clientAddrSession) Reset()                               {}
func (clientAddrSession) Logout() error                        { return nil }
func (ss clientAddrSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	ss.s.delivered <- struct{}{}
	return nil
}

// TestInterfaceAddressRelay: mtad relays through a channel with
// `interfaceaddress 127.0.0.2`, and the remote server sees the connection come
// from 127.0.0.2 (Linux routes all of 127/8 to lo); the same channel without
// the keyword connects from 127.0.0.1.
func TestInterfaceAddressRelay(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"interfaceaddress 127.0.0.2", "127.0.0.2"},
		{"", "127.0.0.1"},
	} {
		t.Run("from "+tc.want, func(t *testing.T) {
			remote := newClientAddrSink(t)
			d := startDaemonAt(t, jobsRelayConfig(t, remote.port, tc.extra), t.TempDir())
			c := dial(t, d.Addr().String())
			c.Cmd("EHLO client.test", "250")
			c.Send("me@localhost", []string{"you@remote.example"}, []byte("Subject: bound\r\n\r\nbody\r\n"))
			c.Cmd("QUIT", "221")
			select {
			case <-remote.delivered:
			case <-time.After(15 * time.Second):
				t.Fatal("the message did not reach the remote server within 15 s")
			}
			remote.mu.Lock()
			defer remote.mu.Unlock()
			for _, got := range remote.clients {
				if got != tc.want {
					t.Errorf("the remote server saw a connection from %s, want %s", got, tc.want)
				}
			}
		})
	}
}

// programImage compiles one SMTP channel tcp_x with the given keywords, and the
// other files given (name: content); it must build without a warning.
func programImage(t *testing.T, keywords string, files ...string) *compiler.Image {
	t.Helper()
	fsys := fstest.MapFS{"imta.cnf": {Data: []byte(".  $U%$H@x-daemon\n\nl\nlocalhost\n\ntcp_x smtp " + keywords + "\nx-daemon\n")}}
	for i := 0; i+1 < len(files); i += 2 {
		fsys[files[i]] = &fstest.MapFile{Data: []byte(files[i+1])}
	}
	r, err := compiler.CheckFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) > 0 || len(r.Warnings) > 0 {
		t.Fatalf("errors %v warnings %v", r.Errors, r.Warnings)
	}
	return r.Image
}

// TestProgramsRebuiltOnChange: a reload keeps a channel's program when its
// settings are == to before, and builds a new one when any differs.
func TestProgramsRebuiltOnChange(t *testing.T) {
	d := &Daemon{log: slog.New(slog.DiscardHandler), opts: Options{DataDir: t.TempDir()}}
	t.Cleanup(func() {
		for _, e := range d.progs {
			closeProgram(e.prog)
		}
	})
	const base = "nomx daemon [127.0.0.1] port 2525 nameservers 127.0.0.1"
	first := d.programs(programImage(t, base))["tcp_x"]
	if first == nil {
		t.Fatal("tcp_x has no program")
	}
	if again := d.programs(programImage(t, base))["tcp_x"]; again != first {
		t.Error("nothing changed, but the program was rebuilt")
	}
	for _, change := range []string{"interfaceaddress 127.0.0.2", "port 2526", "nameservers 127.0.0.2", "master_debug", "nodns"} {
		before := d.programs(programImage(t, base))["tcp_x"]
		if after := d.programs(programImage(t, base+" "+change))["tcp_x"]; after == before {
			t.Errorf("%s: the program was kept", change)
		}
	}
}

// TestProgramSpecIsAValue: programSpec compares by value; its settings parts are
// checked at any depth by the compiler's TestSettingsAreValues.
func TestProgramSpecIsAValue(t *testing.T) {
	typ := reflect.TypeOf(programSpec{})
	for i := range typ.NumField() {
		switch k := typ.Field(i).Type.Kind(); k {
		case reflect.Pointer, reflect.Interface, reflect.Func, reflect.Slice, reflect.Map, reflect.Chan, reflect.UnsafePointer:
			t.Errorf("programSpec.%s is a %s: programs would be compared by identity, not by settings", typ.Field(i).Name, k)
		}
	}
}

// TestNoDNSHasNoResolver: a nodns channel looks nothing up: a domain is a
// temporary failure at once, and only an IP literal is reached.
func TestNoDNSHasNoResolver(t *testing.T) {
	remote := newClientAddrSink(t)
	d := &Daemon{log: slog.New(slog.DiscardHandler), opts: Options{DataDir: t.TempDir()}}
	img := programImage(t, "nodns nameservers 127.0.0.1 port "+strconv.Itoa(remote.port))
	c, _ := img.Channel("tcp_x")
	spec, ok := d.programFor(img, c)
	if !ok {
		t.Fatal("tcp_x has no program")
	}
	p := d.buildProgram("tcp_x", spec)
	t.Cleanup(func() { closeProgram(p) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	content := "Subject: x\r\n\r\nbody\r\n"
	msg := func(host string) *channels.Message {
		return &channels.Message{ID: "q1", From: "me@localhost", Content: strings.NewReader(content), Size: int64(len(content)),
			Rcpts: []channels.Rcpt{{Addr: "you@" + host, Host: host}}}
	}
	res := p.Deliver(ctx, msg("remote.example"))
	if st := res[0].Err; st == nil || !st.Temporary() || st.Enhanced != "4.3.5" || !strings.Contains(st.Text, "no resolver") {
		t.Errorf("a domain on a nodns channel: %v, want a temporary 4.3.5 without any lookup", st)
	}
	if res := p.Deliver(ctx, msg("[127.0.0.1]")); res[0].Err != nil {
		t.Errorf("an IP literal on a nodns channel: %v", res[0].Err)
	}
}
