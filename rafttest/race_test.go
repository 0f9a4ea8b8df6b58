//go:build race

package rafttest

// Under the race detector TestRandom runs a small subset of seeds.
const raceEnabled = true
