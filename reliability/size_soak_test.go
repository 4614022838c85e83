//go:build soak

package reliability

import "time"

// The soak sizes (make soak).
const (
	soak           = true
	crashKills     = 20
	crashSenders   = 8
	cnbuildKills   = 40
	reloadKills    = 10
	cnbuildRules   = 100000
	crashRunBefore = 500 * time.Millisecond
	crashRunSpread = 3 * time.Second
	plCycles       = 20                      // SIGKILL and power cut cycles of TestPowerLoss
	plSenders      = 3                       // its concurrent SMTP clients
	plRunBefore    = 500 * time.Millisecond  // minimum run time before a cut
	plRunSpread    = 2500 * time.Millisecond // plus a random part up to this
	plPace         = 60 * time.Millisecond   // each sender's pause between messages
	rqSmall        = 100                     // TestPowerLossRequeue: messages requeued whole before a cut
	rqLarge        = 3000                    // and those whose requeue a cut interrupts
	rqCuts         = 3                       // cuts during their requeue
)
