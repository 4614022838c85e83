package daemon

import "context"

// startControl opens the control socket that mtactl talks to (qm, reload, log
// -reopen, counters, process, cache -flush). It is owned by the control-socket work;
// until then there is no socket and mtactl works on the files alone.
func (d *Daemon) startControl(ctx context.Context) error { return nil }
