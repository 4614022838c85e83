package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dovecot is a throwaway Dovecot: its configuration, runtime directory (base_dir),
// state, log, user database and mail all live under one directory of the test. It
// runs in the foreground (dovecot -F) as a child of the test, with -c naming its
// own configuration, so neither /etc/dovecot nor a system Dovecot is ever touched.
//
// The starter is written for any protocol set (LMTP here; IMAP for a test that
// reads the folders a delivery filed into): the caller names the protocols and
// may add configuration text of its own.
type dovecot struct {
	dir        string
	lmtpPort   int    // LMTP over TCP on 127.0.0.1, when "lmtp" is served
	lmtpSocket string // LMTP over a Unix socket, when "lmtp" is served
	imapPort   int    // IMAP on 127.0.0.1 (no IMAPS), when "imap" is served
	proc       *child
}

// dovecotConfig is what a test asks of its Dovecot.
type dovecotConfig struct {
	protocols []string // "lmtp", "imap"
	// users are the mailbox users (local parts: the domain of a recipient is
	// dropped), each with password "secret" for the protocols that log in. They
	// all store mail as the same system user, under mail/USER/ in Maildir format.
	// That user is nobody: the tests run as root, and Dovecot will not store
	// mail as root (first_valid_uid).
	users []string
	// extra is configuration appended to the generated file.
	extra string
}

// requireDovecot skips the test unless Dovecot can be started here with the
// protocols asked for: the program, each protocol's binary, and root (the master
// starts as root and its processes run as the dovecot users and the mail user).
func requireDovecot(t *testing.T, protocols ...string) {
	t.Helper()
	requireProgram(t, "dovecot", "dovecot-core")
	requireRoot(t, "dovecot's master runs as root and stores mail as another user")
	requireUser(t, "dovecot")
	requireUser(t, "dovenull")
	requireUser(t, "nobody")
	// The protocol binaries sit in the libexec directory; ask doveconf where,
	// from a configuration of our own (doveconf would otherwise read /etc).
	cfg := filepath.Join(t.TempDir(), "probe.conf")
	writeFile(t, cfg, "protocols =\n")
	out, err := run(t, startWithin, "", "doveconf", "-c", cfg, "-h", "libexec_dir")
	if err != nil {
		t.Skipf("doveconf cannot tell dovecot's libexec directory: %v: %s", err, strings.TrimSpace(out))
	}
	pkg := map[string]string{"lmtp": "dovecot-lmtpd", "imap": "dovecot-imapd", "pop3": "dovecot-pop3d"}
	for _, p := range protocols {
		if _, err := os.Stat(filepath.Join(strings.TrimSpace(out), p)); err != nil {
			t.Skipf("dovecot has no %s service (apt-get install -y %s)", p, pkg[p])
		}
	}
}

// startDovecot writes the configuration and the user database, starts Dovecot,
// waits until it accepts connections, and stops it in t.Cleanup.
func startDovecot(t *testing.T, cfg dovecotConfig) *dovecot {
	t.Helper()
	requireDovecot(t, cfg.protocols...)
	uid, gid := requireUser(t, "nobody")
	d := &dovecot{dir: peerDir(t)}
	mail := filepath.Join(d.dir, "mail")
	if err := os.MkdirAll(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mail, uid, gid); err != nil {
		t.Fatal(err)
	}
	var users strings.Builder
	for _, u := range cfg.users {
		// passwd-file: user:password:uid:gid:gecos:home:shell:extra
		fmt.Fprintf(&users, "%s:{PLAIN}secret:%d:%d::%s::\n", u, uid, gid, filepath.Join(mail, u))
	}
	writeFile(t, filepath.Join(d.dir, "users"), users.String())
	services := d.services(t, cfg.protocols)
	conf := filepath.Join(d.dir, "dovecot.conf")
	writeFile(t, conf, fmt.Sprintf(`# interop: a throwaway Dovecot of the test, on loopback only
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
protocols = %[2]s
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
# user names are local parts: anna@store.test is anna
auth_username_format = %%Ln
mail_location = maildir:%[1]s/mail/%%n
passdb {
  driver = passwd-file
  args = %[1]s/users
}
userdb {
  driver = passwd-file
  args = %[1]s/users
}
%[3]s%[4]s`, d.dir, strings.Join(cfg.protocols, " "), services, cfg.extra))

	d.proc = startChild(t, "dovecot", exec.Command("dovecot", "-F", "-c", conf))
	logOf := func() string { return d.proc.out.String() + "\n" + tail(filepath.Join(d.dir, "dovecot.log"), 20) }
	if d.lmtpPort != 0 {
		waitListening(t, "tcp", fmt.Sprintf("127.0.0.1:%d", d.lmtpPort), logOf)
		waitListening(t, "unix", d.lmtpSocket, logOf)
	}
	if d.imapPort != 0 {
		waitListening(t, "tcp", fmt.Sprintf("127.0.0.1:%d", d.imapPort), logOf)
	}
	return d
}

