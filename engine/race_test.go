//go:build race

package engine

// raceEnabled: the race detector changes allocation counts (sync.Pool drops
// items on purpose) and slows everything, so timing and allocation tests skip.
const raceEnabled = true
