package intake

import (
	"cmp"
	"log/slog"
	"strings"
	"time"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/maillog"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/metrics"
	"mtad.dev/mta/queue"
	"mtad.dev/mta/status"
)

// Intake is the accept step with what it writes to: the queue and the logs. One
// serves the whole daemon; it holds no per-message state.
type Intake struct {
	Queue   Enqueuer
	MailLog *maillog.Logger // E and J records; nil writes none
	Log     *slog.Logger    // diagnostics ("message forced .HELD"); nil discards
	Metrics *metrics.Hooks  // rewrite time; nil: none
}

func (in *Intake) logger() *slog.Logger {
	if in.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return in.Log
}

// Kind is the sort of submitter a transaction serves. It decides which access
// tables apply and whether refusals are logged (see the package comment).
type Kind uint8

const (
	SMTP     Kind = iota // an SMTP client
	Local                // local submission (mtactl sendmail)
	Handback             // a channel program handing queued mail back (reprocess, hold)
	Notice               // a delivery status notice of the job controller, or a filter's vacation answer
	Redirect             // a copy a Sieve filter redirected: no access tables, NOTIFY as given
	// Requeue is queued mail the postmaster routes again (qm requeue). Its
	// Channel is the message's original source channel, so that the rules see
	// the message as they would see it arriving now.
	Requeue
)

// SelfRoute says what a hand-back does with a recipient the rules route back to
// the channel that hands it back.
type SelfRoute uint8

const (
	// SelfRefuse refuses it (5.4.6): a reprocess channel would loop for ever.
	SelfRefuse SelfRoute = iota
	// SelfHold queues it .HELD again: the hold channel keeps what its rules
	// still send to it.
	SelfHold
)

// Origin is who submits a message, and how. It is fixed for a transaction.
type Origin struct {
	Kind Kind
	// Channel is the source channel: the channel the SMTP client is in, "l" for
	// local submission and notices, the handing channel for a hand-back.
	// Recipients are rewritten with it as the source.
	Channel string
	// Client is the SMTP client, for the FROM_ACCESS and *_MAIL_ACCESS probes;
	// required for Kind SMTP.
	Client *SMTPClient
	// In are the input flags of the access probes ($E EHLO, $T TLS, $A AUTH).
	In mappings.Flags
	// AuthUser is the user SMTP AUTH succeeded for, "" without AUTH
	// (FROM_ACCESS's auth-from).
	AuthUser string
	// Description is Envelope.Client: "helo ([ip])" for an SMTP client,
	// "localhost (...)" for the others; notices and qm show it.
	Description string
	// LogDescription puts Description on the E and J records (LOG_CONNECTION
	// bit 1).
	LogDescription bool
	// EnqueueCode is the code of the E records: "E", or "E" with the product's
	// modifiers for an SMTP session (E: EHLO was used, S: TLS, A: AUTH).
	EnqueueCode string
	// SelfRoute applies to Kind Handback.
	SelfRoute SelfRoute
}

func (o *Origin) conn() string {
	if o.LogDescription {
		return o.Description
	}
	return ""
}

// accessed reports whether the recipient access tables apply to the origin.
// SEND_ACCESS (and MAIL_ACCESS) apply to a requeued message too: the
// configuration in force may refuse what an older one accepted.
func (o *Origin) accessed() bool { return o.Kind == SMTP || o.Kind == Local || o.Kind == Requeue }

// checksOriginal reports whether ORIG_SEND_ACCESS and ORIG_MAIL_ACCESS apply.
// They judge the address a client gave, before alias expansion; a requeued
// recipient is one that expansion produced from an address accepted when the
// message arrived (a local user forwarding to another domain would read as a
// relay), so only the tables on expanded recipients apply to it.
func (o *Origin) checksOriginal() bool { return o.Kind == SMTP || o.Kind == Local }

// logsRefusals reports whether a refusal is logged J. A requeued recipient
// that is refused was queued (it has its E line); the caller returns it to
// the sender, which logs R, so a J line would tell a second, false story.
func (o *Origin) logsRefusals() bool { return o.Kind == SMTP || o.Kind == Local }

// Transaction gathers the recipients of one message until Accept.
type Transaction struct {
	in     *Intake
	rules  *Rules
	origin Origin
	from   string

	rcpts []*entry
	seen  map[string]*entry // by lower(channel + NUL + address)
	calls int               // AddRecipient calls so far

	held    string // set by an access entry's $H
	discard bool   // set by an access entry's $V or $Z

	auth           AuthChecks        // sender authentication of an SMTP transaction; nil: none
	verdict        string            // the DMARC verdict (AuthVerdict)
	senderChannels map[string]string // where each copy's sender routes (forwardSRS)
	variants       [][]byte          // contents the filters edited (FilteredRcpt); entry.variant-1 indexes it
}

