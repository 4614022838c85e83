package daemon

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// deliveryReport is what the notice tests read of a delivery status notification
// found in a Maildir: its subject, the per-message fields and one set of fields per
// recipient of its message/delivery-status part, and the type of the part that
// returns the original.
type deliveryReport struct {
	subject  string
	perMsg   textproto.Header
	rcpts    []textproto.Header
	original string
}

// parseReport reads a notice (as stored in a Maildir, trace fields first).
func parseReport(t *testing.T, raw []byte) deliveryReport {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("notice unreadable: %v\n%s", err, raw)
	}
	rep := deliveryReport{subject: e.Header.Get("Subject")}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("notice is not multipart:\n%s", raw)
	}
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			return rep
		}
		if err != nil {
			t.Fatalf("notice part %d: %v", i, err)
		}
		ct, _, _ := p.Header.ContentType()
		switch {
		case ct == "message/delivery-status":
			rep.perMsg, rep.rcpts = readStatusFields(t, p.Body)
		case i == 2:
			rep.original = ct
		}
		io.Copy(io.Discard, p.Body)
	}
}

// readStatusFields reads the blocks of a message/delivery-status body: the
// per-message block, then one per recipient.
func readStatusFields(t *testing.T, body io.Reader) (textproto.Header, []textproto.Header) {
	t.Helper()
	br := bufio.NewReader(body)
	var perMsg textproto.Header
	var rcpts []textproto.Header
	for first := true; ; first = false {
		h, err := textproto.ReadHeader(br)
		if err != nil {
			t.Fatalf("delivery-status fields: %v", err)
		}
		if first {
			perMsg = h
		} else {
			rcpts = append(rcpts, h)
		}
		if _, err := br.Peek(1); err != nil {
			return perMsg, rcpts
		}
	}
}

// recipientFields returns the block of the recipient whose Final-Recipient is
// "rfc822; addr", or nil.
func (r deliveryReport) recipientFields(addr string) *textproto.Header {
	for i := range r.rcpts {
		if r.rcpts[i].Get("Final-Recipient") == "rfc822; "+addr {
			return &r.rcpts[i]
		}
	}
	return nil
}
