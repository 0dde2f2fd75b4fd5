package resp

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
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

// allocated returns the bytes allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A header announcing a huge argument, bulk or aggregate costs nothing
// until its data arrives: a 14-byte attack must not allocate 512 MB.
func TestHeadersAllocateNothingBeforeData(t *testing.T) {
	for _, in := range []string{
		"*1\r\n$536870912\r\n",
		"*16777216\r\n",
		"*16777216\r\n$3\r\nGET\r\n",
	} {
		got := allocated(func() {
			_, _, err := ReadCommand(bufio.NewReader(strings.NewReader(in)))
			require.ErrorIs(t, err, io.ErrUnexpectedEOF, in)
		})
		assert.Less(t, got, uint64(1<<20), "ReadCommand(%q) allocated %d bytes", in, got)
		got = allocated(func() {
			// Over the budget: the head comes back at once, to stream the rest.
			h, err := ReadCommandHead(bufio.NewReader(strings.NewReader(in)), 1<<20)
			if err == nil {
				require.True(t, h.Partial(), in)
			} else {
				require.ErrorIs(t, err, io.ErrUnexpectedEOF, in)
			}
		})
		assert.Less(t, got, uint64(1<<20), "ReadCommandHead(%q) allocated %d bytes", in, got)
	}
	for _, in := range []string{"$536870912\r\n", "*16777216\r\n", "%8388608\r\n"} {
		got := allocated(func() {
			_, _, err := ReadFrame(bufio.NewReader(strings.NewReader(in)), nil)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF, in)
		})
		assert.Less(t, got, uint64(1<<20), "ReadFrame(%q) allocated %d bytes", in, got)
		got = allocated(func() {
			_, err := ReadValue(bufio.NewReader(strings.NewReader(in)))
			require.Error(t, err, in)
		})
		assert.Less(t, got, uint64(1<<20), "ReadValue(%q) allocated %d bytes", in, got)
	}
}

// Lines are bounded as Redis bounds them, with an error that says so.
func TestCommandLinesAreBounded(t *testing.T) {
	_, _, err := ReadCommand(bufio.NewReader(strings.NewReader(strings.Repeat("x", 70<<10) + "\r\n")))
	require.ErrorIs(t, err, ErrProtocol)
	require.ErrorContains(t, err, "line longer than 65536 bytes")
	_, _, err = ReadCommand(bufio.NewReader(strings.NewReader("*16777217\r\n")))
	require.ErrorContains(t, err, "16777217 arguments")
	require.ErrorIs(t, err, ErrMultibulkLength)
	// A lower cap is enforced on the first line, before any argument.
	_, err = ReadCommandHeadMax(bufio.NewReader(strings.NewReader("*1048577\r\n")), 64<<10, 1<<20)
	require.ErrorIs(t, err, ErrMultibulkLength)
	require.ErrorIs(t, err, ErrProtocol)
	require.EqualError(t, err, "RESP protocol error: invalid multibulk length: 1048577 arguments (at most 1048576)")
	h, err := ReadCommandHeadMax(bufio.NewReader(strings.NewReader("*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n")), 64<<10, 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"ECHO", "x"}, h.Args)
}

// A command over the budget comes back as its head; CopyRest passes the
// rest on unchanged, without keeping it.
func TestReadCommandHeadStreamsTheRest(t *testing.T) {
	big := strings.Repeat("v", 300<<10)
	cmd := string(Command("SET", "key", big, "EX", "10"))
	r := bufio.NewReaderSize(strings.NewReader(cmd+"*1\r\n$4\r\nPING\r\n"), 4096)
	h, err := ReadCommandHead(r, 64<<10)
	require.NoError(t, err)
	require.True(t, h.Partial())
	assert.Equal(t, []string{"SET", "key"}, h.Args)
	var out bytes.Buffer
	out.Grow(len(cmd))
	out.Write(h.Raw)
	got := allocated(func() { require.NoError(t, h.CopyRest(r, &out)) })
	assert.Equal(t, cmd, out.String())
	assert.False(t, h.Partial())
	// The rest went through in pieces, never whole.
	assert.Less(t, got, uint64(len(big)/2))

	h, err = ReadCommandHead(r, 64<<10)
	require.NoError(t, err)
	assert.False(t, h.Partial())
	assert.Equal(t, []string{"PING"}, h.Args)
}

// StreamFrame hands over a large frame in bounded pieces that add up to it.
func TestStreamFrame(t *testing.T) {
	frame := "*2\r\n$200000\r\n" + strings.Repeat("x", 200000) + "\r\n:1\r\n"
	var pieces []int
	var all strings.Builder
	typ, err := StreamFrame(bufio.NewReader(strings.NewReader(frame)), func(p []byte) error {
		pieces = append(pieces, len(p))
		all.Write(p)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, byte('*'), typ)
	assert.Equal(t, frame, all.String())
	for _, n := range pieces {
		assert.LessOrEqual(t, n, 64<<10)
	}
}
