package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// postfix is a throwaway Postfix instance: its configuration (etc/), queue
// (queue/), data directory (data/), mailboxes (vmail/) and log (maillog) all live
// under one directory of the test. It is started with `postfix -c DIR start`, as
// the benchmarks start theirs, and never touches /etc/postfix, the system queue or
// a system Postfix on port 25.
type postfix struct {
	dir string
	etc string
}

// postfixConfig is what a test asks of its Postfix.
type postfixConfig struct {
	// relayPort is mtad's SMTP port: Postfix sends every message it does not
	// store itself there (relayhost = [127.0.0.1]:relayPort).
	relayPort int
	// mailboxes are the addresses Postfix stores, each in a Maildir of its own
	// (vmail/DOMAIN/LOCAL/) written by its virtual(8) delivery agent as the user
	// nobody. Their domains are Postfix's virtual mailbox domains.
	mailboxes []string
	// listeners are the smtpd services, one per loopback port.
	listeners []postfixListener
}

// postfixListener is one smtpd service of master.cf.
type postfixListener struct {
	port int
	// overrides are main.cf parameters this service sets for itself
	// ("smtpd_discard_ehlo_keywords=dsn").
	overrides []string
}

// postfixHostname is the name Postfix gives itself in EHLO, Received: and its
// notices' Reporting-MTA.
const postfixHostname = "mx.pf.test"

// requirePostfix skips the test unless a Postfix instance can be started here:
// the program, root (its master starts as root and its daemons drop to the
// postfix user) and the users it runs as.
func requirePostfix(t *testing.T) {
	t.Helper()
	requireProgram(t, "postfix", "postfix")
	requireRoot(t, "postfix's master runs as root")
	requireUser(t, "postfix")
	requireUser(t, "nobody")
}

// startPostfix writes main.cf and master.cf, starts the instance, waits until
// every listener accepts connections, and stops the instance in t.Cleanup.
func startPostfix(t *testing.T, cfg postfixConfig) *postfix {
	t.Helper()
	dir := peerDir(t)
	p := &postfix{dir: dir, etc: filepath.Join(dir, "etc")}
	postfixUID, _ := requireUser(t, "postfix")
	vmailUID, vmailGID := requireUser(t, "nobody")
	for _, d := range []string{"etc", "queue", "data", "vmail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Postfix insists that its data directory belongs to mail_owner, and the
	// virtual delivery agent writes the Maildirs as the mailbox user.
	if err := os.Chown(filepath.Join(dir, "data"), postfixUID, -1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "vmail"), vmailUID, vmailGID); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(p.etc, "main.cf"), p.mainCf(cfg, vmailUID, vmailGID))
	writeFile(t, filepath.Join(p.etc, "master.cf"), postfixMasterCf(cfg.listeners))

	t.Cleanup(func() { p.stop(t) })
	if out, err := run(t, startWithin, "", "postfix", "-c", p.etc, "start"); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, tail(p.maillog(), 20))
	}
	for _, l := range cfg.listeners {
		waitListening(t, "tcp", fmt.Sprintf("127.0.0.1:%d", l.port), func() string { return tail(p.maillog(), 20) })
	}
	return p
}

// mainCf is Postfix's defaults except: its own directories, a loopback-only
// listener, no local delivery, the test's mailboxes stored by virtual(8),
// everything else relayed to mtad, nothing that could make a DNS query, and
// header fields left as the client wrote them (so the content arrives byte-exact).
func (p *postfix) mainCf(cfg postfixConfig, uid, gid int) string {
	var domains, maps []string
	for _, a := range cfg.mailboxes {
		local, domain, _ := strings.Cut(a, "@")
		if !slices.Contains(domains, domain) {
			domains = append(domains, domain)
		}
		maps = append(maps, a+"="+domain+"/"+local+"/")
	}
	return fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = %[2]s
mydomain = pf.test
myorigin = $myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled
alias_maps =
alias_database =
relayhost = [127.0.0.1]:%[3]d
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
local_header_rewrite_clients =
biff = no
virtual_mailbox_domains = %[4]s
virtual_mailbox_base = %[1]s/vmail
virtual_mailbox_maps = inline:{ %[5]s }
virtual_uid_maps = static:%[6]d
virtual_gid_maps = static:%[7]d
`, p.dir, postfixHostname, cfg.relayPort, strings.Join(domains, " "), strings.Join(maps, ", "), uid, gid)
}

// postfixMasterCf is Debian's master.cf without the chroot (the instance has no
// jail) and without the pipe-based extras, with one smtpd per listener.
func postfixMasterCf(listeners []postfixListener) string {
	var b strings.Builder
	for _, l := range listeners {
		fmt.Fprintf(&b, "127.0.0.1:%d inet n - n - - smtpd", l.port)
		for _, o := range l.overrides {
			b.WriteString(" -o " + o)
		}
		b.WriteString("\n")
	}
	b.WriteString(`pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`)
	return b.String()
}

func (p *postfix) maillog() string { return filepath.Join(p.dir, "maillog") }

// mailbox is the new/ directory of a Maildir Postfix stores addr in.
func (p *postfix) mailbox(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return filepath.Join(p.dir, "vmail", domain, local, "new")
}

// logLines returns Postfix's maillog lines.
func (p *postfix) logLines() []string { return fileLines(p.maillog()) }

// waitLog waits until a maillog line satisfies ok and returns it.
func (p *postfix) waitLog(t *testing.T, what string, ok func(string) bool) string {
	t.Helper()
	return waitLine(t, p.maillog(), what, ok)
}

// masterPID is the instance's master process id, 0 when it is not running.
func (p *postfix) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.dir, "queue", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !running(pid) {
		return 0
	}
	return pid
}

// stop stops the instance: `postfix stop`, then `postfix abort`, then SIGKILL for
// this instance's master and the daemons it started, each step bounded.
func (p *postfix) stop(t *testing.T) {
	pid := p.masterPID()
	if pid == 0 {
		return
	}
	kids := childPIDs(pid)
	run(t, stopWithin, "", "postfix", "-c", p.etc, "stop")
	if waitGone(pid, stopWithin) {
		return
	}
	run(t, stopWithin, "", "postfix", "-c", p.etc, "abort")
	if !waitGone(pid, 2*time.Second) {
		killAll(append(kids, childPIDs(pid)...), pid)
	}
	t.Errorf("postfix -c %s stop did not stop the master (pid %d) in %v", p.etc, pid, stopWithin)
}
