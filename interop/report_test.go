package interop

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
)

// report is a delivery status notification (RFC 3464) as it was stored: mtad's or
// a peer's, read with the standard library only, so that what is checked is the
// format and not one implementation's idea of it.
type report struct {
	header mail.Header
	perMsg textproto.MIMEHeader   // the per-message fields
	rcpts  []textproto.MIMEHeader // one block per recipient
	parts  []string               // each part's Content-Description
}

// parseReport reads a stored notice; it fails the test when it is not a
// multipart/report with a message/delivery-status part.
func parseReport(t *testing.T, raw []byte) report {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("notice unreadable: %v\n%s", err, raw)
	}
	rep := report{header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("notice is not a multipart/report of delivery status (%q, %v):\n%s", mt, err, raw)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("notice part: %v\n%s", err, raw)
		}
		rep.parts = append(rep.parts, p.Header.Get("Content-Description"))
		if ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct == "message/delivery-status" {
			rep.perMsg, rep.rcpts = readStatusBlocks(t, p)
		}
		io.Copy(io.Discard, p)
	}
	if rep.perMsg == nil || len(rep.rcpts) == 0 {
		t.Fatalf("notice has no delivery-status fields:\n%s", raw)
	}
	return rep
}

// readStatusBlocks reads the blocks of a message/delivery-status body: the
// per-message block, then one per recipient, separated by blank lines.
func readStatusBlocks(t *testing.T, body io.Reader) (textproto.MIMEHeader, []textproto.MIMEHeader) {
	t.Helper()
	br := bufio.NewReader(body)
	var perMsg textproto.MIMEHeader
	var rcpts []textproto.MIMEHeader
	for {
		// blank lines between or after the blocks
		for {
			b, err := br.Peek(1)
			if err != nil {
				return perMsg, rcpts
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			br.ReadByte()
		}
		h, err := textproto.NewReader(br).ReadMIMEHeader()
		if err != nil && err != io.EOF {
			t.Fatalf("delivery-status fields: %v", err)
		}
		if perMsg == nil {
			perMsg = h
		} else {
			rcpts = append(rcpts, h)
		}
		if err == io.EOF {
			return perMsg, rcpts
		}
	}
}

// recipient returns the block whose Final-Recipient is addr (the "rfc822;" type
// and blanks as each MTA writes them ignored), or fails the test.
func (r report) recipient(t *testing.T, addr string) textproto.MIMEHeader {
	t.Helper()
	for _, b := range r.rcpts {
		if typed(b.Get("Final-Recipient")) == strings.ToLower(addr) {
			return b
		}
	}
	t.Fatalf("notice has no block for %s: %v", addr, r.rcpts)
	return nil
}

// typed returns the value of a typed field ("rfc822; a@b", "rfc822;a@b") without
// its type, lower-cased.
func typed(v string) string {
	_, val, ok := strings.Cut(v, ";")
	if !ok {
		return strings.ToLower(strings.TrimSpace(v))
	}
	return strings.ToLower(strings.TrimSpace(val))
}

// noticesIn returns the messages of a mailbox that are delivery status
// notifications.
func noticesIn(msgs [][]byte) [][]byte {
	var out [][]byte
	for _, m := range msgs {
		if bytes.Contains(m, []byte("report-type=delivery-status")) || bytes.Contains(m, []byte("report-type=\"delivery-status\"")) {
			out = append(out, m)
		}
	}
	return out
}

// checkSuccessWording fails the test when a success notice (delivered, relayed)
// describes a part as undelivered.
func (r report) checkSuccessWording(t *testing.T) {
	t.Helper()
	for _, d := range r.parts {
		if strings.Contains(strings.ToLower(d), "undelivered") {
			t.Errorf("success notice has a part described as %q (parts: %q)", d, r.parts)
		}
	}
}
