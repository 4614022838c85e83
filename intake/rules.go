package intake

import (
	"context"
	"strings"

	"mtad.dev/mta/engine"
	"mtad.dev/mta/mappings"
	"mtad.dev/mta/queue"
)

// Resolver is the part of the rewrite engine intake uses; *engine.RuleSet has it.
type Resolver interface {
	Resolve(engine.Request) engine.Resolution
	Rewrite(engine.Request) engine.Result
}

// AccessTables runs one access table on a probe. ok is false when the table does
// not exist or nothing matched.
type AccessTables interface {
	Access(table, probe string, in mappings.Flags) (a mappings.Access, ok bool)
}

// Enqueuer is the queue as intake sees it: Enqueue returns once the message is
// durable (fsync'd), and only then may anybody be told it was accepted.
type Enqueuer interface {
	Enqueue(ctx context.Context, env *queue.Envelope, content []byte) (string, error)
}

// Channel is what intake needs of one channel of the configuration. A channel
// name missing from Rules.Channels does not exist.
type Channel struct {
	// HoldLimit is holdlimit: a message giving the channel more recipients than
	// this is queued .HELD; 0 none.
	HoldLimit int
	// SourceSRS, DestinationSRS and AddressSRS are sourcesrs, destinationsrs
	// and addresssrs: a copy's sender is rewritten with SRS when all three
	// hold (forwardSRS).
	SourceSRS, DestinationSRS, AddressSRS bool
}

// Rules are the intake decisions of one compiled image. They are immutable once
// handed out: a transaction keeps the Rules it began with, so a reload never mixes
// two rule sets in one message.
type Rules struct {
	Resolver Resolver      // rewriting, routing, alias expansion; nil: routing unavailable
	Access   AccessTables  // the access tables; nil: none
	Auth     Authenticator // sender authentication (SPF, DKIM, DMARC); nil: none
	SRS      SRS           // the Sender Rewriting Scheme; nil: none
	Filter   Filter        // the Sieve filters of acceptance (MTA-wide, source, destination); nil: none
	Channels map[string]Channel
	Hostname string // our name in Received: and for the loop count

	// MaxReceivedLines is MAX_RECEIVED_LINES: a message with more Received:
	// fields than this, ours included, is queued .HELD; 0: DefaultMaxReceivedLines.
	MaxReceivedLines int
	// MaxLocalReceivedLines is MAX_LOCAL_RECEIVED_LINES: the same for the fields
	// whose "by" names Hostname (a loop through this MTA); 0:
	// DefaultMaxLocalReceivedLines.
	MaxLocalReceivedLines int
	// HeldSndopr is HELD_SNDOPR: the loop check and holdlimit holding a message
	// write a warning, not an informational line, to the diagnostic log.
	HeldSndopr bool
	// AccessORCPT is ACCESS_ORCPT: bit 0 appends the original recipient as a last
	// "|type;address" field to the probes of all four recipient tables; bits 1 to 4
	// do it for ORIG_SEND_ACCESS, SEND_ACCESS, ORIG_MAIL_ACCESS and MAIL_ACCESS
	// alone.
	AccessORCPT int
}

// hostname is our name, "localhost" when the configuration gives none.
func (r *Rules) hostname() string {
	if r.Hostname != "" {
		return r.Hostname
	}
	return "localhost"
}

// channelExists reports whether the configuration has the channel.
func (r *Rules) channelExists(name string) bool {
	_, ok := r.Channels[name]
	return ok
}

// Tables adapts a compiled mapping set to AccessTables; general is the general
// database for ${key} lookups in the tables' templates (keys lower-cased). A nil
// set gives nil: no access tables.
func Tables(set *mappings.Set, general map[string]string) AccessTables {
	if set == nil {
		return nil
	}
	env := &mappings.Env{}
	if general != nil {
		env.General = func(key string) (string, bool) {
			v, ok := general[strings.ToLower(key)]
			return v, ok
		}
	}
	return mappingTables{set: set, env: env}
}

type mappingTables struct {
	set *mappings.Set
	env *mappings.Env
}

func (m mappingTables) Access(table, probe string, in mappings.Flags) (mappings.Access, bool) {
	if !m.set.Has(table) {
		return mappings.Access{}, false
	}
	r, ok := m.set.Map(table, probe, in, m.env)
	if !ok || !r.Matched {
		return mappings.Access{}, false
	}
	return mappings.DecodeAccess(r), true
}
