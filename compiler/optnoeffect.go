package compiler

import (
	"fmt"
	"strings"
)

// optFile names the option files whose keys optionNoEffects covers.
type optFile uint8

const (
	optionDat     optFile = iota // option.dat
	channelOption                // <channel>_option
	jobController                // job_controller.cnf, global part and sections
)

// optNoEffect is an option key the compiler accepts (a real product configuration
// must still build) but that nothing in mtad acts on. Such a key warns at its
// FILE:LINE, unless it is harmless by design (Silent) or its value asks for what
// mtad does anyway (Quiet): then the warning would only be noise.
type optNoEffect struct {
	File  optFile
	Key   string
	Field string   // "Type.Field" it fills, for the test that keeps this table honest; "" none
	Quiet []string // values (compared case-insensitively) that mtad honours as it is
	// QuietDoc, when set, is how the documentation names the Quiet values.
	QuietDoc string
	// Silent marks keys our architecture makes meaningless: they need no warning.
	Silent bool
	Reason string // why it has no effect; docs/configuration.md repeats it
}

// optionNoEffects is the one list of accepted-but-ineffective option keys. Adding an
// option to a table in options.go or jobs.go without code that reads it fails
// TestEveryOptionHasEffectOrIsListed until it is listed here; so does listing a
// key that something has started to read.
var optionNoEffects = []optNoEffect{
	// option.dat: mail.log fields and formats (maillog writes the plain format).
	{File: optionDat, Key: "LOG_FILENAME", Field: "Options.LogFilename", Quiet: []string{"0"}, Reason: "mail.log entries do not name the queue file"},
	{File: optionDat, Key: "LOG_FORMAT", Field: "Options.LogFormat", Quiet: []string{"1"}, Reason: "mail.log is always the plain format (1)"},
	{File: optionDat, Key: "LOG_QUEUE_TIME", Field: "Options.LogQueueTime", Quiet: []string{"0"}, Reason: "mail.log entries carry no queue time"},
	{File: optionDat, Key: "LOG_REASON", Field: "Options.LogReason", Quiet: []string{"0"}, Reason: "R and K entries carry the diagnostic, no separate reason field"},
	{File: optionDat, Key: "LOG_USERNAME", Field: "Options.LogUsername", Quiet: []string{"0"}, Reason: "mail.log entries carry no user name field"},
	{File: optionDat, Key: "LOG_PROCESS", Quiet: []string{"0"}, Reason: "mail.log entries carry no process id (mtad is one process)"},
	{File: optionDat, Key: "LOG_NOTARY", Quiet: []string{"0"}, Reason: "mail.log entries carry no DSN flags"},
	{File: optionDat, Key: "LOG_ENVELOPE_ID", Quiet: []string{"0"}, Reason: "mail.log entries carry no ENVID"},
	{File: optionDat, Key: "LOG_PRIORITY", Quiet: []string{"0"}, Reason: "mail.log entries carry no priority"},
	{File: optionDat, Key: "LOG_SENSITIVITY", Quiet: []string{"0"}, Reason: "mail.log entries carry no sensitivity"},
	{File: optionDat, Key: "LOG_INTERMEDIATE", Quiet: []string{"0"}, Reason: "mail.log entries carry no intermediate address"},
	{File: optionDat, Key: "LOG_NODE", Quiet: []string{"0"}, Reason: "mail.log entries carry no node name"},
	{File: optionDat, Key: "LOG_DIAGNOSTICS", Quiet: []string{"0"}, Reason: "mail.log entries carry no extra diagnostics"},
	{File: optionDat, Key: "LOG_MESSAGES_SYSLOG", Quiet: []string{"0"}, Reason: "mail.log is not mirrored to syslog"},
	{File: optionDat, Key: "SEPARATE_CONNECTION_LOG", Quiet: []string{"0"}, Reason: "connection records (LOG_CONNECTION 2) stay in mail.log"},
	// option.dat: debug switches. mtad's debug output is the slave_debug channel
	// keyword and the daemon's log level.
	{File: optionDat, Key: "MM_DEBUG", Field: "Options.MMDebug", Quiet: []string{"0"}, Reason: "use the slave_debug channel keyword"},
	{File: optionDat, Key: "DEQUEUE_DEBUG", Field: "Options.DequeueDebug", Quiet: []string{"0"}, Reason: "delivery debug is the daemon's debug log level"},
	{File: optionDat, Key: "RETURN_DEBUG", Field: "Options.ReturnDebug", Quiet: []string{"0"}, Reason: "notice debug is the daemon's debug log level"},
	{File: optionDat, Key: "POST_DEBUG", Quiet: []string{"0"}, Reason: "there is no periodic post job"},
	{File: optionDat, Key: "OS_DEBUG", Quiet: []string{"0"}, Reason: "no debug output of this kind"},
	{File: optionDat, Key: "CACHE_DEBUG", Quiet: []string{"0"}, Reason: "no debug output of this kind"},
	{File: optionDat, Key: "FILTER_DEBUG", Quiet: []string{"0"}, Reason: "a filter is debugged with mtactl test -rewrite -filter -debug and mtactl test -exp -mm"},
	{File: optionDat, Key: "LOG_DEBUG", Quiet: []string{"0"}, Reason: "no debug output of this kind"},
	{File: optionDat, Key: "AP_DEBUG", Quiet: []string{"0"}, Reason: "no debug output of this kind"},
	// option.dat: features.
	{File: optionDat, Key: "MAX_INTERNAL_RECEIVED_LINES", Field: "Options.MaxInternalReceivedLines",
		Reason: "mtad's internal hops (reprocess, hold) add no Received: field, so there is nothing to count; a reprocess channel routing to itself is refused with 5.4.6 instead"},
	{File: optionDat, Key: "MAX_MR_RECEIVED_LINES", Silent: true, Reason: "MR-Received: fields come from MAILbus gateways, which mtad does not have"},
	{File: optionDat, Key: "MISSING_RECIPIENT_POLICY", Field: "Options.MissingRecipientPolicy", Quiet: []string{"0", "1"},
		Reason: "a message without To:, Cc: or Bcc: always passes unchanged (policy 1)"},
	{File: optionDat, Key: "RETURN_ENVELOPE", Field: "Options.ReturnEnvelope", Quiet: []string{"0"}, Reason: "notices are always sent from <>"},
	{File: optionDat, Key: "RETURN_PERSONAL", Field: "Options.ReturnPersonal", Reason: "the From: of notices has no display name"},
	{File: optionDat, Key: "ACCESS_COUNTS", Field: "Options.AccessCounts", Quiet: []string{"0"}, Reason: "access tables are probed without recipient counts"},
	{File: optionDat, Key: "MAX_HEADER_BLOCK_USE", Field: "Options.MaxHeaderBlockUse", Silent: true, Reason: "only used by maxblocks fragmentation, whose channel keyword warns itself"},
	{File: optionDat, Key: "MAX_HEADER_LINE_USE", Silent: true, Reason: "only used by maxlines fragmentation, whose channel keyword warns itself"},
	{File: optionDat, Key: "ALIAS_MAGIC", Silent: true, Reason: "restricted option; mtad has one fixed order of alias sources"},
	{File: optionDat, Key: "COMMENT_CHARS", Quiet: []string{"!;#", "#;!", ";!#", "!#;", "#!;", ";#!"}, QuietDoc: "`!;#` in any order", Reason: "comment lines always start with !, ; or #"},
	{File: optionDat, Key: "DOMAIN_FAILURE", Reason: "a failed domain lookup gives the built-in temporary error"},

	// <channel>_option: server side.
	{File: channelOption, Key: "REJECT_RECIPIENTS_PER_TRANSACTION", Field: "ChannelOptions.RejectRecipientsPerTransaction", Quiet: []string{"0"}, Reason: "recipients over the limit get 452 (ALLOW_RECIPIENTS_PER_TRANSACTION)"},
	{File: channelOption, Key: "ALLOW_ETRNS_PER_SESSION", Field: "ChannelOptions.AllowETRNsPerSession", Silent: true, Reason: "the SMTP server does not offer ETRN"},
	{File: channelOption, Key: "COMMAND_TRANSMIT_TIME", Field: "ChannelOptions.CommandTransmitTime", Reason: "the client's command writes are bounded by the reply times (STATUS_*_RECEIVE_TIME)"},
	{File: channelOption, Key: "STATUS_TRANSMIT_TIME", Field: "ChannelOptions.StatusTransmitTime", Reason: "the server's reply writes have no time of their own"},
	{File: channelOption, Key: "MAX_B_ENTRIES", Field: "ChannelOptions.MaxBEntries", Reason: "mail.log has no B (bad command) entries"},
	// <channel>_option: client side.
	{File: channelOption, Key: "MAX_CLIENT_THREADS", Field: "ChannelOptions.MaxClientThreads", Reason: "delivery concurrency is job_limit and threaddepth"},
	{File: channelOption, Key: "552_PERMANENT_ERROR_STRING", Field: "ChannelOptions.PermanentErrorStrings552", Silent: true, Reason: "every 5xx reply, 552 included, is already permanent"},
	{File: channelOption, Key: "STATUS_DATA_RECV_PER_ADDR_TIME", Reason: "the wait for the final reply is STATUS_DATA_RECEIVE_TIME alone"},
	{File: channelOption, Key: "STATUS_DATA_RECV_PER_BLOCK_TIME", Reason: "the wait for the final reply is STATUS_DATA_RECEIVE_TIME alone"},

	// job_controller.cnf: the job controller is inside mtad; nothing connects to it
	// and its jobs are goroutines, not programs.
	{File: jobController, Key: "TCP_PORT", Field: "JobConfig.TCPPort", Silent: true, Reason: "the job controller is inside mtad and listens on no port"},
	{File: jobController, Key: "INTERFACE_ADDRESS", Field: "JobConfig.InterfaceAddress", Silent: true, Reason: "the job controller is inside mtad and listens on no address"},
	{File: jobController, Key: "SECRET", Field: "JobConfig.Secret", Silent: true, Reason: "no client talks to the job controller over the network"},
	{File: jobController, Key: "DEBUG", Field: "JobConfig.Debug", Quiet: []string{"0"}, Reason: "job controller debug is the daemon's debug log level"},
	{File: jobController, Key: "SLAVE_COMMAND", Field: "ChannelSection.SlaveCommand", Quiet: []string{"NULL"},
		Reason: "mtad runs no slave programs: inbound SMTP is the dispatcher's service"},
	{File: jobController, Key: "MAX_LIFE_AGE", Field: "ChannelSection.MaxLifeAge", Silent: true, Reason: "delivery jobs are goroutines of mtad: there is no process to retire"},
	{File: jobController, Key: "MAX_LIFE_CONNS", Field: "ChannelSection.MaxLifeConns", Silent: true, Reason: "delivery jobs are goroutines of mtad: there is no process to retire"},
	{File: jobController, Key: "MAX_MESSAGES", Field: "JobConfig.MaxMessages", Reason: "the job controller keeps every queued message in memory; there is no cache ceiling"},
	{File: jobController, Key: "SYNCH_TIME", Field: "JobConfig.SynchTime", Reason: "the queue index is kept in step by every queue operation; there is no periodic rescan"},
	{File: jobController, Key: "MASTER_JOB", Reason: "use MASTER_COMMAND"},
	{File: jobController, Key: "SLAVE_JOB", Silent: true, Reason: "mtad runs no slave programs"},
	{File: jobController, Key: "COMMAND", Silent: true, Reason: "a key of the deprecated [PERIODIC_JOB] section, which is ignored"},
	{File: jobController, Key: "TIME", Silent: true, Reason: "a key of the deprecated [PERIODIC_JOB] section, which is ignored"},
}

