package interop

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// postfixPeerCnf is mtad's configuration facing a Postfix instance: mtad.test is
// delivered to mtad's own Maildirs; pf.test and nodsn.test are Postfix's, on two
// listeners of one instance (the second one does not offer DSN).
func postfixPeerCnf(pfPort, noDSNPort int) map[string]string {
	return map[string]string{
		"imta.cnf": fmt.Sprintf(`! interop: mtad between a client and a Postfix instance
mtad.test       $U%%$D@mtad.test
pf.test         $U%%$D@tcp_pf-daemon
nodsn.test      $U%%$D@tcp_nodsn-daemon

l
mtad.test

tcp_local smtp nomx single_sys identnonenumeric
tcp-daemon

tcp_pf smtp nomx single_sys daemon 127.0.0.1 port %d
tcp_pf-daemon

tcp_nodsn smtp nomx single_sys daemon 127.0.0.1 port %d
tcp_nodsn-daemon
`, pfPort, noDSNPort),
		"option.dat": "LOG_CONNECTION=3\nLOG_MESSAGE_ID=1\n",
	}
}

// TestPostfixToMtad: Postfix relays a client's mail to mtad (relayhost), as an
// edge MTA in front of mtad would. A plain message with a leading dot (stuffed on
// both hops), an 8-bit one (BODY=8BITMIME) and one asking NOTIFY=SUCCESS arrive in
// mtad's Maildir byte-exact in its LF form under the trace fields of both MTAs;
// mtad's Received: names Postfix's EHLO and address; mtad's mail.log has the
// session and the queue id Postfix logged; and the delivered notice goes back to
// the sender through Postfix, which stores it: mtad offers DSN, so Postfix passed
// the request on instead of reporting "relayed" itself.
func TestPostfixToMtad(t *testing.T) {
	t.Parallel()
	requirePostfix(t)
	pfPort := freePort(t)
	m := startMtad(t, postfixPeerCnf(pfPort, freePort(t)))
	pf := startPostfix(t, postfixConfig{
		relayPort: portOf(t, m.addr),
		mailboxes: []string{"sender@pf.test"},
		listeners: []postfixListener{{port: pfPort}},
	})
	pfAddr := fmt.Sprintf("127.0.0.1:%d", pfPort)

	msgs := []struct {
		subject string
		tx      transaction
	}{
		{"pf-plain", transaction{
			mail:  "MAIL FROM:<sender@pf.test>",
			rcpts: []string{"RCPT TO:<user@mtad.test>"},
			content: message("sender@pf.test", "user@mtad.test", "pf-plain", "",
				"A plain message.\r\n.A line that starts with a dot.\r\n..Two dots.\r\nTrailing blanks  \r\n\ttab\r\n"),
		}},
		{"pf-8bit", transaction{
			mail:  "MAIL FROM:<sender@pf.test> BODY=8BITMIME",
			rcpts: []string{"RCPT TO:<user@mtad.test>"},
			content: message("sender@pf.test", "user@mtad.test", "pf-8bit",
				"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
				"Grüße aus Köln, café, naïve, 東京\r\n"),
		}},
		{"pf-notify", transaction{
			mail:    "MAIL FROM:<sender@pf.test> RET=HDRS ENVID=pf-notify-envid",
			rcpts:   []string{"RCPT TO:<user@mtad.test> NOTIFY=SUCCESS ORCPT=rfc822;user@mtad.test"},
			content: message("sender@pf.test", "user@mtad.test", "pf-notify", "", "Tell me when it is delivered.\r\n"),
		}},
	}
	pfIDs := map[string]string{}
	for _, msg := range msgs {
		pfIDs[msg.subject] = queueID(t, submit(t, pfAddr, "client.pf.test", msg.tx))
	}

	stored := waitMaildir(t, m.mailbox("user"), len(msgs))
	for _, msg := range msgs {
		t.Run(msg.subject, func(t *testing.T) {
			// Postfix's log names the queue id mtad answered with; mtad's log
			// has that id with Postfix's EHLO and address.
			sent := pf.waitLog(t, "status=sent of "+pfIDs[msg.subject], func(l string) bool {
				return containsAll(l, pfIDs[msg.subject]+": to=<user@mtad.test>", "status=sent", "queued as")
			})
			id := queueID(t, sent)
			e := m.waitLog(t, "E record of "+id, func(l string) bool {
				return containsAll(l, " tcp_local l EE ", " "+id+" ", " sender@pf.test ", " mx.pf.test ([127.0.0.1])")
			})
			if !strings.Contains(e, "<"+msg.subject+"@interop.test>") {
				t.Errorf("E record without the Message-ID: %s", e)
			}
			m.waitLog(t, "D record of "+id, func(l string) bool {
				return containsAll(l, " l D ", " "+id+" ", "user@mtad.test")
			})

			fields := traceFields(t, withSubject(t, stored, msg.subject), msg.tx.content)
			rcvd := fieldsNamed(fields, "Received")
			if len(rcvd) != 2 {
				t.Fatalf("want mtad's and Postfix's Received:, got %q", rcvd)
			}
			if want := "Received: from " + postfixHostname + " ([127.0.0.1]) by mtad.test (mtad) with ESMTP id "; !strings.HasPrefix(rcvd[0], want) {
				t.Errorf("mtad's Received: %q, want it to start %q", rcvd[0], want)
			}
			if !strings.Contains(rcvd[1], "by "+postfixHostname+" (Postfix) with ESMTP id "+pfIDs[msg.subject]) {
				t.Errorf("second Received: %q is not Postfix's", rcvd[1])
			}
			if rp := fieldsNamed(fields, "Return-Path"); len(rp) != 1 || rp[0] != "Return-Path: <sender@pf.test>" {
				t.Errorf("Return-Path %q", rp)
			}
		})
	}

	// The connection records (LOG_CONNECTION=3) of Postfix's session, which ends
	// when Postfix's connection cache lets it go.
	m.waitLog(t, "connection record of Postfix's session", func(l string) bool {
		return containsAll(l, " tcp_local + C TCP|127.0.0.1|", "|127.0.0.1|", " SMTP/"+postfixHostname+" ")
	})

	// The notice comes back through Postfix and is the only one: the other two
	// messages asked for none, and Postfix reported nothing itself.
	notices := noticesIn(waitMaildir(t, pf.mailbox("sender@pf.test"), 1))
	if len(notices) != 1 {
		t.Fatalf("sender@pf.test got %d notices, want 1", len(notices))
	}
	rep := parseReport(t, notices[0])
	if got := rep.perMsg.Get("Reporting-MTA"); got != "dns; mtad.test" {
		t.Errorf("Reporting-MTA %q, want mtad's", got)
	}
	if got := rep.perMsg.Get("Original-Envelope-Id"); got != "pf-notify-envid" {
		t.Errorf("Original-Envelope-Id %q, want the ENVID Postfix passed on", got)
	}
	b := rep.recipient(t, "user@mtad.test")
	if b.Get("Action") != "delivered" || !strings.HasPrefix(b.Get("Status"), "2.") {
		t.Errorf("Action %q Status %q, want delivered 2.x.x", b.Get("Action"), b.Get("Status"))
	}
	if got := typed(b.Get("Original-Recipient")); got != "user@mtad.test" {
		t.Errorf("Original-Recipient %q, want the ORCPT Postfix passed on", b.Get("Original-Recipient"))
	}
	rep.checkSuccessWording(t)
	for _, l := range pf.logLines() {
		if strings.Contains(l, "delivery status notification") {
			t.Errorf("Postfix sent a notice of its own: %s", l)
		}
	}
}

