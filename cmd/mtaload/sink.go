package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// sink is a minimal ESMTP server that accepts every message and records when each
// X-Mtaload-Id arrived. It answers pipelined commands with one write per group (it
// flushes when no more input is buffered), as a real MTA would.
type sink struct {
	ln       net.Listener
	mu       sync.Mutex
	seen     map[uint64][]time.Time // id -> arrival time(s); more than one is a duplicate
	distinct int                    // ids seen at least once
	anon     int                    // messages without a usable id
	cond     *sync.Cond
	wg       sync.WaitGroup
}

func startSink(addr string) (*sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	s := &sink{ln: ln, seen: make(map[uint64][]time.Time)}
	s.cond = sync.NewCond(&s.mu)
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *sink) Addr() string { return s.ln.Addr().String() }

func (s *sink) Close() {
	s.ln.Close()
	s.wg.Wait()
}

func (s *sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

// session speaks just enough SMTP for an MTA's client: no checks, no limits.
func (s *sink) session(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 32<<10)
	w := bufio.NewWriterSize(c, 4096)
	reply := func(line string) bool {
		w.WriteString(line)
		w.WriteString("\r\n")
		if r.Buffered() > 0 {
			return true // more pipelined commands to answer first
		}
		return w.Flush() == nil
	}
	if !reply("220 mtaload-sink ESMTP") {
		return
	}
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		verb := string(bytes.ToUpper(firstWord(line)))
		ok := true
		switch verb {
		case "EHLO":
			ok = reply("250-mtaload-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES")
		case "HELO":
			ok = reply("250 mtaload-sink")
		case "DATA":
			if !reply("354 go ahead") || w.Flush() != nil {
				return
			}
			id, err := readMessage(r)
			if err != nil {
				return
			}
			s.arrived(id, time.Now())
			ok = reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			w.Flush()
			return
		default: // MAIL, RCPT, RSET, NOOP and anything else
			ok = reply("250 2.0.0 ok")
		}
		if !ok {
			return
		}
	}
}

func firstWord(line []byte) []byte {
	line = bytes.TrimRight(line, "\r\n")
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		return line[:i]
	}
	return line
}

var idHeader = []byte("X-Mtaload-Id:")

// readMessage reads one message up to the terminating "." line and returns its
// X-Mtaload-Id (-1 when absent or unreadable). Only the header section is searched.
func readMessage(r *bufio.Reader) (int64, error) {
	id := int64(-1)
	inHeader := true
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// a very long line: skip it in pieces
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				return id, err
			}
			continue
		}
		if err != nil {
			return id, err
		}
		if len(line) >= 2 && line[0] == '.' && (line[1] == '\r' || line[1] == '\n') {
			return id, nil
		}
		if !inHeader {
			continue
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			inHeader = false
			continue
		}
		if id < 0 {
			id = parseID(line)
		}
	}
}

// parseID reads "X-Mtaload-Id: 123" (case-insensitive name); -1 when it is not one.
func parseID(line []byte) int64 {
	if len(line) < len(idHeader) || !bytes.EqualFold(line[:len(idHeader)], idHeader) {
		return -1
	}
	v := bytes.TrimSpace(line[len(idHeader):])
	n, err := strconv.ParseUint(string(v), 10, 62)
	if err != nil {
		return -1
	}
	return int64(n)
}

func (s *sink) arrived(id int64, t time.Time) {
	s.mu.Lock()
	if id < 0 {
		s.anon++
	} else {
		if len(s.seen[uint64(id)]) == 0 {
			s.distinct++
		}
		s.seen[uint64(id)] = append(s.seen[uint64(id)], t)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

// waitFor blocks until n distinct ids have arrived or deadline passes.
func (s *sink) waitFor(n int, deadline time.Time) {
	stop := time.AfterFunc(time.Until(deadline), func() {
		s.mu.Lock()
		s.mu.Unlock()
		s.cond.Broadcast()
	})
	defer stop.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.distinct < n && time.Now().Before(deadline) {
		s.cond.Wait()
	}
}

// snapshot returns the first arrival per id and the number of extra arrivals.
func (s *sink) snapshot() (first map[uint64]time.Time, dups, anon int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first = make(map[uint64]time.Time, len(s.seen))
	for id, ts := range s.seen {
		first[id] = ts[0]
		dups += len(ts) - 1
	}
	return first, dups, s.anon
}
