package compiler

import (
	"fmt"
	"slices"

	"mtad.dev/mta/cnf"
)

// Channel keywords that this version accepts without acting on them. Real product
// configurations must keep building, so none of them is an error; but an
// administrator who writes "transactionlimit 10" must learn if it does nothing, so
// each keyword here is either harmless by construction (no warning) or reported
// by cnbuild as a warning at its position. This file is the only place that
// decides it: TestKeywordEffects fails when a ChannelConfig field that no code
// outside the compiler reads is missing from unreadFields, or when a keyword is
// neither interpreted by apply nor listed in noEffect.

// effectClass says why a keyword has no effect.
type effectClass uint8

const (
	// irrelevant: the keyword tunes a mechanism this architecture does not have
	// (queue subdirectories, job batching, periodic jobs ...); nothing is lost.
	irrelevant effectClass = iota + 1
	// asBuilt: the keyword asks for what this version always does (mostly the
	// product's default spelled out, such as noinner or identnonenumeric).
	asBuilt
	// notImplemented: a feature this version lacks; cnbuild warns.
	notImplemented
)

// noEffect is one keyword's entry: its class, the reason shown in
// docs/configuration.md, and, for a keyword whose argument decides, the arguments
// for which it is asBuilt (any other argument is notImplemented).
type noEffect struct {
	class  effectClass
	why    string
	asArgs []string
}

