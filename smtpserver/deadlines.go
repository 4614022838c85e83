package smtpserver

import (
	"errors"
	"net"
	"strconv"
	"time"

	"mtad.dev/mta/status"
)

// How long a client may hold a connection, and what it may do before the banner.
//
// Each read has its own inactivity limit (greeting, command, DATA block). That
// alone lets a client that sends one byte just inside the limit hold its
// connection for ever, and with it one of the server's MaxConns slots: a hundred
// such clients keep everyone else at 421. Two bounds close that hole, both in
// Timeouts and both checked at every read, which is given the earliest of its
// deadlines:
//
//   - the DATA phase may last DataBlock plus the time its bytes take at
//     MinDataRate: every n bytes read move its deadline n/rate seconds on (the
//     idea of Postfix's smtpd_min_data_rate). A client that keeps up the rate is
//     never cut off; one that dribbles is, after about DataBlock.
//   - the session may last Session plus the time its message bytes are worth at
//     the same rate, counted up to each message's size limit so that an endless
//     message does not buy endless time.
//
// A read that reaches either deadline ends the session with 421 4.4.2 (cutOff):
// the C record gives that reply as its reason, the daemon's log has a warning
// line whatever LOG_CONNECTION says, a cut in DATA writes the transaction's J
// records, and mtad_smtp_rejections_total counts it as "too_slow".
//
// Before the banner, a channel's BannerDelay holds the 220 back; a client that
// talks meanwhile is refused with 554 (earlyTalker), as Exim's banner delay and
// Postfix's postscreen pregreet test do: a legitimate client waits for the
// greeting (RFC 5321 §3.1), spam engines often do not.

// Why a session was cut off.
const (
	cutDataRate = "data rate"
	cutSession  = "session time"
)

// earned is the time n bytes of message are worth at the minimum data rate.
func (t Timeouts) earned(n int64) time.Duration {
	r := t.MinDataRate
	if r <= 0 || n <= 0 {
		return 0
	}
	// in two parts, so that a long session's byte count cannot overflow
	return time.Duration(n/r)*time.Second + time.Duration(n%r)*time.Second/time.Duration(r)
}

// timeouts are the limits of the session now: those of its source channel.
func (c *conn) timeouts() Timeouts { return c.pol.timeouts(c.src) }

// sessionEnd is when the session's time is up; ok is false when it has no bound.
func (c *conn) sessionEnd() (end time.Time, ok bool) {
	t := c.timeouts()
	if t.Session <= 0 {
		return time.Time{}, false
	}
	return c.start.Add(t.Session + t.earned(c.credited)), true
}

// readDeadline is the deadline of a read that may wait idle for d: d from now,
// or the end of the session when that comes first (cut then says so).
func (c *conn) readDeadline(d time.Duration) (deadline time.Time, cut string) {
	deadline = time.Now().Add(d)
	if end, ok := c.sessionEnd(); ok && end.Before(deadline) {
		return end, cutSession
	}
	return deadline, ""
}

// deadline is the deadline of the next wait for more of the message: the DATA
// block timeout, the DATA phase's bound at the minimum rate, or the session's,
// whichever comes first.
func (r *dataReader) deadline() (deadline time.Time, cut string) {
	t := r.c.timeouts()
	deadline, cut = r.c.readDeadline(t.dataBlock())
	if t.MinDataRate > 0 {
		if end := r.start.Add(t.dataBlock() + t.earned(r.got)); end.Before(deadline) {
			return end, cutDataRate
		}
	}
	return deadline, cut
}

// counted notes n more bytes of the message read from the wire: they move the
// DATA phase's deadline, and, up to the message's size limit, the session's.
func (r *dataReader) counted(n int) {
	r.got += int64(n)
	credit := min(int64(n), r.creditLeft)
	r.creditLeft -= credit
	r.c.credited += credit
}

// isCut tells whether a read that failed with err ended at a deadline cut names
// rather than at its inactivity limit, a shutdown or the client leaving.
func (c *conn) isCut(err error, cut string) bool {
	var ne net.Error
	return cut != "" && errors.As(err, &ne) && ne.Timeout() && !c.srv.closing.Load() && !c.dead.Load()
}

// cutStatus is the reply of a session cut off for why (cutDataRate,
// cutSession).
func (c *conn) cutStatus(why string) *status.Status {
	host := c.pol.hostname()
	if why == cutDataRate {
		return status.New(421, "4.4.2", "%s Error: message data below the minimum rate of %d bytes per second, closing connection",
			host, c.timeouts().MinDataRate)
	}
	return status.New(421, "4.4.2", "%s Error: session time limit exceeded, closing connection", host)
}

// cutOff ends a session that ran out of time with 421 4.4.2, counts it and
// logs it.
func (c *conn) cutOff(why string) {
	st := c.cutStatus(why)
	c.srv.cfg.Metrics.Rejection("too_slow")
	c.srv.log.Warn("slow client cut off", "conn", c.id, "remote", c.remote, "channel", c.src, "limit", why,
		"session", time.Since(c.start).Round(time.Millisecond), "reply", st.Error())
	c.bye(smtpErr(st))
}

// greetingWait holds the banner back for the session channel's BannerDelay,
// unless the client is exempt; ok is false when the session ended meanwhile (an
// early talker, refused, or a client that left).
func (c *conn) greetingWait() (ok bool) {
	d := c.timeouts().BannerDelay
	if d <= 0 || c.pol.bannerDelayExempt(c.remote.Addr()) {
		return true
	}
	deadline, _ := c.readDeadline(d)
	c.nc.SetReadDeadline(deadline)
	_, err := c.br.Peek(1)
	var ne net.Error
	switch {
	case err == nil:
		c.earlyTalker()
		return false
	case errors.As(err, &ne) && ne.Timeout():
		return true // silence: the client waits for the banner, as it should
	}
	c.readFailed(err, "banner delay")
	return false
}

// earlyTalker refuses a client that sent something before the banner: 554, a J
// record carrying its address, and the connection closed. The reply is written
// as it is, not through reply: it is no bad command to count.
func (c *conn) earlyTalker() {
	sent, _ := c.br.Peek(min(c.br.Buffered(), 64))
	st := status.New(554, "5.5.0", "%s Error: SMTP synchronization error: input before the greeting", c.pol.hostname())
	c.srv.log.Info("early talker refused", "conn", c.id, "remote", c.remote, "channel", c.src, "sent", strconv.Quote(string(sent)))
	c.srv.cfg.Metrics.Rejection("early_talker")
	c.sess.logEarlyTalker(st)
	rep := smtpErr(st)
	c.out = rep.appendTo(c.out)
	c.flushOut()
	c.ending(rep.String())
	c.Close()
}
