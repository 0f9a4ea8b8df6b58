package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRequestRoundTrip(t *testing.T) {
	ops := []Op{
		{Kind: Put, Key: "k", Value: []byte("v")},
		{Kind: Put, Key: "empty value", Value: []byte{}},
		{Kind: Delete, Key: "with/slash"},
		{Kind: Get, Key: strings.Repeat("k", 300)},
		{Kind: GetStale, Key: "\x00\xff"},
		{Kind: Put, Key: "big", Value: bytes.Repeat([]byte{7}, 70000)},
	}
	b := AppendRequest(nil, ops)
	size := RequestHeaderSize
	for _, op := range ops {
		size += OpSize(op)
	}
	require.LessOrEqual(t, len(b), size)
	require.Greater(t, len(b), size-RequestHeaderSize)
	got, err := DecodeRequest(b)
	require.NoError(t, err)
	require.Equal(t, ops, got)
}

func TestResponseRoundTrip(t *testing.T) {
	rs := []Result{
		{Status: 204, Body: []byte{}},
		{Status: 200, Body: bytes.Repeat([]byte("v"), 1000)},
		{Status: 404, Body: []byte(`no key "x"`)},
		{Status: 504, Body: []byte("deadline passed")},
	}
	b := AppendResponse(nil, rs)
	require.Len(t, b, ResponseSize(rs))
	got, err := DecodeResponse(b, len(rs))
	require.NoError(t, err)
	require.Equal(t, rs, got)

	_, err = DecodeResponse(b, len(rs)+1)
	require.ErrorIs(t, err, ErrMalformed)
}

func TestDecodeRequestMalformed(t *testing.T) {
	good := AppendRequest(nil, []Op{{Kind: Put, Key: "key", Value: []byte("value")}, {Kind: Get, Key: "key"}})
	for n := range len(good) {
		_, err := DecodeRequest(good[:n])
		require.ErrorIs(t, err, ErrMalformed, "truncated to %d bytes", n)
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"empty", "", "empty"},
		{"version", "\x02\x01\x03\x01k", "version 2"},
		{"no operations", "\x01\x00", "no operations"},
		{"count not a varint", "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "count"},
		{"too many", "\x01\x81\x08", "more than 1024"},
		{"count beyond the body", "\x01\x10\x03\x01k", "16 entries"},
		{"unknown kind", "\x01\x01\x09\x01k", "unknown kind 9"},
		{"kind zero", "\x01\x01\x00\x01k", "unknown kind 0"},
		{"key past the end", "\x01\x01\x03\x05k", "runs past the end"},
		{"value past the end", "\x01\x01\x01\x01k\x09v", "runs past the end"},
		{"trailing bytes", "\x01\x01\x03\x01kzz", "2 bytes after"},
	} {
		_, err := DecodeRequest([]byte(tc.body))
		require.ErrorIs(t, err, ErrMalformed, tc.name)
		require.ErrorContains(t, err, tc.want, tc.name)
	}
	_, err := DecodeRequest([]byte("\x01\x81\x08"))
	require.True(t, errors.Is(err, ErrTooManyOps))
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(AppendRequest(nil, []Op{{Kind: Put, Key: "k", Value: []byte("v")}, {Kind: GetStale, Key: "k"}}))
	f.Add([]byte("\x01\x01\x03\x05k"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := DecodeRequest(b)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		// What decodes encodes back to the same bytes.
		require.Equal(t, b, AppendRequest(nil, ops))
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(AppendResponse(nil, []Result{{Status: 200, Body: []byte("v")}, {Status: 404, Body: []byte("no")}}), 2)
	f.Fuzz(func(t *testing.T, b []byte, want int) {
		rs, err := DecodeResponse(b, want)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		require.Equal(t, b, AppendResponse(nil, rs))
	})
}