// noEffect lists every channel keyword that has no effect in this version.
var noEffectKeywords = map[string]noEffect{
	// 3.1 protocol
	"smtp_lf":     {notImplemented, "the SMTP server requires CRLF line endings (bare LF is refused, 550 5.5.2)", nil},
	"smtp_cr":     {notImplemented, "the SMTP server requires CRLF line endings (bare CR is refused, 550 5.5.2)", nil},
	"smtp_crorlf": {notImplemented, "the SMTP server requires CRLF line endings (bare CR or LF is refused, 550 5.5.2)", nil},
	"smtp_crlf":   {asBuilt, "the SMTP server accepts CRLF line endings only", nil},
	"ehlo":        {asBuilt, "the SMTP client always says EHLO first and falls back to HELO", nil},
	"checkehlo":   {asBuilt, "the SMTP client always says EHLO first and falls back to HELO", nil},
	"noehlo":      {notImplemented, "the SMTP client always says EHLO first", nil},
	"allowetrn":   {notImplemented, "ETRN is not supported", nil},
	"blocketrn":   {asBuilt, "ETRN is not supported", nil},
	// 3.2 outbound host choice
	"connectalias":        {asBuilt, "hosts are connected to as queued", nil},
	"connectcanonical":    {notImplemented, "hosts are connected to as queued, never rewritten again at dequeue", nil},
	"cacheeverything":     {irrelevant, "no connection-result cache; retries follow backoff", nil},
	"cachefailures":       {irrelevant, "no connection-result cache; retries follow backoff", nil},
	"cachesuccesses":      {irrelevant, "no connection-result cache; retries follow backoff", nil},
	"nocache":             {irrelevant, "no connection-result cache; retries follow backoff", nil},
	"dequeue_removeroute": {notImplemented, "source routes are not stripped at dequeue", nil},
	// 3.3 copies, jobs
	"multiple":       {irrelevant, "one queue entry per message; recipients are grouped by host at delivery", nil},
	"single_sys":     {irrelevant, "one queue entry per message; recipients are grouped by host at delivery", nil},
	"single":         {irrelevant, "one queue entry per message; recipients are grouped by host at delivery", nil},
	"addrsperjob":    {irrelevant, "delivery jobs are threads started by threaddepth and bounded by maxjobs", nil},
	"filesperjob":    {irrelevant, "delivery jobs are threads started by threaddepth and bounded by maxjobs", nil},
	"subdirs":        {irrelevant, "the queue is not spread over subdirectories", nil},
	"nosubdirs":      {irrelevant, "the queue is not spread over subdirectories", nil},
	"urgentqueue":    {notImplemented, "one pool per channel (pool NAME); no per-priority pools", nil},
	"normalqueue":    {notImplemented, "one pool per channel (pool NAME); no per-priority pools", nil},
	"nonurgentqueue": {notImplemented, "one pool per channel (pool NAME); no per-priority pools", nil},
	"after":          {notImplemented, "no delay before delivery jobs", nil},
	// 3.4 immediacy
	"immediate":    {irrelevant, "every message is delivered when it is queued; there is no periodic job", nil},
	"periodic":     {irrelevant, "every message is delivered when it is queued; there is no periodic job", nil},
	"immurgent":    {irrelevant, "every message is delivered when it is queued; there is no periodic job", nil},
	"immnormal":    {irrelevant, "every message is delivered when it is queued; there is no periodic job", nil},
	"immnonurgent": {irrelevant, "every message is delivered when it is queued; there is no periodic job", nil},
	// 3.5 source-channel selection, reverse DNS
	"userswitchchannel":  {notImplemented, "no LDAP attribute lookups", nil},
	"identnonenumeric":   {asBuilt, "no IDENT and no reverse DNS: Received: and switchchannel use the client's IP", nil},
	"identnone":          {notImplemented, "no reverse DNS lookup of clients; Received: shows the IP only", nil},
	"identnonesymbolic":  {notImplemented, "no reverse DNS lookup of clients; Received: shows the IP only", nil},
	"identnonelimited":   {notImplemented, "no reverse DNS lookup of clients; Received: shows the IP only", nil},
	"identtcp":           {notImplemented, "no IDENT (RFC 1413) or reverse DNS lookups of clients", nil},
	"identtcpsymbolic":   {notImplemented, "no IDENT (RFC 1413) or reverse DNS lookups of clients", nil},
	"identtcpnumeric":    {notImplemented, "no IDENT (RFC 1413) lookups of clients", nil},
	"identtcplimited":    {notImplemented, "no IDENT (RFC 1413) or reverse DNS lookups of clients", nil},
	"forwardchecknone":   {asBuilt, "client names are not looked up, so there is nothing to check", nil},
	"forwardchecktag":    {notImplemented, "client names are not looked up, so there is nothing to check", nil},
	"forwardcheckdelete": {notImplemented, "client names are not looked up, so there is nothing to check", nil},
	// 3.6 TLS: the server offers STARTTLS whenever a certificate is configured
	"maytlsserver": {asBuilt, "the server offers STARTTLS whenever a certificate is configured", nil},
	"notlsserver":  {notImplemented, "the server offers STARTTLS whenever a certificate is configured", nil},
	// 3.7 addresses and headers
	"noremotehost":           {asBuilt, "unqualified header addresses are not completed", nil},
	"remotehost":             {notImplemented, "unqualified header addresses are not completed with the client's host", nil},
	"defaulthost":            {notImplemented, "unqualified addresses are not completed with a fixed domain", nil},
	"nodefaulthost":          {asBuilt, "unqualified addresses are not completed with a fixed domain", nil},
	"noinner":                {asBuilt, "embedded message headers are not rewritten", nil},
	"inner":                  {notImplemented, "embedded message/rfc822 headers are not rewritten", nil},
	"headertrim":             {notImplemented, "no header option files", nil},
	"noheadertrim":           {asBuilt, "no header option files", nil},
	"headerread":             {notImplemented, "no header option files", nil},
	"noheaderread":           {asBuilt, "no header option files", nil},
	"innertrim":              {notImplemented, "no header option files", nil},
	"noinnertrim":            {asBuilt, "no header option files", nil},
	"missingrecipientpolicy": {notImplemented, "messages without To:, Cc: or Bcc: pass unchanged (policies 0 and 1)", []string{"0", "1"}},
	"addreturnpath":          {notImplemented, "Return-path: is not added at enqueue", nil},
	"noaddreturnpath":        {asBuilt, "Return-path: is not added at enqueue", nil},
	"maxprocchars":           {notImplemented, "header lines are rewritten whatever their length", nil},
	"maxheaderaddrs":         {notImplemented, "long header lines are not split", nil},
	"maxheaderchars":         {notImplemented, "long header lines are not split", nil},
	"charset7":               {notImplemented, "unlabelled text is not labelled with a charset", nil},
	"charset8":               {notImplemented, "unlabelled text is not labelled with a charset", nil},
	"charsetesc":             {notImplemented, "unlabelled text is not labelled with a charset", nil},
	"authrewrite":            {notImplemented, "the AUTH identity is not written into headers (mail.log records it)", nil},
	"exproute":               {notImplemented, "source routes are not added to addresses", nil},
	"noexproute":             {asBuilt, "source routes are not added to addresses", nil},
	"improute":               {notImplemented, "source routes are not added to addresses", nil},
	"noimproute":             {asBuilt, "source routes are not added to addresses", nil},
	"822":                    {asBuilt, "addresses are RFC 822/5322 addresses", nil},
	"733":                    {notImplemented, "addresses are RFC 822/5322 addresses", nil},
	"bangstyle":              {notImplemented, "addresses are RFC 822/5322 addresses", nil},
	"datefour":               {notImplemented, "Date: fields are never rewritten", nil},
	"datetwo":                {notImplemented, "Date: fields are never rewritten", nil},
	"dayofweek":              {asBuilt, "Date: fields are never rewritten", nil},
	"nodayofweek":            {notImplemented, "Date: fields are never rewritten", nil},
	"returnpersonal":         {notImplemented, "notices carry no personal name", nil},
	"returnenvelope":         {notImplemented, "notices are sent with the empty return path", nil},
	// 3.9 limits
	"maxblocks":               {notImplemented, "messages are never fragmented (blocklimit refuses instead)", nil},
	"maxlines":                {notImplemented, "messages are never fragmented (linelimit refuses instead)", nil},
	"alternatechannel":        {notImplemented, "over-limit mail is not diverted", nil},
	"alternateblocklimit":     {notImplemented, "over-limit mail is not diverted", nil},
	"alternatelinelimit":      {notImplemented, "over-limit mail is not diverted", nil},
	"alternaterecipientlimit": {notImplemented, "over-limit mail is not diverted", nil},
	// 3.10 misc
	"mailfromdnsverify":   {notImplemented, "MAIL FROM domains are not checked in the DNS", nil},
	"nomailfromdnsverify": {asBuilt, "MAIL FROM domains are not checked in the DNS", nil},
	"loopcheck":           {notImplemented, "no XLOOP; loops are caught by counting Received: fields", nil},
	"noloopcheck":         {asBuilt, "no XLOOP; loops are caught by counting Received: fields", nil},
	"sourcefilter":        {notImplemented, "no Sieve filters", nil},
	"destinationfilter":   {notImplemented, "no Sieve filters", nil},
	"channelfilter":       {notImplemented, "no Sieve filters", nil},
	"filter":              {notImplemented, "no Sieve filters", nil},
	"nofilter":            {asBuilt, "no Sieve filters", nil},
	"fileinto":            {notImplemented, "no Sieve filters", nil},
	"holdexquota":         {irrelevant, "quotas belong to the message store; the local channel has none", nil},
	"noexquota":           {irrelevant, "quotas belong to the message store; the local channel has none", nil},
	"logging":             {asBuilt, "every channel writes mail.log", nil},
	"nologging":           {notImplemented, "every channel writes mail.log", nil},
	"logheader":           {notImplemented, "no header lines in mail.log", nil},
	"defragment":          {notImplemented, "message/partial fragments are not reassembled", nil},
	"nodefragment":        {asBuilt, "message/partial fragments are not reassembled", nil},
	"sendpost":            {notImplemented, "no copies of notices to the postmaster", nil},
	"copysendpost":        {notImplemented, "no copies of notices to the postmaster", nil},
	"errsendpost":         {notImplemented, "no copies of notices to the postmaster", nil},
	"nosendpost":          {asBuilt, "no copies of notices to the postmaster", nil},
	"warnpost":            {notImplemented, "no copies of notices to the postmaster", nil},
	"copywarnpost":        {notImplemented, "no copies of notices to the postmaster", nil},
	"errwarnpost":         {notImplemented, "no copies of notices to the postmaster", nil},
	"nowarnpost":          {asBuilt, "no copies of notices to the postmaster", nil},
}