// services is the configuration of the listeners: each protocol on a free
// loopback port of its own (never its well-known port, where a system Dovecot may
// listen), and LMTP on a Unix socket in base_dir too.
func (d *dovecot) services(t *testing.T, protocols []string) string {
	t.Helper()
	var b strings.Builder
	if slices.Contains(protocols, "lmtp") {
		d.lmtpPort = freePort(t)
		d.lmtpSocket = filepath.Join(d.dir, "run", "lmtp")
		fmt.Fprintf(&b, `service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %d
  }
  unix_listener lmtp {
    mode = 0666
  }
}
`, d.lmtpPort)
	}
	if slices.Contains(protocols, "imap") {
		d.imapPort = freePort(t)
		fmt.Fprintf(&b, `service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %d
  }
  inet_listener imaps {
    port = 0
  }
}
`, d.imapPort)
	}
	return b.String()
}

// mailbox is the new/ directory of a user's INBOX.
func (d *dovecot) mailbox(user string) string {
	return filepath.Join(d.dir, "mail", user, "new")
}

// log returns Dovecot's log.
func (d *dovecot) log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
	return string(b)
}

// TestMtadToDovecotLMTP: mtad's lmtp channels deliver to Dovecot's LMTP service,
// one over TCP and one over its Unix socket. Each message goes to a user Dovecot
// has (asking NOTIFY=SUCCESS) and to one it has not. Dovecot answers each recipient
// on its own: the known user's copy is stored byte-exact (Dovecot's LF form, under
// its trace fields and mtad's Received:), the unknown one is refused with 550.
// Dovecot's LMTP does not do DSN, so mtad reports both, one notice per message and
// event (as Postfix does): a success notice for one (delivered), a failure notice
// for the other (`Diagnostic-Code: smtp; 550 …`), whose Remote-MTA names the store
// over TCP and is left out for the Unix socket, which has no DNS name.
func TestMtadToDovecotLMTP(t *testing.T) {
	t.Parallel()
	dc := startDovecot(t, dovecotConfig{protocols: []string{"lmtp"}, users: []string{"anna"}})
	m := startMtad(t, map[string]string{
		"imta.cnf": fmt.Sprintf(`! interop: mtad delivering to Dovecot over LMTP
mtad.test          $U%%$D@mtad.test
tcp.store.test     $U%%$D@lmtp_tcp-daemon
sock.store.test    $U%%$D@lmtp_sock-daemon

l
mtad.test

tcp_local smtp nomx single_sys identnonenumeric
tcp-daemon

lmtp_tcp lmtp daemon 127.0.0.1 port %d
lmtp_tcp-daemon

lmtp_sock lmtp daemon %s
lmtp_sock-daemon
`, dc.lmtpPort, dc.lmtpSocket),
		"option.dat": "LOG_CONNECTION=3\nLOG_MESSAGE_ID=1\n",
	})

	cases := []struct {
		channel, domain, remoteMTA string // remoteMTA "": no Remote-MTA field
	}{
		{"lmtp_tcp", "tcp.store.test", "dns; 127.0.0.1"},
		{"lmtp_sock", "sock.store.test", ""},
	}
	sent := map[string]transaction{}
	ids := map[string]string{}
	for _, c := range cases {
		tx := transaction{
			mail: "MAIL FROM:<sender@mtad.test> ENVID=" + c.channel + "-envid",
			rcpts: []string{
				"RCPT TO:<anna@" + c.domain + "> NOTIFY=SUCCESS,FAILURE",
				"RCPT TO:<ghost@" + c.domain + ">",
			},
			content: message("sender@mtad.test", "anna@"+c.domain+", ghost@"+c.domain, "via-"+c.channel,
				"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
				"Stored by Dovecot, reached over "+c.channel+".\r\n.A dot line.\r\nnaïve café\r\n"),
		}
		sent[c.channel] = tx
		ids[c.channel] = queueID(t, submit(t, m.addr, "client.test", tx))
	}

	anna := waitMaildir(t, dc.mailbox("anna"), len(cases))
	// One notice per message and event: a failure notice and a success notice
	// for each message.
	notices := noticesIn(waitMaildir(t, m.mailbox("sender"), 2*len(cases)))
	if len(notices) != 2*len(cases) {
		t.Fatalf("sender got %d notices, want a failure and a success notice per message (%d)", len(notices), 2*len(cases))
	}
	for _, c := range cases {
		t.Run(c.channel, func(t *testing.T) {
			fields := traceFields(t, withSubject(t, anna, "via-"+c.channel), sent[c.channel].content)
			rcvd := fieldsNamed(fields, "Received")
			if len(rcvd) != 2 || !strings.Contains(rcvd[0], " with LMTP ") ||
				!strings.HasPrefix(rcvd[1], "Received: from client.test ([127.0.0.1]) by mtad.test (mtad) with ESMTP id ") {
				t.Errorf("Received: fields %q, want Dovecot's over mtad's", rcvd)
			}
			id := ids[c.channel]
			m.waitLog(t, "D record of anna", func(l string) bool {
				return containsAll(l, " "+c.channel+" D ", " "+id+" ", " anna@"+c.domain+" ", "lmtp;250 2.0.0 <anna@"+c.domain+"> ")
			})
			m.waitLog(t, "R record of ghost", func(l string) bool {
				return containsAll(l, " "+c.channel+" R ", " "+id+" ", " ghost@"+c.domain+" ", "lmtp;550 5.1.1 ")
			})

			failure, success := reportsAbout(t, notices, c.channel+"-envid")
			success.checkSuccessWording(t)
			a := success.recipient(t, "anna@"+c.domain)
			if a.Get("Action") != "delivered" || !strings.HasPrefix(a.Get("Status"), "2.") {
				t.Errorf("anna: Action %q Status %q, want delivered 2.x.x", a.Get("Action"), a.Get("Status"))
			}
			g := failure.recipient(t, "ghost@"+c.domain)
			if g.Get("Action") != "failed" || g.Get("Status") != "5.1.1" {
				t.Errorf("ghost: Action %q Status %q, want failed 5.1.1", g.Get("Action"), g.Get("Status"))
			}
			if got := g.Get("Diagnostic-Code"); !strings.HasPrefix(got, "smtp; 550 5.1.1 ") || !strings.Contains(got, "ghost@"+c.domain) {
				t.Errorf("ghost: Diagnostic-Code %q, want Dovecot's 550 typed smtp", got)
			}
			if got := g.Get("Remote-MTA"); got != c.remoteMTA {
				t.Errorf("ghost: Remote-MTA %q, want %q", got, c.remoteMTA)
			}
		})
	}
	if log := dc.log(); strings.Count(log, "saved mail to INBOX") != len(cases) {
		t.Errorf("Dovecot's log does not show %d deliveries:\n%s", len(cases), log)
	}
}

// reportsAbout returns the failure notice and the success notice about the
// message with ENVID envid, each of which must report one recipient.
func reportsAbout(t *testing.T, notices [][]byte, envid string) (failure, success report) {
	t.Helper()
	var found int
	for _, raw := range notices {
		r := parseReport(t, raw)
		if r.perMsg.Get("Original-Envelope-Id") != envid {
			continue
		}
		found++
		if len(r.rcpts) != 1 {
			t.Errorf("a notice about %s reports %d recipients, want 1:\n%s", envid, len(r.rcpts), raw)
		}
		switch subj := r.header.Get("Subject"); {
		case strings.Contains(subj, "Failure"):
			failure = r
		case strings.Contains(subj, "Success"):
			success = r
		default:
			t.Errorf("a notice about %s has the subject %q", envid, subj)
		}
	}
	if found != 2 || failure.perMsg == nil || success.perMsg == nil {
		t.Fatalf("want one failure and one success notice about %s, found %d notices", envid, found)
	}
	return failure, success
}
