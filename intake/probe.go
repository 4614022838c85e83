package intake

// The probe formats of the access tables: one builder each, used by the SMTP
// service, local submission and `mtactl test`, so that what a table is asked is
// the same wherever the question comes from.

import (
	"net/netip"
	"strconv"
)

// The access tables, by the names the mappings file gives them.
const (
	PortAccess     = "PORT_ACCESS"
	FromAccess     = "FROM_ACCESS"
	OrigSendAccess = "ORIG_SEND_ACCESS"
	OrigMailAccess = "ORIG_MAIL_ACCESS"
	SendAccess     = "SEND_ACCESS"
	MailAccess     = "MAIL_ACCESS"
)

// PortProbe is the PORT_ACCESS probe of a connection,
// TCP|server-address|server-port|client-address|client-port; it is also the first
// five fields of the FROM_ACCESS and *_MAIL_ACCESS probes.
func PortProbe(local, remote netip.AddrPort) string {
	ip := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.Unmap().String()
	}
	return "TCP|" + ip(local.Addr()) + "|" + strconv.Itoa(int(local.Port())) + "|" +
		ip(remote.Addr()) + "|" + strconv.Itoa(int(remote.Port()))
}

// SMTPClient is the SMTP client of a transaction as the FROM_ACCESS and
// *_MAIL_ACCESS probes describe it.
type SMTPClient struct {
	Port string     // the connection's PortProbe
	Helo string     // the name the client gave in EHLO or HELO
	IP   netip.Addr // the client's address, for SPF
}

// mailPrefix is the part the FROM_ACCESS and *_MAIL_ACCESS probes share:
// port-access-probe-info|app-info|submit-type|.
func (c *SMTPClient) mailPrefix() string { return c.Port + "|SMTP/" + c.Helo + "|MAIL|" }

// FromProbe is the FROM_ACCESS probe:
// port-access-probe-info|app-info|submit-type|src-channel|from-address|auth-from.
// authFrom is the user AUTH succeeded for, "" without AUTH.
func (c *SMTPClient) FromProbe(src, from, authFrom string) string {
	return c.mailPrefix() + src + "|" + from + "|" + authFrom
}

// SendProbe is the ORIG_SEND_ACCESS and SEND_ACCESS probe:
// src-channel|from-address|dst-channel|to-address.
func SendProbe(src, from, dst, to string) string {
	return src + "|" + from + "|" + dst + "|" + to
}

// MailProbe is the ORIG_MAIL_ACCESS and MAIL_ACCESS probe: the SEND probe after
// the client's port-access-probe-info|app-info|submit-type.
func (c *SMTPClient) MailProbe(send string) string { return c.mailPrefix() + send }

// WithORCPT appends the original recipient ("type;address") to a recipient
// table's probe when ACCESS_ORCPT asks for it for that table (bit 0: every
// table; bits 1 to 4: ORIG_SEND_ACCESS, SEND_ACCESS, ORIG_MAIL_ACCESS,
// MAIL_ACCESS).
func (r *Rules) WithORCPT(table, probe, orcpt string) string {
	if r.AccessORCPT == 0 {
		return probe
	}
	bit := map[string]int{OrigSendAccess: 1, SendAccess: 2, OrigMailAccess: 3, MailAccess: 4}[table]
	if r.AccessORCPT&1 == 0 && (bit == 0 || r.AccessORCPT&(1<<bit) == 0) {
		return probe
	}
	return probe + "|" + orcpt
}
