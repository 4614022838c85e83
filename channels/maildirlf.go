package channels

import (
	"bytes"
	"io"
)

// copyLF copies src to dst with every CRLF turned into LF and every other byte
// as it is (a bare CR or a bare LF stays). The queue stores a message in the
// wire form, CRLF; Maildir readers and writers (qmail, Postfix's local, Dovecot,
// Courier) store LF, and a file in the CRLF form shows up in some of them with a
// stray CR at the end of every line. read is what was taken from src, written
// what went to dst.
func copyLF(dst io.Writer, src io.Reader) (read, written int64, err error) {
	in := make([]byte, 32<<10)
	out := make([]byte, 0, len(in)+1)
	heldCR := false // the previous chunk ended in a CR: it is written once we know what follows
	for {
		n, rerr := src.Read(in)
		read += int64(n)
		out = out[:0]
		chunk := in[:n]
		if heldCR && n > 0 {
			if chunk[0] != '\n' {
				out = append(out, '\r')
			}
			heldCR = false
		}
		if n > 0 && chunk[n-1] == '\r' {
			heldCR, chunk = true, chunk[:n-1]
		}
		out = appendLF(out, chunk)
		if rerr == io.EOF && heldCR {
			out = append(out, '\r') // a CR at the very end is not followed by LF
		}
		if len(out) > 0 {
			w, werr := dst.Write(out)
			written += int64(w)
			if werr != nil {
				return read, written, werr
			}
		}
		if rerr == io.EOF {
			return read, written, nil
		}
		if rerr != nil {
			return read, written, rerr
		}
	}
}

// appendLF appends b to out with every CRLF in it turned into LF.
func appendLF(out, b []byte) []byte {
	for {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return append(out, b...)
		}
		out = append(out, b[:i]...)
		out = append(out, '\n')
		b = b[i+2:]
	}
}