// entry is one recipient the transaction will queue.
type entry struct {
	rcpt    queue.Recipient
	sender  string // owner-NAME of the list it came through; "" the message's own
	held    string // .HELD reason of this recipient alone (SelfHold)
	origins []int  // the AddRecipient calls that produced it
	variant int    // 0: the message's content; else the filters' edit (Transaction.variants)
	note    string // the filters' note for the E record
}

// Begin starts a transaction for the envelope sender from ("" is <>). For an
// SMTP client it runs FROM_ACCESS; a refusal is logged J and returned, and there
// is then no transaction.
func (in *Intake) Begin(rules *Rules, o Origin, from string) (*Transaction, *status.Status) {
	t := &Transaction{in: in, rules: rules, origin: o, from: from}
	if st := t.beginAuth(); st != nil {
		in.LogRefused(o, from, "", "", "", 0, st)
		return nil, st
	}
	if o.Kind == SMTP && o.Client != nil && rules.Access != nil {
		probe := t.withSPF(FromAccess, o.Client.FromProbe(o.Channel, from, o.AuthUser))
		if a, ok := rules.Access.Access(FromAccess, probe, o.In); ok {
			if a.Reject {
				st := accessStatus(a, from)
				in.LogRefused(o, from, "", "", "", 0, st)
				return nil, st
			}
			t.apply(a)
		}
	}
	return t, nil
}

// From is the transaction's envelope sender.
func (t *Transaction) From() string { return t.from }

// Rules are the rules the transaction began with.
func (t *Transaction) Rules() *Rules { return t.rules }

// Len is the number of distinct recipients the transaction will queue.
func (t *Transaction) Len() int { return len(t.rcpts) }

// Recipient is the i-th distinct recipient, 0 <= i < Len().
func (t *Transaction) Recipient(i int) queue.Recipient { return t.rcpts[i].rcpt }

// Recipients lists the distinct recipients so far, in order.
func (t *Transaction) Recipients() []queue.Recipient {
	out := make([]queue.Recipient, len(t.rcpts))
	for i, e := range t.rcpts {
		out[i] = e.rcpt
	}
	return out
}

// apply records the effects of an access entry that did not refuse.
func (t *Transaction) apply(a mappings.Access) {
	if a.Hold && t.held == "" {
		src := a.Src
		if src == "" {
			src = "access mapping"
		}
		t.held = "access: held by " + src
	}
	if a.Discard {
		t.discard = true
	}
}

// accessStatus is the refusal an access entry asks for: the reply class follows
// the $X enhanced code (default 5.7.1), the text is the $N or $F text, then the
// address. The product's documentation shows "5.7.1 Go away! User@sesta.com" for
// an entry "$NGo$ away!"; an entry without text says "Access denied" (the
// documentation gives no default text).
func accessStatus(a mappings.Access, addr string) *status.Status {
	enh := a.Enhanced
	if enh == "" || (enh[0] != '4' && enh[0] != '5') {
		enh = "5.7.1"
	}
	text := a.Text
	if text == "" {
		text = "Access denied"
	}
	if addr != "" {
		text += " " + addr
	}
	return status.FromEnhanced(enh, text)
}

// Recipient is one address to add: a RCPT TO, a command-line recipient of
// sendmail, a queued recipient handed back, the recipient of a notice.
type Recipient struct {
	Addr string // as the submitter gave it
	// Orig is the address as the client first gave it, when a requeued
	// recipient still knows it; "" means Addr.
	Orig   string
	ORCPT  string         // RFC 3461 ORCPT as "type;address", "" when not given
	Notify string         // RFC 3461 NOTIFY as given ("SUCCESS,FAILURE"); "" when not given
	In     mappings.Flags // input flags of this recipient alone (NOTIFY's $D $F $S)
}

// Routed is one recipient an address was routed to.
type Routed struct {
	Addr    string
	Channel string
}

// Outcome is what became of one address.
type Outcome struct {
	// Refused is set when the address is refused as a whole; nothing was added.
	// It has already been logged J where the origin's refusals are logged.
	Refused *status.Status
	// Routed lists what the address was routed to, duplicates of earlier
	// addresses included; empty when every recipient went to the bitbucket.
	Routed []Routed
}

// resolve runs the rewrite engine on one address and times it.
func (t *Transaction) resolve(addr string) engine.Resolution {
	var t0 time.Time
	if t.in.Metrics != nil {
		t0 = time.Now()
	}
	res := t.rules.Resolver.Resolve(engine.Request{Address: addr, Kind: engine.EnvelopeTo, SourceChannel: t.origin.Channel})
	if t.in.Metrics != nil {
		t.in.Metrics.Rewrite(time.Since(t0))
	}
	return res
}

