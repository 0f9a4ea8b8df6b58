//go:build race

package lincheck

// Under the race detector the sweeps run fewer seeds.
const raceEnabled = true