// TestMtadToPostfix: mtad relays to Postfix as its next hop, and Postfix stores the
// mail in its own Maildirs. The content arrives byte-exact (in Postfix's LF form)
// under the trace fields; with Postfix offering DSN, mtad passes NOTIFY, ORCPT and
// ENVID on and sends no notice of its own, so the one delivered notice the sender
// gets is Postfix's; with DSN discarded at Postfix (smtpd_discard_ehlo_keywords =
// dsn), mtad reports "relayed" itself, since nobody after it will.
func TestMtadToPostfix(t *testing.T) {
	t.Parallel()
	requirePostfix(t)
	pfPort, noDSNPort := freePort(t), freePort(t)
	m := startMtad(t, postfixPeerCnf(pfPort, noDSNPort))
	pf := startPostfix(t, postfixConfig{
		relayPort: portOf(t, m.addr),
		mailboxes: []string{"bob@pf.test", "carol@nodsn.test"},
		listeners: []postfixListener{
			{port: pfPort},
			{port: noDSNPort, overrides: []string{"smtpd_discard_ehlo_keywords=dsn"}},
		},
	})

	withDSN := transaction{
		mail:  "MAIL FROM:<alice@mtad.test> RET=HDRS ENVID=to-pf-envid",
		rcpts: []string{"RCPT TO:<bob@pf.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob.original@pf.test"},
		content: message("alice@mtad.test", "bob@pf.test", "to-pf-dsn", "",
			"Postfix reports this one itself.\r\n.A dot line.\r\n"),
	}
	eightBit := transaction{
		mail:  "MAIL FROM:<alice@mtad.test> BODY=8BITMIME",
		rcpts: []string{"RCPT TO:<bob@pf.test>"},
		content: message("alice@mtad.test", "bob@pf.test", "to-pf-8bit",
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
			"Grüße, café, 東京\r\n"),
	}
	noDSN := transaction{
		mail:    "MAIL FROM:<alice@mtad.test> ENVID=to-nodsn-envid",
		rcpts:   []string{"RCPT TO:<carol@nodsn.test> NOTIFY=SUCCESS"},
		content: message("alice@mtad.test", "carol@nodsn.test", "to-nodsn", "", "Nobody after mtad reports this one.\r\n"),
	}
	ids := map[string]string{}
	for subject, tx := range map[string]transaction{"to-pf-dsn": withDSN, "to-pf-8bit": eightBit, "to-nodsn": noDSN} {
		ids[subject] = queueID(t, submit(t, m.addr, "client.test", tx))
	}

	// byte-exact at Postfix, under Postfix's trace fields and mtad's Received:
	bob := waitMaildir(t, pf.mailbox("bob@pf.test"), 2)
	carol := waitMaildir(t, pf.mailbox("carol@nodsn.test"), 1)
	for _, c := range []struct {
		subject string
		stored  []byte
		tx      transaction
	}{
		{"to-pf-dsn", withSubject(t, bob, "to-pf-dsn"), withDSN},
		{"to-pf-8bit", withSubject(t, bob, "to-pf-8bit"), eightBit},
		{"to-nodsn", withSubject(t, carol, "to-nodsn"), noDSN},
	} {
		fields := traceFields(t, c.stored, c.tx.content)
		rcvd := fieldsNamed(fields, "Received")
		if len(rcvd) != 2 || !strings.Contains(rcvd[0], "(Postfix) with ESMTP") ||
			!strings.HasPrefix(rcvd[1], "Received: from client.test ([127.0.0.1]) by mtad.test (mtad) with ESMTP id ") {
			t.Errorf("%s: Received: fields %q, want Postfix's over mtad's", c.subject, rcvd)
		}
		m.waitLog(t, "D record of "+c.subject, func(l string) bool {
			return containsAll(l, " D ", " "+ids[c.subject]+" ", "smtp;250 2.0.0 Ok: queued as ")
		})
	}

	// Two notices for alice: Postfix's delivered notice for bob, mtad's relayed
	// notice for carol. Postfix's arrives after mtad logged its delivery to Postfix
	// (a relayed notice of mtad's for bob would have been queued by then).
	notices := noticesIn(waitMaildir(t, m.mailbox("alice"), 2))
	if len(notices) != 2 {
		t.Fatalf("alice got %d notices, want 2 (Postfix's for bob, mtad's for carol)", len(notices))
	}
	var fromPostfix, fromMtad *report
	for _, raw := range notices {
		rep := parseReport(t, raw)
		switch rep.perMsg.Get("Reporting-MTA") {
		case "dns; " + postfixHostname:
			fromPostfix = &rep
		case "dns; mtad.test":
			fromMtad = &rep
		}
	}
	if fromPostfix == nil || fromMtad == nil {
		t.Fatalf("want one notice from Postfix and one from mtad:\n%s\n%s", notices[0], notices[1])
	}

	// Postfix's: it got the request with NOTIFY, ORCPT and ENVID.
	if got := fromPostfix.perMsg.Get("Original-Envelope-Id"); got != "to-pf-envid" {
		t.Errorf("Postfix's notice: Original-Envelope-Id %q, want the ENVID mtad passed on", got)
	}
	b := fromPostfix.recipient(t, "bob@pf.test")
	if b.Get("Action") != "delivered" {
		t.Errorf("Postfix's notice: Action %q, want delivered", b.Get("Action"))
	}
	if got := typed(b.Get("Original-Recipient")); got != "bob.original@pf.test" {
		t.Errorf("Postfix's notice: Original-Recipient %q, want the ORCPT mtad passed on", b.Get("Original-Recipient"))
	}

	// mtad's: relayed, for carol only.
	if len(fromMtad.rcpts) != 1 {
		t.Errorf("mtad's notice reports %d recipients, want carol only", len(fromMtad.rcpts))
	}
	c := fromMtad.recipient(t, "carol@nodsn.test")
	if c.Get("Action") != "relayed" || !strings.HasPrefix(c.Get("Status"), "2.") {
		t.Errorf("mtad's notice: Action %q Status %q, want relayed 2.x.x", c.Get("Action"), c.Get("Status"))
	}
	if got := fromMtad.perMsg.Get("Original-Envelope-Id"); got != "to-nodsn-envid" {
		t.Errorf("mtad's notice: Original-Envelope-Id %q", got)
	}
	fromMtad.checkSuccessWording(t)
	// The logs agree: Postfix's bounce daemon sent a notice for the message mtad
	// handed it, and mtad received it from Postfix's client; mtad itself queued one
	// notice for alice (E, from the local channel l, sender <>): carol's.
	d := m.waitLog(t, "D record of to-pf-dsn", func(l string) bool {
		return containsAll(l, " tcp_pf D ", " "+ids["to-pf-dsn"]+" ", " rfc822;bob.original@pf.test ")
	})
	pfID := queueID(t, d)
	dsnLine := pf.waitLog(t, "Postfix's success notice for "+pfID, func(l string) bool {
		return strings.Contains(l, pfID+": sender delivery status notification: ")
	})
	pfNotice := dsnLine[strings.LastIndex(dsnLine, " ")+1:]
	sent := pf.waitLog(t, "status=sent of "+pfNotice, func(l string) bool {
		return containsAll(l, pfNotice+": to=<alice@mtad.test>", "status=sent")
	})
	m.waitLog(t, "E record of Postfix's notice", func(l string) bool {
		return containsAll(l, " tcp_local l EE ", " <> rfc822;alice@mtad.test ", " "+queueID(t, sent)+" ")
	})
	own := regexp.MustCompile(`^\S+ \S+ l l E \d+ <> rfc822;alice@mtad\.test `)
	m.waitLog(t, "E record of mtad's notice", own.MatchString)
	var ownLines []string
	for _, l := range m.logLines() {
		if own.MatchString(l) {
			ownLines = append(ownLines, l)
		}
	}
	if len(ownLines) != 1 {
		t.Errorf("mtad queued %d notices for alice, want 1 (carol's):\n%s", len(ownLines), strings.Join(ownLines, "\n"))
	}
}
