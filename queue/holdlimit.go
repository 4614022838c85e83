package queue

import "fmt"

// HoldLimitReason is the .HELD reason for a message whose recipients give some
// channel more than its holdlimit (operations.md §6, "Suspicious"), "" when none
// does. limit returns a channel's holdlimit (0: none). Channels are looked at in
// recipient order, so the reason is deterministic. The SMTP service, local
// submission and reprocessing all decide with it.
func HoldLimitReason(rcpts []Recipient, limit func(channel string) int) string {
	any := false
	for _, r := range rcpts {
		if limit(r.Channel) > 0 {
			any = true
			break
		}
	}
	if !any {
		return "" // no map for the common case: no holdlimit anywhere
	}
	count := map[string]int{}
	for _, r := range rcpts {
		count[r.Channel]++
	}
	for _, r := range rcpts {
		if n, lim := count[r.Channel], limit(r.Channel); lim > 0 && n > lim {
			return fmt.Sprintf("holdlimit: %d recipients for channel %s (holdlimit %d)", n, r.Channel, lim)
		}
	}
	return ""
}
