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
)