// refuse logs a refused address J (where the origin's refusals are logged) and
// returns the outcome.
func (t *Transaction) refuse(dest, to, orcpt string, st *status.Status) Outcome {
	if t.origin.logsRefusals() {
		t.in.LogRefused(t.origin, t.from, dest, to, orcpt, 0, st)
	}
	return Outcome{Refused: st}
}

// AddRecipient resolves one address and runs the recipient access tables on it:
// ORIG_SEND_ACCESS and ORIG_MAIL_ACCESS on the address as rewritten, before alias
// expansion; SEND_ACCESS and MAIL_ACCESS on each recipient it expands to. An
// expansion a table refuses is dropped (and logged); the address is refused only
// when nothing is left of it. The product's documentation does not say in which
// order the ORIG_ tables run; we run ORIG_SEND then ORIG_MAIL, then SEND then
// MAIL, and the first refusal wins.
func (t *Transaction) AddRecipient(r Recipient) Outcome {
	call := t.calls
	t.calls++
	if t.rules.Resolver == nil {
		return t.refuse("", r.Addr, "", status.New(451, "4.3.0", "Routing not available, try again later"))
	}
	addr, st := t.reverseSRS(r.Addr)
	if st != nil {
		return t.refuse("", r.Addr, "", st)
	}
	res := t.resolve(addr)
	if res.Err != nil {
		return t.refuse(res.Rewrite.Channel, r.Addr, "", temporaryIfOdd(res.Err))
	}
	if len(res.Recipients) == 0 {
		return t.refuse(res.Rewrite.Channel, r.Addr, "", status.New(550, "5.1.1", "No such user %s", r.Addr))
	}
	if st := t.recipientAuth(); st != nil {
		return t.refuse(res.Rewrite.Channel, r.Addr, "", st)
	}
	routes, st := t.checkRoutes(r, res)
	if st != nil {
		return Outcome{Refused: st}
	}
	var out Outcome
	for _, rt := range routes {
		out.Routed = append(out.Routed, Routed{Addr: rt.rcpt.Address, Channel: rt.rcpt.Channel})
		t.add(r, rt, call)
	}
	return out
}

// route is one recipient that passed the checks, with the .HELD reason it alone
// has (the hold channel's).
type route struct {
	rcpt engine.Recipient
	held string
}

// checkRoutes runs the access tables and the hand-back rule on a resolution and
// returns the recipients to queue, or the refusal of the whole address.
func (t *Transaction) checkRoutes(r Recipient, res engine.Resolution) ([]route, *status.Status) {
	if t.origin.Kind == Handback {
		return t.selfRoutes(r, res)
	}
	orcpt := r.ORCPT
	if orcpt == "" {
		orcpt = "rfc822;" + r.Addr
	}
	var effects []mappings.Access
	if t.origin.checksOriginal() {
		st, eff := t.checkAccess(OrigSendAccess, OrigMailAccess, res.Rewrite.Channel, res.Rewrite.Address, orcpt, r.In)
		if st != nil {
			t.refuse(res.Rewrite.Channel, r.Addr, r.ORCPT, st)
			return nil, st
		}
		effects = eff
	}
	bitbucket := false
	for _, a := range effects {
		bitbucket = bitbucket || a.Bitbucket
	}
	var routes []route
	var first *status.Status
	for _, rc := range res.Recipients {
		drop := bitbucket
		if t.origin.accessed() {
			st, eff := t.checkAccess(SendAccess, MailAccess, rc.Channel, rc.Address, orcpt, r.In)
			if st != nil {
				if t.origin.logsRefusals() {
					t.in.LogRefused(t.origin, t.from, rc.Channel, rc.Address, r.ORCPT, 0, st)
				}
				if first == nil {
					first = st
				}
				continue
			}
			for _, a := range eff {
				drop = drop || a.Bitbucket
			}
			effects = append(effects, eff...)
		}
		if !drop { // $B: accepted, sent nowhere
			routes = append(routes, route{rcpt: rc})
		}
	}
	if len(routes) == 0 && first != nil {
		return nil, first
	}
	if res.Deferred && len(routes) > 0 && t.rules.channelExists(res.ExpandChannel) {
		routes = []route{{rcpt: deferredExpansion(res)}}
	}
	for _, a := range effects {
		t.apply(a)
	}
	return routes, nil
}