// unreadFields are the ChannelConfig fields that no code outside the compiler
// reads, each with the keywords that set it (all in noEffectKeywords). A field
// with no keyword is the compiler's own bookkeeping.
var unreadFields = map[string][]string{
	"LineEnding":              {"smtp_lf", "smtp_cr", "smtp_crorlf", "smtp_crlf"},
	"EHLO":                    {"ehlo", "checkehlo", "noehlo"},
	"ConnectCanonical":        {"connectalias", "connectcanonical"},
	"Copies":                  {"multiple", "single_sys", "single"},
	"AddrsPerJob":             {"addrsperjob"},
	"FilesPerJob":             {"filesperjob"},
	"Subdirs":                 {"subdirs", "nosubdirs"},
	"Immediate":               {"immurgent", "immnormal", "immnonurgent"},
	"Periodic":                {"immediate", "periodic"},
	"UserSwitchChannel":       {"userswitchchannel"},
	"Ident":                   {"identnone", "identnonesymbolic", "identnonenumeric", "identnonelimited", "identtcp", "identtcpsymbolic", "identtcpnumeric", "identtcplimited"},
	"ForwardCheck":            {"forwardchecknone", "forwardchecktag", "forwardcheckdelete"},
	"RemoteHost":              {"remotehost", "noremotehost"},
	"DefaultHost":             {"defaulthost", "nodefaulthost"},
	"Inner":                   {"inner", "noinner"},
	"MissingRecipientPolicy":  {"missingrecipientpolicy"},
	"AddReturnPath":           {"addreturnpath", "noaddreturnpath"},
	"MaxProcChars":            {"maxprocchars"},
	"MaxHeaderAddrs":          {"maxheaderaddrs"},
	"MaxHeaderChars":          {"maxheaderchars"},
	"AuthRewrite":             {"authrewrite"},
	"MaxBlocks":               {"maxblocks"},
	"MaxLines":                {"maxlines"},
	"AlternateChannel":        {"alternatechannel"},
	"AlternateBlockLimit":     {"alternateblocklimit"},
	"AlternateLineLimit":      {"alternatelinelimit"},
	"AlternateRecipientLimit": {"alternaterecipientlimit"},
	"MailFromDNSVerify":       {"mailfromdnsverify", "nomailfromdnsverify"},
	"LoopCheck":               {"loopcheck", "noloopcheck"},
	"SourceFilter":            {"sourcefilter"},
	"DestinationFilter":       {"destinationfilter", "channelfilter"},
	"FileInto":                {"fileinto"},
	"Defragment":              {"defragment", "nodefragment"},
	"Logging":                 {"logging", "nologging"},
	"LogHeader":               {"logheader"},
	"SendPost":                {"sendpost", "copysendpost", "errsendpost", "nosendpost"},
	"WarnPost":                {"warnpost", "copywarnpost", "errwarnpost", "nowarnpost"},
	"ReturnPersonal":          {"returnpersonal"},
	// NoticesSet only drives the inheritance of the l channel's notices, which the
	// compiler resolves itself.
	"NoticesSet": nil,
}

