package channels

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestSMTPLocalAddr: SMTPSettings.LocalAddr (interfaceaddress) is the source
// address of the client's connections; without it the system chooses. Linux
// routes all of 127/8 to the loopback interface, so 127.0.0.2 needs no setup.
func TestSMTPLocalAddr(t *testing.T) {
	for _, tc := range []struct {
		local, want string
	}{
		{"", "127.0.0.1"},
		{"127.0.0.2", "127.0.0.2"},
	} {
		t.Run("from "+tc.want, func(t *testing.T) {
			be := &sink{}
			port := startSink(t, be, nil)
			c := newClient(t, port, func(o *SMTPOptions) {
				if tc.local != "" {
					o.LocalAddr = netip.MustParseAddr(tc.local)
				}
			})
			if res := c.Deliver(testCtx(t), msgOf([]byte("Subject: x\r\n\r\nbody\r\n"), "s@d", "a@d")); res[0].Err != nil {
				t.Fatalf("delivery: %v", res[0].Err)
			}
			be.mu.Lock()
			defer be.mu.Unlock()
			if len(be.conns) != 1 {
				t.Fatalf("%d connections, want 1", len(be.conns))
			}
			got := be.conns[0].Conn().RemoteAddr().(*net.TCPAddr).IP.String()
			if got != tc.want {
				t.Errorf("the server saw the client at %s, want %s", got, tc.want)
			}
		})
	}
}

func TestExitStatuses(t *testing.T) {
	s := ExitStatusesOf(75, 1, 255, 64, 63, 0, -1, 256, 1)
	want := []int{0, 1, 63, 64, 75, 255}
	if got := s.List(); !slices.Equal(got, want) {
		t.Errorf("List() = %v, want %v", got, want)
	}
	for c := -2; c < 258; c++ {
		if s.Has(c) != slices.Contains(want, c) {
			t.Errorf("Has(%d) = %v", c, s.Has(c))
		}
	}
	if ExitStatusesOf(67, 69) != ExitStatusesOf(69, 67, 67) {
		t.Error("the same statuses in another order are another set")
	}
	if (ExitStatuses{}).List() != nil {
		t.Error("the empty set lists something")
	}
}

// TestPipeSettingsOptions: every pipe setting reaches the program's options, so
// that a setting cannot be compared on reload and then dropped on the way.
func TestPipeSettingsOptions(t *testing.T) {
	s := PipeSettings{
		Command:        "/usr/bin/deliver  -f ${sender}\t${recipient}",
		PerMessage:     true,
		TemporaryExits: ExitStatusesOf(69, 67),
		PermanentExits: ExitStatusesOf(1),
		Timeout:        7 * time.Second,
	}
	want := PipeOptions{
		Command:        []string{"/usr/bin/deliver", "-f", "${sender}", "${recipient}"},
		PerMessage:     true,
		TemporaryExits: []int{67, 69},
		PermanentExits: []int{1},
		Timeout:        7 * time.Second,
	}
	if got := s.Options(); !reflect.DeepEqual(got, want) {
		t.Errorf("Options() = %+v, want %+v", got, want)
	}
	// Each field on its own changes the options: none is forgotten.
	typ := reflect.TypeOf(s)
	for i := range typ.NumField() {
		var one PipeSettings
		reflect.ValueOf(&one).Elem().Field(i).Set(reflect.ValueOf(s).Field(i))
		if reflect.DeepEqual(one.Options(), PipeSettings{}.Options()) {
			t.Errorf("PipeSettings.%s does not reach PipeOptions", typ.Field(i).Name)
		}
	}
}
