package daemon

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"mtad.dev/mta/compiler"
	"mtad.dev/mta/intake"
	"mtad.dev/mta/status"
)

// newIntakeRules derives what accepting a message decides with from an image.
// Our name is the SMTP service's (BANNER_HOST when set, else the local channel's
// official host), so that the Received: field we add and the loop count that
// looks for it agree.
func newIntakeRules(img *compiler.Image) *intake.Rules {
	host := hostname(img)
	if b := img.ChannelOptionsFor(defaultSource(img)).BannerHost; b != "" {
		host = b
	}
	r := &intake.Rules{
		Access:                intake.Tables(img.Mappings, img.General),
		Channels:              make(map[string]intake.Channel, len(img.Channels)),
		Hostname:              host,
		MaxReceivedLines:      img.Options.MaxReceivedLines,
		MaxLocalReceivedLines: img.Options.MaxLocalReceivedLines,
		HeldSndopr:            heldSndopr(img),
		AccessORCPT:           img.Options.AccessORCPT,
	}
	if img.Rules != nil {
		r.Resolver = img.Rules
	}
	for i := range img.Channels {
		c := &img.Channels[i]
		r.Channels[c.Name] = intake.Channel{HoldLimit: c.HoldLimit,
			SourceSRS: c.SourceSRS, DestinationSRS: c.DestinationSRS, AddressSRS: c.AddressSRS}
	}
	r.SRS = newSRS(img)
	return r
}

// intakeRules are the intake rules of the image in force.
func (d *Daemon) intakeRules() *intake.Rules { return d.policy.Load().Intake }

// heldSndopr is option.dat HELD_SNDOPR (the compiler validates it as a boolean
// and keeps it in Options.Raw).
func heldSndopr(img *compiler.Image) bool {
	if img == nil {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(img.Options.Raw["HELD_SNDOPR"]))
	return err == nil && n != 0
}

// submitNotice queues a delivery status notice through intake: each recipient is
// rewritten and routed like any envelope recipient, with the local channel as
// source, and gets NOTIFY=NEVER.
func (d *Daemon) submitNotice(ctx context.Context, from string, to []string, content []byte) error {
	return d.submitVia(ctx, intake.Notice, from, to, "", content)
}

// submitVia queues a message the MTA makes itself (a notice, a filter's
// answer or redirected copy) through intake, with the local channel as source.
func (d *Daemon) submitVia(ctx context.Context, kind intake.Kind, from string, to []string, notify string, content []byte) error {
	tx, _ := d.intake.Begin(d.intakeRules(), intake.Origin{Kind: kind, Channel: localSource,
		Description: "localhost (internal)"}, from)
	for _, addr := range to {
		if out := tx.AddRecipient(intake.Recipient{Addr: addr, Notify: notify}); out.Refused != nil {
			return fmt.Errorf("recipient %s: %w", addr, out.Refused)
		}
	}
	if tx.Len() == 0 {
		return status.New(550, "5.1.1", "no deliverable recipient")
	}
	_, err := tx.Accept(ctx, intake.Message{Content: content})
	return err
}
