//go:build !soak

package reliability

import "time"

// The CI sizes: each test a few seconds.
const (
	soak           = false
	crashKills     = 3                      // SIGKILL cycles of TestCrashRelay
	crashSenders   = 4                      // concurrent SMTP clients
	cnbuildKills   = 6                      // interrupted mtactl cnbuild runs
	reloadKills    = 2                      // SIGKILL right after an image swap
	cnbuildRules   = 20000                  // rewrite rules of the large configuration
	crashRunBefore = 300 * time.Millisecond // minimum run time before a kill
	crashRunSpread = 600 * time.Millisecond // plus a random part up to this
	plCycles       = 3                      // SIGKILL and power cut cycles of TestPowerLoss
	plSenders      = 3                      // its concurrent SMTP clients
	plRunBefore    = 300 * time.Millisecond // minimum run time before a cut
	plRunSpread    = 700 * time.Millisecond // plus a random part up to this
	plPace         = 60 * time.Millisecond  // each sender's pause between messages
	rqSmall        = 10                     // TestPowerLossRequeue: messages requeued whole before a cut
	rqLarge        = 300                    // and those whose requeue a cut interrupts
	rqCuts         = 1                      // cuts during their requeue
)
