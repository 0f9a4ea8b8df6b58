// Package raft is the Raft consensus algorithm as a library.
package raft
