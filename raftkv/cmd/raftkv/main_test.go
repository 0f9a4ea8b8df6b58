package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	base := []string{"-id", "1", "-cluster", "1=127.0.0.1:7001,2=127.0.0.1:7002", "-listen", "127.0.0.1:8001", "-data", "/tmp/x"}
	cfg, err := parseFlags(base)
	require.NoError(t, err)
	require.Equal(t, map[int64]string{1: "127.0.0.1:7001", 2: "127.0.0.1:7002"}, cfg.Cluster)

	cfg, err = parseFlags([]string{"-id", "4", "-join", "127.0.0.1:8001", "-peer-listen", "127.0.0.1:7004", "-listen", "127.0.0.1:8004", "-data", "/tmp/y"})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8001", cfg.Join)

	with := func(args ...string) []string { return append(append([]string{}, base...), args...) }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-listen", "127.0.0.1:8001", "-data", "/d", "-cluster", "1=a:1"}, "-id: a positive node id is required"},
		{with("-id", "-3"), "-id: a positive node id is required"},
		{with("-id", "x"), `invalid value "x" for flag -id`},
		{[]string{"-id", "1", "-cluster", "1=a:1", "-data", "/d"}, "-listen: a client address"},
		{with("-listen", "nope"), `-listen: "nope" is not host:port`},
		{[]string{"-id", "1", "-cluster", "1=a:1", "-listen", "a:2"}, "-data: a data directory is required"},
		{[]string{"-id", "1", "-listen", "a:2", "-data", "/d"}, "-cluster or -join is required"},
		{with("-join", "a:9"), "give one, not both"},
		{with("-cluster", "1=a:1,x"), `-cluster: "x" is not id=host:port`},
		{with("-cluster", "0=a:1"), "the id must be a positive integer"},
		{with("-cluster", "1=a:1,1=b:2"), "node 1 is named twice"},
		{with("-cluster", "1=a"), `-cluster: "a" is not host:port`},
		{with("-cluster", "2=a:1"), "-cluster does not name node 1"},
		{[]string{"-id", "4", "-join", "a:1", "-listen", "a:2", "-data", "/d"}, "-peer-listen is required with -join"},
		{with("-snapshot-every", "0"), "-snapshot-every 0"},
		{with("-tick", "0s"), "-tick 0s"},
		{with("-request-timeout", "-1s"), "-request-timeout -1s"},
		{with("-log-level", "loud"), `-log-level "loud"`},
		{with("stray"), `unexpected arguments ["stray"]`},
	} {
		_, err := parseFlags(tc.args)
		require.ErrorContains(t, err, tc.want, "%q", tc.args)
	}
}