// noEffectWarning is the cnbuild warning for keyword kw, "" when it has an effect
// or its lack of one is harmless.
func noEffectWarning(kw Keyword) string {
	e, ok := noEffectKeywords[kw.Name]
	if !ok || e.class != notImplemented {
		return ""
	}
	if len(e.asArgs) > 0 && len(kw.Args) > 0 && slices.Contains(e.asArgs, kw.Args[0]) {
		return ""
	}
	return fmt.Sprintf("channel keyword %q is not implemented in this version; it has no effect (%s)", kw.Name, e.why)
}

// warnNoEffect appends the warnings of noEffectWarning for the keywords of one
// line; a defaults line is reported once, at its own position.
func warnNoEffect(kws []Keyword, warns *cnf.ErrorList) {
	for _, k := range kws {
		if k.Unknown {
			continue
		}
		if msg := noEffectWarning(k); msg != "" {
			*warns = append(*warns, &cnf.Error{Pos: k.Pos, Msg: msg})
		}
	}
}

// NoEffectKeyword is one row of the "accepted without effect" table of
// docs/configuration.md.
type NoEffectKeyword struct {
	Name           string
	Why            string
	NotImplemented bool // cnbuild warns
	WarnUnlessArgs []string
}

// NoEffectKeywords lists the keywords that have no effect, sorted by name.
func NoEffectKeywords() []NoEffectKeyword {
	var out []NoEffectKeyword
	for _, name := range KeywordNames() {
		if e, ok := noEffectKeywords[name]; ok {
			out = append(out, NoEffectKeyword{Name: name, Why: e.why, NotImplemented: e.class == notImplemented, WarnUnlessArgs: e.asArgs})
		}
	}
	return out
}