// optionNoEffectFor is the part of optionNoEffects for one file, by key.
func optionNoEffectFor(f optFile) map[string]optNoEffect {
	m := map[string]optNoEffect{}
	for _, e := range optionNoEffects {
		if e.File == f {
			m[e.Key] = e
		}
	}
	return m
}

// warns reports whether setting the key to value deserves the warning.
func (e optNoEffect) warns(value string) bool {
	if e.Silent {
		return false
	}
	value = strings.TrimSpace(value)
	n, numErr := ParseInt(value)
	for _, q := range e.Quiet {
		if strings.EqualFold(value, q) {
			return false
		}
		// 16%0 and 00 say 0 as well as "0" does
		if m, err := ParseInt(q); err == nil && numErr == nil && m == n {
			return false
		}
	}
	return true
}

// OptionEffectTable renders the table of docs/configuration.md's section on
// option keys accepted without effect, from optionNoEffects. A test compares the
// document with it (and rewrites it with -update).
func OptionEffectTable() string {
	files := [...]string{optionDat: "option.dat", channelOption: "`<channel>_option`", jobController: "job_controller.cnf"}
	var b strings.Builder
	b.WriteString("| file | key | warns | why it has no effect |\n|---|---|---|---|\n")
	for _, e := range optionNoEffects {
		warns := "yes"
		switch {
		case e.Silent:
			warns = "no (harmless)"
		case e.QuietDoc != "":
			warns = "yes, unless " + e.QuietDoc
		case len(e.Quiet) > 0:
			warns = "yes, unless `" + strings.Join(e.Quiet, "` or `") + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s. |\n", files[e.File], e.Key, warns, e.Reason)
	}
	return b.String()
}
