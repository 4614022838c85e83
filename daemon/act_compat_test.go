package daemon

import (
	"context"

	"mtad.dev/mta/control"
)

// act is the old name of runMessageCommand, kept for hold_test.go only: that file
// is being moved by another change and is not edited here. Delete this file once
// hold_test.go calls runMessageCommand.
func (d *Daemon) act(ctx context.Context, cmd, id string) control.IDResult {
	return d.runMessageCommand(ctx, cmd, id)
}
