package compiler

import (
	"fmt"
	"net/netip"

	"mtad.dev/mta/filter"
)

// keywordSpecs is every channel keyword the product's documentation names, each
// declared once: its argument shape, what it sets in ChannelConfig, and, when it
// has no effect in this version (or less than the documentation says), its
// effect class and the reason. Grouped as the documentation groups them.
//
// A keyword's field must be read by the subsystem it configures (subsystems.go,
// or the daemon directly) unless the keyword carries an effect class:
// TestKeywordEffects checks it with the type-checked module. A keyword without
// a setter must have an effect class; TestKeywordTable checks that.
var keywordSpecs = []keywordSpec{
	// Protocol and line endings. The product's texts disagree on what plain
	// smtp accepts; the SMTP server takes CRLF only (bare LF or CR is
	// refused: SMTP smuggling), so the spellings that ask for more warn.
	{name: "smtp", set: setSMTP},
	{name: "nosmtp", set: func(c *ChannelConfig, _ Keyword) { c.SMTP = false }},
	{name: "smtp_crlf", set: setSMTP, effect: asBuilt, why: "the SMTP server accepts CRLF line endings only"},
	{name: "smtp_lf", set: setSMTP, effect: notImplemented, why: "the SMTP server requires CRLF line endings (bare LF is refused, 550 5.5.2)"},
	{name: "smtp_cr", set: setSMTP, effect: notImplemented, why: "the SMTP server requires CRLF line endings (bare CR is refused, 550 5.5.2)"},
	{name: "smtp_crorlf", set: setSMTP, effect: notImplemented, why: "the SMTP server requires CRLF line endings (bare CR or LF is refused, 550 5.5.2)"},
	{name: "ehlo", effect: asBuilt, why: whyEHLO},
	{name: "checkehlo", effect: asBuilt, why: whyEHLO},
	{name: "noehlo", effect: notImplemented, why: "the SMTP client always says EHLO first"},
	{name: "allowetrn", effect: notImplemented, why: whyETRN},
	{name: "blocketrn", effect: asBuilt, why: whyETRN},
	// Not the product's: deliver over LMTP (RFC 2033) to daemon HOST + port N,
	// or daemon /socket.
	{name: "lmtp", set: func(c *ChannelConfig, _ Keyword) { c.LMTP, c.SMTP = true, false }},

	// Outbound host choice and DNS.
	{name: "defaultmx", set: func(c *ChannelConfig, _ Keyword) { c.MX = DefaultMX }},
	{name: "mx", set: func(c *ChannelConfig, _ Keyword) { c.MX = MX }},
	{name: "nonrandommx", set: func(c *ChannelConfig, _ Keyword) { c.MX = MX }},
	{name: "randommx", set: func(c *ChannelConfig, _ Keyword) { c.MX = RandomMX }},
	{name: "nomx", set: func(c *ChannelConfig, _ Keyword) { c.MX = NoMX }},
	{name: "nodns", set: func(c *ChannelConfig, _ Keyword) { c.MX = NoDNS }},
	{name: "nameservers", args: argIPs, set: func(c *ChannelConfig, k Keyword) { c.Nameservers = append([]string(nil), k.Args...) }},
	{name: "defaultnameservers", set: func(c *ChannelConfig, _ Keyword) { c.Nameservers = nil }},
	{name: "daemon", args: argWord, set: func(c *ChannelConfig, k Keyword) { c.Daemon = k.arg() }},
	{name: "lastresort", args: argWord, set: func(c *ChannelConfig, k Keyword) { c.LastResort = k.arg() }},
	{name: "port", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.Port) }},
	{name: "interfaceaddress", args: argWord, check: checkIPAddress, set: func(c *ChannelConfig, k Keyword) { c.InterfaceAddress = k.arg() }},
	{name: "connectalias", effect: asBuilt, why: "hosts are connected to as queued"},
	{name: "connectcanonical", effect: notImplemented, why: "hosts are connected to as queued, never rewritten again at dequeue"},
	{name: "cacheeverything", effect: irrelevant, why: whyNoCache},
	{name: "cachefailures", effect: irrelevant, why: whyNoCache},
	{name: "cachesuccesses", effect: irrelevant, why: whyNoCache},
	{name: "nocache", effect: irrelevant, why: whyNoCache},
	{name: "dequeue_removeroute", effect: notImplemented, why: "source routes are not stripped at dequeue"},

	// Copies, jobs, pools. Copies is kept for `cnbuild -show` and the tests only.
	{name: "multiple", set: func(c *ChannelConfig, _ Keyword) { c.Copies = Multiple }, effect: irrelevant, why: whyCopies},
	{name: "single_sys", set: func(c *ChannelConfig, _ Keyword) { c.Copies = SingleSys }, effect: irrelevant, why: whyCopies},
	{name: "single", set: func(c *ChannelConfig, _ Keyword) { c.Copies = Single }, effect: irrelevant, why: whyCopies},
	{name: "addrsperfile", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.AddrsPerFile) }},
	{name: "addrsperjob", args: argInt, effect: irrelevant, why: whyJobs},
	{name: "filesperjob", args: argInt, effect: irrelevant, why: whyJobs},
	{name: "maxjobs", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.MaxJobs) }},
	{name: "threaddepth", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.ThreadDepth) }},
	{name: "pool", args: argWord, check: checkPoolName, set: func(c *ChannelConfig, k Keyword) { c.Pool = k.arg() }},
	{name: "queue", args: argWord, set: func(c *ChannelConfig, k Keyword) { c.Pool = k.arg() }},
	{name: "urgentqueue", args: argWord, effect: notImplemented, why: whyPriorityPools},
	{name: "normalqueue", args: argWord, effect: notImplemented, why: whyPriorityPools},
	{name: "nonurgentqueue", args: argWord, effect: notImplemented, why: whyPriorityPools},
	{name: "subdirs", args: argInt, effect: irrelevant, why: whySubdirs},
	{name: "nosubdirs", effect: irrelevant, why: whySubdirs},
	{name: "after", args: argWord, effect: notImplemented, why: "no delay before delivery jobs"},

	// Priority, immediacy, deferral.
	{name: "immediate", effect: irrelevant, why: whyImmediate},
	{name: "periodic", effect: irrelevant, why: whyImmediate},
	{name: "immurgent", effect: irrelevant, why: whyImmediate},
	{name: "immnormal", effect: irrelevant, why: whyImmediate},
	{name: "immnonurgent", effect: irrelevant, why: whyImmediate},
	// The product's documentation: a larger message drops to a lower priority.
	// Doing so belongs to the accept path, which does not do it.
	{name: "urgentblocklimit", args: argInt, effect: notImplemented, why: whyPriorityBySize},
	{name: "normalblocklimit", args: argInt, effect: notImplemented, why: whyPriorityBySize},
	{name: "nonurgentblocklimit", args: argInt, effect: notImplemented, why: whyPriorityBySize},
	{name: "deferred", effect: notImplemented, why: "a Deferred-delivery: header field is not honoured; the message is delivered at once"},
	{name: "nodeferred", effect: asBuilt, why: "a Deferred-delivery: header field is not honoured"},

	// Source-channel selection, reverse DNS.
	{name: "switchchannel", set: func(c *ChannelConfig, _ Keyword) { c.Switch = Switch }},
	{name: "allowswitchchannel", set: func(c *ChannelConfig, _ Keyword) { c.Switch = AllowSwitch }},
	{name: "noswitchchannel", set: func(c *ChannelConfig, _ Keyword) { c.Switch = NoSwitch }},
	{name: "saslswitchchannel", args: argChannel, set: func(c *ChannelConfig, k Keyword) { c.SASLSwitchChannel = k.arg() }},
	{name: "nosaslswitchchannel", set: func(c *ChannelConfig, _ Keyword) { c.SASLSwitchChannel = "" }},
	{name: "tlsswitchchannel", args: argChannel, set: func(c *ChannelConfig, k Keyword) { c.TLSSwitchChannel = k.arg() }},
	{name: "userswitchchannel", effect: notImplemented, why: "no LDAP attribute lookups"},
	{name: "identnone", effect: notImplemented, why: whyNoReverseDNS},
	{name: "identnonesymbolic", effect: notImplemented, why: whyNoReverseDNS},
	{name: "identnonenumeric", effect: asBuilt, why: "no IDENT and no reverse DNS: Received: and switchchannel use the client's IP"},
	{name: "identnonelimited", effect: notImplemented, why: whyNoReverseDNS},
	{name: "identtcp", effect: notImplemented, why: whyNoIdent},
	{name: "identtcpsymbolic", effect: notImplemented, why: whyNoIdent},
	{name: "identtcpnumeric", effect: notImplemented, why: "no IDENT (RFC 1413) lookups of clients"},
	{name: "identtcplimited", effect: notImplemented, why: whyNoIdent},
	{name: "forwardchecknone", effect: asBuilt, why: whyForwardCheck},
	{name: "forwardchecktag", effect: notImplemented, why: whyForwardCheck},
	{name: "forwardcheckdelete", effect: notImplemented, why: whyForwardCheck},

	// TLS and SASL. The server offers STARTTLS whenever a certificate is
	// configured, so only musttlsserver changes the server's TLS.
	{name: "notls", set: func(c *ChannelConfig, _ Keyword) { c.TLSClient, c.TLSServer = TLSNo, TLSNo }},
	{name: "notlsclient", set: func(c *ChannelConfig, _ Keyword) { c.TLSClient = TLSNo }},
	{name: "notlsserver", set: func(c *ChannelConfig, _ Keyword) { c.TLSServer = TLSNo }, effect: notImplemented, why: whySTARTTLS},
	{name: "maytls", set: func(c *ChannelConfig, _ Keyword) { c.TLSClient, c.TLSServer = TLSMay, TLSMay }},
	{name: "maytlsclient", set: func(c *ChannelConfig, _ Keyword) { c.TLSClient = TLSMay }},
	{name: "maytlsserver", set: func(c *ChannelConfig, _ Keyword) { c.TLSServer = TLSMay }, effect: asBuilt, why: whySTARTTLS},
	{name: "musttls", set: func(c *ChannelConfig, _ Keyword) { c.TLSClient, c.TLSServer = TLSMust, TLSMust }},
	{name: "musttlsclient", set: func(c *ChannelConfig, _ Keyword) { c.TLSClient = TLSMust }},
	{name: "musttlsserver", set: func(c *ChannelConfig, _ Keyword) { c.TLSServer = TLSMust }},
	{name: "nosasl", set: func(c *ChannelConfig, _ Keyword) { c.SASLServer = SASLNo }},
	{name: "nosaslserver", set: func(c *ChannelConfig, _ Keyword) { c.SASLServer = SASLNo }},
	{name: "maysaslserver", set: func(c *ChannelConfig, _ Keyword) { c.SASLServer = SASLMay }},
	{name: "mustsaslserver", set: func(c *ChannelConfig, _ Keyword) { c.SASLServer = SASLMust }},
	{name: "disconnectbadauthlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.DisconnectBadAuthLimit) }},

	// Addresses and headers.
	{name: "noremotehost", effect: asBuilt, why: "unqualified header addresses are not completed"},
	{name: "remotehost", effect: notImplemented, why: "unqualified header addresses are not completed with the client's host"},
	{name: "defaulthost", args: argHosts, effect: notImplemented, why: whyDefaultHost},
	{name: "nodefaulthost", effect: asBuilt, why: whyDefaultHost},
	{name: "noinner", effect: asBuilt, why: "embedded message headers are not rewritten"},
	{name: "inner", effect: notImplemented, why: "embedded message/rfc822 headers are not rewritten"},
	{name: "headertrim", effect: notImplemented, why: whyHeaderFiles},
	{name: "noheadertrim", effect: asBuilt, why: whyHeaderFiles},
	{name: "headerread", effect: notImplemented, why: whyHeaderFiles},
	{name: "noheaderread", effect: asBuilt, why: whyHeaderFiles},
	{name: "innertrim", effect: notImplemented, why: whyHeaderFiles},
	{name: "noinnertrim", effect: asBuilt, why: whyHeaderFiles},
	{name: "missingrecipientpolicy", args: argInt, effect: notImplemented, asArgs: []string{"0", "1"},
		why: "messages without To:, Cc: or Bcc: pass unchanged (policies 0 and 1)"},
	{name: "addreturnpath", effect: notImplemented, why: whyReturnPath},
	{name: "noaddreturnpath", effect: asBuilt, why: whyReturnPath},
	{name: "viaaliasoptional", set: func(c *ChannelConfig, _ Keyword) { c.ViaAliasRequired = false }},
	{name: "viaaliasrequired", set: func(c *ChannelConfig, _ Keyword) { c.ViaAliasRequired = true }},
	{name: "maxprocchars", args: argInt, effect: notImplemented, why: "header lines are rewritten whatever their length"},
	{name: "maxheaderaddrs", args: argInt, effect: notImplemented, why: whyLongHeaders},
	{name: "maxheaderchars", args: argInt, effect: notImplemented, why: whyLongHeaders},
	{name: "charset7", args: argWord, effect: notImplemented, why: whyCharset},
	{name: "charset8", args: argWord, effect: notImplemented, why: whyCharset},
	{name: "charsetesc", args: argWord, effect: notImplemented, why: whyCharset},
	{name: "rules", set: func(c *ChannelConfig, _ Keyword) { c.Rules = true }},
	{name: "norules", set: func(c *ChannelConfig, _ Keyword) { c.Rules = false }},
	{name: "authrewrite", args: argOptInt, effect: notImplemented, why: "the AUTH identity is not written into headers (mail.log records it)"},
	{name: "routelocal", set: func(c *ChannelConfig, _ Keyword) { c.RouteLocal = true }},
	{name: "bangoverpercent", set: func(c *ChannelConfig, _ Keyword) { c.BangOverPercent = true }},
	{name: "nobangoverpercent", set: func(c *ChannelConfig, _ Keyword) { c.BangOverPercent = false }},
	{name: "exproute", effect: notImplemented, why: whySourceRoutes},
	{name: "noexproute", effect: asBuilt, why: whySourceRoutes},
	{name: "improute", effect: notImplemented, why: whySourceRoutes},
	{name: "noimproute", effect: asBuilt, why: whySourceRoutes},
	{name: "733", effect: notImplemented, why: whyRFC822},
	{name: "822", effect: asBuilt, why: whyRFC822},
	{name: "bangstyle", effect: notImplemented, why: whyRFC822},
	{name: "datefour", effect: notImplemented, why: whyDate},
	{name: "datetwo", effect: notImplemented, why: whyDate},
	{name: "dayofweek", effect: asBuilt, why: whyDate},
	{name: "nodayofweek", effect: notImplemented, why: whyDate},
	// The product's documentation: the address notices about this channel's
	// messages come from. Notices come from one address, option.dat's.
	{name: "returnaddress", args: argWord, effect: notImplemented, why: "notices come from option.dat's RETURN_ADDRESS for every channel"},
	{name: "returnpersonal", args: argWord, effect: notImplemented, why: "notices carry no personal name"},
	{name: "returnenvelope", args: argInt, effect: notImplemented, why: "notices are sent with the empty return path"},

	// 8-bit.
	{name: "sevenbit", set: func(c *ChannelConfig, _ Keyword) { c.EightBit = SevenBit }},
	{name: "eightbit", set: func(c *ChannelConfig, _ Keyword) { c.EightBit = EightBitOK }},
	{name: "eightnegotiate", set: func(c *ChannelConfig, _ Keyword) { c.EightBit = EightNegotiate }},
	{name: "eightstrict", set: func(c *ChannelConfig, _ Keyword) { c.EightBit = EightStrict }},

	// Size, recipient and session limits.
	{name: "blocklimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.MessageBlockLimit) }},
	{name: "noblocklimit", set: func(c *ChannelConfig, _ Keyword) { c.MessageBlockLimit = 0 }},
	{name: "sourceblocklimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.SourceBlockLimit) }},
	{name: "linelimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.LineLimit) }},
	{name: "nolinelimit", set: func(c *ChannelConfig, _ Keyword) { c.LineLimit = 0 }},
	{name: "maxblocks", args: argInt, effect: notImplemented, why: "messages are never fragmented (blocklimit refuses instead)"},
	{name: "maxlines", args: argInt, effect: notImplemented, why: "messages are never fragmented (linelimit refuses instead)"},
	{name: "alternatechannel", args: argChannel, effect: notImplemented, why: whyAlternate},
	{name: "alternateblocklimit", args: argInt, effect: notImplemented, why: whyAlternate},
	{name: "alternatelinelimit", args: argInt, effect: notImplemented, why: whyAlternate},
	{name: "alternaterecipientlimit", args: argInt, effect: notImplemented, why: whyAlternate},
	{name: "recipientlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.RecipientLimit) }},
	{name: "recipientcutoff", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.RecipientCutoff) }},
	{name: "expandlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.ExpandLimit) }},
	{name: "expandchannel", args: argChannel, set: func(c *ChannelConfig, k Keyword) { c.ExpandChannel = k.arg() }},
	{name: "holdlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.HoldLimit) }},
	{name: "transactionlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.TransactionLimit) }},
	{name: "deferralrejectlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.DeferralRejectLimit) }},
	{name: "disconnectrecipientlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.DisconnectRecipientLimit) }},
	{name: "disconnectrejectlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.DisconnectRejectLimit) }},
	{name: "disconnecttransactionlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.DisconnectTransactionLimit) }},
	{name: "disconnectbadcommandlimit", args: argInt, set: func(c *ChannelConfig, k Keyword) { k.setInt(&c.DisconnectBadCommandLimit) }},

	// Miscellaneous.
	{name: "mailfromdnsverify", effect: notImplemented, why: whyMailFromDNS},
	{name: "nomailfromdnsverify", effect: asBuilt, why: whyMailFromDNS},
	{name: "loopcheck", effect: notImplemented, why: whyLoopCheck},
	{name: "noloopcheck", effect: asBuilt, why: whyLoopCheck},

	// Sieve filters (package filter; filters.go checks the scripts). The
	// product's documentation calls channelfilter the obsolete name of
	// destinationfilter. filter is the URL-pattern of users' own filters,
	// fileinto the address a system filter's fileinto becomes.
	{name: "sourcefilter", args: argWord, set: func(c *ChannelConfig, k Keyword) { c.SourceFilter = k.arg() }},
	{name: "nosourcefilter", set: func(c *ChannelConfig, _ Keyword) { c.SourceFilter = "" }},
	{name: "destinationfilter", args: argWord, set: func(c *ChannelConfig, k Keyword) { c.DestinationFilter = k.arg() }},
	{name: "channelfilter", args: argWord, set: func(c *ChannelConfig, k Keyword) { c.DestinationFilter = k.arg() }},
	{name: "nodestinationfilter", set: func(c *ChannelConfig, _ Keyword) { c.DestinationFilter = "" }},
	{name: "filter", args: argWord, check: checkSubstitutions, set: func(c *ChannelConfig, k Keyword) { c.UserFilter = k.arg() }},
	{name: "nofilter", set: func(c *ChannelConfig, _ Keyword) { c.UserFilter = "" }},
	{name: "fileinto", args: argWord, check: checkSubstitutions, set: func(c *ChannelConfig, k Keyword) { c.FileInto = k.arg() }},

	{name: "holdexquota", effect: irrelevant, why: whyQuota},
	{name: "noexquota", effect: irrelevant, why: whyQuota},
	{name: "logging", effect: asBuilt, why: whyLogging},
	{name: "nologging", effect: notImplemented, why: whyLogging},
	{name: "logheader", args: argInt, effect: notImplemented, why: "no header lines in mail.log"},
	{name: "master_debug", set: func(c *ChannelConfig, _ Keyword) { c.MasterDebug = true }},
	{name: "nomaster_debug", set: func(c *ChannelConfig, _ Keyword) { c.MasterDebug = false }},
	{name: "slave_debug", set: func(c *ChannelConfig, _ Keyword) { c.SlaveDebug = true }},
	{name: "noslave_debug", set: func(c *ChannelConfig, _ Keyword) { c.SlaveDebug = false }},
	{name: "defragment", effect: notImplemented, why: whyDefragment},
	{name: "nodefragment", effect: asBuilt, why: whyDefragment},
	{name: "sendpost", effect: notImplemented, why: whyPostCopies},
	{name: "copysendpost", effect: notImplemented, why: whyPostCopies},
	{name: "errsendpost", effect: notImplemented, why: whyPostCopies},
	{name: "nosendpost", effect: asBuilt, why: whyPostCopies},
	{name: "warnpost", effect: notImplemented, why: whyPostCopies},
	{name: "copywarnpost", effect: notImplemented, why: whyPostCopies},
	{name: "errwarnpost", effect: notImplemented, why: whyPostCopies},
	{name: "nowarnpost", effect: asBuilt, why: whyPostCopies},

	// Sender authentication (package senderauth, wired by the daemon). The SPF
	// keywords and the SRS ones are the product's; spfmailfrom and spfrcptto
	// exclude each other (the product's documentation: put only one on a
	// channel), so the later one wins. dkimverify, dmarcverify and
	// trustauthresults are ours: the product leaves DKIM and DMARC to milters.
	{name: "spfnone", set: func(c *ChannelConfig, _ Keyword) { c.SPFHelo, c.SPFMailFrom, c.SPFRcptTo = false, false, false }},
	{name: "spfhelo", set: func(c *ChannelConfig, _ Keyword) { c.SPFHelo = true }},
	{name: "spfmailfrom", set: func(c *ChannelConfig, _ Keyword) { c.SPFMailFrom, c.SPFRcptTo = true, false }},
	{name: "spfrcptto", set: func(c *ChannelConfig, _ Keyword) { c.SPFRcptTo, c.SPFMailFrom = true, false }},
	{name: "dkimverify", set: func(c *ChannelConfig, _ Keyword) { c.DKIMVerify = true }},
	{name: "nodkimverify", set: func(c *ChannelConfig, _ Keyword) { c.DKIMVerify = false }},
	{name: "dmarcverify", set: func(c *ChannelConfig, _ Keyword) { c.DMARCVerify = true }},
	{name: "nodmarcverify", set: func(c *ChannelConfig, _ Keyword) { c.DMARCVerify = false }},
	{name: "trustauthresults", set: func(c *ChannelConfig, _ Keyword) { c.TrustAuthResults = true }},
	{name: "notrustauthresults", set: func(c *ChannelConfig, _ Keyword) { c.TrustAuthResults = false }},
	{name: "sourcesrs", set: func(c *ChannelConfig, _ Keyword) { c.SourceSRS = true }},
	{name: "nosourcesrs", set: func(c *ChannelConfig, _ Keyword) { c.SourceSRS = false }},
	{name: "destinationsrs", set: func(c *ChannelConfig, _ Keyword) { c.DestinationSRS = true }},
	{name: "nodestinationsrs", set: func(c *ChannelConfig, _ Keyword) { c.DestinationSRS = false }},
	{name: "addresssrs", set: func(c *ChannelConfig, _ Keyword) { c.AddressSRS = true }},
	{name: "noaddresssrs", set: func(c *ChannelConfig, _ Keyword) { c.AddressSRS = false }},
	{name: "headerdecodesrs", effect: notImplemented, why: whyHeaderSRS},
	{name: "noheaderdecodesrs", effect: asBuilt, why: whyHeaderSRS},

	// Master and slave programs.
	{name: "master", set: func(c *ChannelConfig, _ Keyword) { c.Role = MasterOnly }},
	{name: "slave", set: func(c *ChannelConfig, _ Keyword) { c.Role = SlaveOnly }},
	{name: "bidirectional", set: func(c *ChannelConfig, _ Keyword) { c.Role = Bidirectional }},

	// Retries and notices. The job controller follows one notices schedule for
	// every priority (the normal one), so the urgent and nonurgent lists are
	// kept for `cnbuild -show` but change nothing.
	{name: "backoff", args: argDurations, set: func(c *ChannelConfig, k Keyword) {
		d := periods(k.Args)
		for p := range NumPriorities {
			c.Backoff[p] = d
		}
	}},
	{name: "urgentbackoff", args: argDurations, set: func(c *ChannelConfig, k Keyword) { c.Backoff[Urgent] = periods(k.Args) }},
	{name: "normalbackoff", args: argDurations, set: func(c *ChannelConfig, k Keyword) { c.Backoff[Normal] = periods(k.Args) }},
	{name: "nonurgentbackoff", args: argDurations, set: func(c *ChannelConfig, k Keyword) { c.Backoff[Nonurgent] = periods(k.Args) }},
	{name: "notices", args: argInts, set: func(c *ChannelConfig, k Keyword) {
		v := ints(k.Args)
		for p := range NumPriorities {
			c.Notices[p] = v
		}
	}},
	{name: "urgentnotices", args: argInts, set: func(c *ChannelConfig, k Keyword) { c.Notices[Urgent] = ints(k.Args) },
		effect: notImplemented, why: whyOneNoticeSchedule},
	{name: "normalnotices", args: argInts, set: func(c *ChannelConfig, k Keyword) { c.Notices[Normal] = ints(k.Args) }},
	{name: "nonurgentnotices", args: argInts, set: func(c *ChannelConfig, k Keyword) { c.Notices[Nonurgent] = ints(k.Args) },
		effect: notImplemented, why: whyOneNoticeSchedule},
}

// Reasons shared by several keywords.
const (
	whyEHLO              = "the SMTP client always says EHLO first and falls back to HELO"
	whyETRN              = "ETRN is not supported"
	whyNoCache           = "no connection-result cache; retries follow backoff"
	whyCopies            = "one queue entry per message; recipients are grouped by host at delivery"
	whyJobs              = "delivery jobs are threads started by threaddepth and bounded by maxjobs"
	whyPriorityPools     = "one pool per channel (pool NAME); no per-priority pools"
	whySubdirs           = "the queue is not spread over subdirectories"
	whyImmediate         = "every message is delivered when it is queued; there is no periodic job"
	whyPriorityBySize    = "a message keeps its priority whatever its size"
	whyNoReverseDNS      = "no reverse DNS lookup of clients; Received: shows the IP only"
	whyNoIdent           = "no IDENT (RFC 1413) or reverse DNS lookups of clients"
	whyForwardCheck      = "client names are not looked up, so there is nothing to check"
	whySTARTTLS          = "the server offers STARTTLS whenever a certificate is configured"
	whyDefaultHost       = "unqualified addresses are not completed with a fixed domain"
	whyHeaderFiles       = "no header option files"
	whyReturnPath        = "Return-path: is not added at enqueue"
	whyLongHeaders       = "long header lines are not split"
	whyCharset           = "unlabelled text is not labelled with a charset"
	whySourceRoutes      = "source routes are not added to addresses"
	whyRFC822            = "addresses are RFC 822/5322 addresses"
	whyDate              = "Date: fields are never rewritten"
	whyAlternate         = "over-limit mail is not diverted"
	whyMailFromDNS       = "MAIL FROM domains are not checked in the DNS"
	whyLoopCheck         = "no XLOOP; loops are caught by counting Received: fields"
	whyQuota             = "quotas belong to the message store; the local channel has none"
	whyLogging           = "every channel writes mail.log"
	whyDefragment        = "message/partial fragments are not reassembled"
	whyPostCopies        = "no copies of notices to the postmaster"
	whyOneNoticeSchedule = "every priority follows the normal notices schedule (notices, normalnotices)"
	whyHeaderSRS         = "SRS addresses in header fields are left as they are; only envelope recipients are decoded"
)

// setSMTP is the smtp keyword and its line-ending spellings: the channel speaks
// SMTP (and so not LMTP).
func setSMTP(c *ChannelConfig, _ Keyword) { c.SMTP, c.LMTP = true, false }

// checkSubstitutions: a filter URL-pattern or fileinto template may use only
// the substitutions mtad can make (filter.CheckPattern).
func checkSubstitutions(arg string) string {
	if err := filter.CheckPattern(arg); err != nil {
		return err.Error()
	}
	return ""
}

// checkPoolName: the product's documentation allows pool names of at most 12
// characters.
func checkPoolName(arg string) string {
	if len(arg) > maxPoolNameLen {
		return fmt.Sprintf("pool name %q is longer than %d characters", arg, maxPoolNameLen)
	}
	return ""
}

// checkIPAddress: interfaceaddress names the local address outbound connections
// are made from, which must be an IP address (a name would need a lookup at
// every connection and could change under the running channel).
func checkIPAddress(arg string) string {
	if _, err := netip.ParseAddr(arg); err != nil {
		return fmt.Sprintf("%q is not an IP address", arg)
	}
	return ""
}
