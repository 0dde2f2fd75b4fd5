package resp

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadFrame(t *testing.T) {
	frames := []struct {
		raw string
		typ byte
	}{
		{"+OK\r\n", '+'},
		{"-ERR bad\r\n", '-'},
		{":42\r\n", ':'},
		{"$5\r\nhello\r\n", '$'},
		{"$-1\r\n", '$'},
		{"$0\r\n\r\n", '$'},
		{"*-1\r\n", '*'},
		{"*2\r\n$1\r\na\r\n*1\r\n:1\r\n", '*'},
		{"_\r\n", '_'},
		{"#t\r\n", '#'},
		{",3.14\r\n", ','},
		{"(3492890328409238509324850943850943825024385\r\n", '('},
		{"!21\r\nSYNTAX invalid syntax\r\n", '!'},
		{"=15\r\ntxt:Some string\r\n", '='},
		{"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", '%'},
		{"~2\r\n+a\r\n+b\r\n", '~'},
		{">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nmsg\r\n", '>'},
		{"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n", '|'},
		// An attribute inside an aggregate annotates the next element.
		{"*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", '*'},
		{"$10\r\nwith\r\nCRLF\r\n", '$'},
	}
	var all strings.Builder
	for _, f := range frames {
		all.WriteString(f.raw)
	}
	r := bufio.NewReaderSize(strings.NewReader(all.String()), 16)
	for _, f := range frames {
		got, typ, err := ReadFrame(r, nil)
		require.NoError(t, err, f.raw)
		assert.Equal(t, f.raw, string(got))
		assert.Equal(t, string(f.typ), string(typ))
	}
	_, _, err := ReadFrame(r, nil)
	assert.ErrorIs(t, err, io.EOF)

	_, _, err = ReadFrame(bufio.NewReader(strings.NewReader("?x\r\n")), nil)
	assert.ErrorIs(t, err, ErrProtocol)
	_, _, err = ReadFrame(bufio.NewReader(strings.NewReader("$5\r\nab")), nil)
	assert.Error(t, err)
}

func TestReadCommand(t *testing.T) {
	in := string(Command("SET", "k", "a\r\nb")) + "PING\r\n" + "\r\n" + "*0\r\n" + "get  x\n"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)

	args, raw, err := ReadCommand(r)
	require.NoError(t, err)
	assert.Equal(t, []string{"SET", "k", "a\r\nb"}, args)
	assert.Equal(t, string(Command("SET", "k", "a\r\nb")), string(raw))

	args, raw, err = ReadCommand(r)
	require.NoError(t, err)
	assert.Equal(t, []string{"PING"}, args)
	assert.Equal(t, "PING\r\n", string(raw))

	args, _, err = ReadCommand(r)
	require.NoError(t, err)
	assert.Empty(t, args)
	args, _, err = ReadCommand(r)
	require.NoError(t, err)
	assert.Empty(t, args)

	args, _, err = ReadCommand(r)
	require.NoError(t, err)
	assert.Equal(t, []string{"get", "x"}, args)

	_, _, err = ReadCommand(r)
	assert.ErrorIs(t, err, io.EOF)

	_, _, err = ReadCommand(bufio.NewReader(strings.NewReader("*1\r\n:1\r\n")))
	assert.ErrorIs(t, err, ErrProtocol)
}

func TestReadValue(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want any
	}{
		{"+OK\r\n", "OK"},
		{"-ERR bad\r\n", ErrorReply("ERR bad")},
		{"!3\r\nBAD\r\n", ErrorReply("BAD")},
		{":42\r\n", int64(42)},
		{"$5\r\nhello\r\n", "hello"},
		{"$-1\r\n", nil},
		{"_\r\n", nil},
		{"#t\r\n", true},
		{"*2\r\n$1\r\na\r\n:1\r\n", []any{"a", int64(1)}},
		{"%1\r\n+k\r\n+v\r\n", []any{"k", "v"}},
		{">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", Push{"invalidate", []any{"k"}}},
		{"|1\r\n+ttl\r\n:3\r\n+OK\r\n", "OK"},
	} {
		got, err := ReadValue(bufio.NewReader(strings.NewReader(tc.raw)))
		require.NoError(t, err, tc.raw)
		assert.Equal(t, tc.want, got, tc.raw)
	}
	_, err := ReadValue(bufio.NewReader(strings.NewReader("?x\r\n")))
	require.ErrorIs(t, err, ErrProtocol)
}