// deferredExpansion is the recipient of an alias whose expansion is over the
// source channel's expandlimit: the alias itself, unexpanded, to the channel that
// expands it offline (the reprocess channel). The access checks still ran on the
// members so that a refusal is given in the dialogue. Without that channel in the
// configuration the mail would sit queued for ever; the expansion is then queued
// at once, as without expandlimit.
func deferredExpansion(res engine.Resolution) engine.Recipient {
	return engine.Recipient{Address: res.Rewrite.Address, Channel: res.ExpandChannel, Host: res.Rewrite.Host}
}

// selfRoutes applies the hand-back rule: a recipient routed back to the handing
// channel is refused (SelfRefuse) or held again (SelfHold).
func (t *Transaction) selfRoutes(r Recipient, res engine.Resolution) ([]route, *status.Status) {
	routes := make([]route, 0, len(res.Recipients))
	for _, rc := range res.Recipients {
		rt := route{rcpt: rc}
		if rc.Channel == t.origin.Channel {
			if t.origin.SelfRoute == SelfRefuse {
				return nil, status.New(554, "5.4.6", "routing loop: reprocessing routes %s back to channel %s", rc.Address, t.origin.Channel)
			}
			rt.held = HoldChannelReason
		}
		routes = append(routes, rt)
	}
	return routes, nil
}

// HoldChannelReason is the .HELD reason of mail the hold channel keeps.
const HoldChannelReason = "hold channel"

// checkAccess runs one SEND-type and one MAIL-type table for one (source, sender,
// destination, recipient); the first refusal wins. The MAIL-type table needs an
// SMTP client to describe.
func (t *Transaction) checkAccess(send, mail, dst, addr, orcpt string, in mappings.Flags) (*status.Status, []mappings.Access) {
	if t.rules.Access == nil {
		return nil, nil
	}
	in |= t.origin.In
	sendProbe := SendProbe(t.origin.Channel, t.from, dst, addr)
	var effects []mappings.Access
	for _, table := range []string{send, mail} {
		probe := sendProbe
		if table == mail {
			if t.origin.Client == nil {
				continue
			}
			probe = t.origin.Client.MailProbe(sendProbe)
		}
		a, ok := t.rules.Access.Access(table, t.rules.WithORCPT(table, t.withSPF(table, probe), orcpt), in)
		if !ok {
			continue
		}
		if a.Reject {
			return accessStatus(a, addr), nil
		}
		effects = append(effects, a)
	}
	return nil, effects
}

// add queues one routed recipient unless the transaction has it already.
func (t *Transaction) add(r Recipient, rt route, call int) {
	key := strings.ToLower(rt.rcpt.Channel + "\x00" + rt.rcpt.Address)
	if e := t.seen[key]; e != nil {
		e.origins = append(e.origins, call)
		return
	}
	notify := r.Notify
	if t.origin.Kind == Notice {
		notify = "NEVER" // a notice never causes another notice
	}
	e := &entry{
		rcpt: queue.Recipient{
			Addr:    rt.rcpt.Address,
			Orig:    cmp.Or(r.Orig, r.Addr),
			ORCPT:   r.ORCPT,
			Notify:  notify,
			Channel: rt.rcpt.Channel,
			Host:    strings.ToLower(rt.rcpt.Host),
		},
		sender:  rt.rcpt.Sender,
		held:    rt.held,
		origins: []int{call},
	}
	if t.seen == nil {
		t.seen = map[string]*entry{}
	}
	t.seen[key] = e
	t.rcpts = append(t.rcpts, e)
}

// Keep adds a recipient as it is, without routing it again, with a .HELD reason
// of its own: the hold channel keeps fresh mail on itself this way. It counts as
// one AddRecipient call for Copy.Origins.
func (t *Transaction) Keep(r Recipient, channel, host, held string) {
	call := t.calls
	t.calls++
	t.add(r, route{rcpt: engine.Recipient{Address: r.Addr, Channel: channel, Host: host}, held: held}, call)
}

// temporaryIfOdd normalises a status for a reply: anything that is not a 4xx or
// 5xx reply counts as a temporary failure.
func temporaryIfOdd(st *status.Status) *status.Status {
	if st.Code < 400 || st.Code > 599 {
		return &status.Status{Code: 451, Enhanced: "4.3.0", Text: st.Text}
	}
	return st
}

// LogRefused writes the J record of a refusal: an SMTP command refused, a
// recipient of a local submission refused, a message refused at its end.
func (in *Intake) LogRefused(o Origin, from, dest, to, orcpt string, size int64, st *status.Status) {
	if in.MailLog == nil {
		return
	}
	in.MailLog.Log(maillog.Record{
		Source: o.Channel, Dest: dest, Code: maillog.CodeRejected, Size: size, From: from, ORCPT: orcpt, To: to,
		Diag: st.Error(), Conn: o.conn(),
	})
}
