// Package resp reads RESP2 and RESP3 frames and client commands from a
// byte stream. It is shared by the factory's health check and the test
// and maintenance proxies.
package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits protecting readers against garbage input. Memory for a length
// announced in a header is never allocated before the data arrives: bodies
// grow by at most chunkSize per read, aggregates by what was read.
const (
	maxLineLen    = 1 << 20
	maxCmdLineLen = 64 << 10 // Redis's own bound on inline commands and headers
	maxBulkLen    = 512 << 20
	maxElements   = 1 << 24
	maxDepth      = 64
	chunkSize     = 64 << 10
	// preallocation caps: larger aggregates grow as their elements arrive.
	maxPrealloc = 1024
)

// crlf ends every line of a frame and every bulk string's body.
var crlf = []byte("\r\n")

// ErrProtocol is wrapped by errors about malformed input.
var ErrProtocol = errors.New("RESP protocol error")

// ErrMultibulkLength is wrapped by the error about a command that
// announces more arguments than the reader allows; it wraps
// [ErrProtocol]. Its text ends in Redis's own words for it.
var ErrMultibulkLength = fmt.Errorf("%w: invalid multibulk length", ErrProtocol)

// readLine reads a line including its terminating "\n", of at most max
// bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, max)
		}
		if err == nil && line == nil {
			// The common case: the line is in the buffer. Copy it, as the
			// buffer is reused by the next read.
			return append(make([]byte, 0, len(chunk)), chunk...), nil
		}
		line = append(line, chunk...)
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// lineInt parses the length of a frame's header line such as "*3\r\n",
// which ends in CRLF, as the Scanner does (see scanInt): the two must agree
// on every frame.
func lineInt(line []byte) (int, error) {
	return scanInt(line[1 : len(line)-2])
}

// headerInt parses a command's header line ("*3\r\n", "$5\r\n") as
// strictly as Redis does: it ends in CRLF and holds a decimal integer with
// no sign other than '-' and no leading zero.
func headerInt(line []byte) (int, error) {
	body, ok := bytes.CutSuffix(line[1:], []byte("\r\n"))
	digits, _ := bytes.CutPrefix(body, []byte("-"))
	bad := !ok || len(digits) == 0 || len(digits) > 18 || (digits[0] == '0' && len(body) > 1)
	for _, c := range digits {
		bad = bad || c < '0' || c > '9'
	}
	if bad {
		return 0, fmt.Errorf("%w: bad header %q", ErrProtocol, line)
	}
	n, err := strconv.Atoi(string(body))
	if err != nil {
		return 0, fmt.Errorf("%w: bad header %q", ErrProtocol, line)
	}
	return n, nil
}

// readBody appends the next n bytes of r to buf, growing buf only as the
// bytes arrive, so that a header announcing a huge length costs nothing
// until the data is actually sent.
func readBody(r *bufio.Reader, buf []byte, n int) ([]byte, error) {
	for n > 0 {
		k := min(n, chunkSize)
		start := len(buf)
		buf = append(buf, make([]byte, k)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		n -= k
	}
	return buf, nil
}

// ReadCommand reads one client command: a RESP array of bulk strings or an
// inline command. It returns the arguments (empty for an empty inline line
// or an empty array, which Redis ignores) and the raw bytes to forward.
// Readers that must bound their memory use [ReadCommandHead].
func ReadCommand(r *bufio.Reader) (args []string, raw []byte, err error) {
	cmd, err := ReadCommandHead(r, maxBulkLen+maxCmdLineLen)
	if err != nil {
		return nil, nil, err
	}
	if cmd.Partial() {
		return nil, nil, fmt.Errorf("%w: command larger than %d bytes", ErrProtocol, maxBulkLen+maxCmdLineLen)
	}
	return cmd.Args, cmd.Raw, nil
}

// Head is a client command read by [ReadCommandHead]: in full, or, when
// it is larger than the reader's budget, its head.
type Head struct {
	// Args are the arguments read in full: all of them, unless the command
	// is [Head.Partial], in which case they are the ones that came
	// before the first argument that did not fit.
	Args []string
	// Raw holds the command's bytes read so far, to forward as they are.
	Raw []byte

	bodyLeft int // bytes (with CRLF) of the current argument still to copy
	argsLeft int // arguments after it, still to read
}

// Partial reports whether the command did not fit the budget: the rest of
// it is still to be read, with [Head.CopyRest].
func (c *Head) Partial() bool { return c.bodyLeft > 0 || c.argsLeft > 0 }

// ReadCommandHead reads a client command (a RESP array of bulk strings, or
// an inline command) keeping at most about budget bytes in memory. A larger
// command is returned [Head.Partial] after the headers that went over
// the budget; the caller forwards Raw and then the rest with
// [Head.CopyRest]. Lines (inline commands, headers) are limited to
// 64 KiB, as Redis does, arguments to 512 MiB and their number to 2^24.
func ReadCommandHead(r *bufio.Reader, budget int) (Head, error) {
	return ReadCommandHeadMax(r, budget, maxElements)
}

// ReadCommandHeadMax is [ReadCommandHead] with at most maxArgs arguments
// per command (at most 2^24 whatever maxArgs says; maxArgs <= 0 means
// 2^24). A command announcing more is an error wrapping
// [ErrMultibulkLength], returned as soon as its first line is read.
func ReadCommandHeadMax(r *bufio.Reader, budget, maxArgs int) (Head, error) {
	if maxArgs <= 0 || maxArgs > maxElements {
		maxArgs = maxElements
	}
	line, err := readLine(r, maxCmdLineLen)
	if err != nil {
		return Head{}, err
	}
	if line[0] != '*' {
		return Head{Args: strings.Fields(string(line)), Raw: line}, nil
	}
	n, err := headerInt(line)
	if err != nil {
		return Head{}, err
	}
	if n <= 0 {
		return Head{Raw: line}, nil
	}
	if n > maxArgs {
		return Head{}, fmt.Errorf("%w: %d arguments (at most %d)", ErrMultibulkLength, n, maxArgs)
	}
	cmd := Head{Args: make([]string, 0, min(n, 16)), Raw: line}
	for i := 0; i < n; i++ {
		size, hdr, err := readArgHeader(r)
		if err != nil {
			return Head{}, err
		}
		cmd.Raw = append(cmd.Raw, hdr...)
		// The argument's strings count against the budget as well as raw.
		if len(cmd.Raw)+size+2+16*len(cmd.Args) > budget {
			cmd.bodyLeft, cmd.argsLeft = size+2, n-i-1
			return cmd, nil
		}
		start := len(cmd.Raw)
		if cmd.Raw, err = readBody(r, cmd.Raw, size+2); err != nil {
			return Head{}, err
		}
		if !bytes.HasSuffix(cmd.Raw, []byte("\r\n")) {
			return Head{}, fmt.Errorf("%w: bulk string not terminated by CRLF", ErrProtocol)
		}
		cmd.Args = append(cmd.Args, string(cmd.Raw[start:start+size]))
	}
	return cmd, nil
}

// readArgHeader reads the "$<size>\r\n" header of a command argument.
func readArgHeader(r *bufio.Reader) (int, []byte, error) {
	hdr, err := readLine(r, maxCmdLineLen)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // inside a command
		}
		return 0, nil, err
	}
	if hdr[0] != '$' {
		return 0, nil, fmt.Errorf("%w: expected '$', got %q", ErrProtocol, hdr[0])
	}
	size, err := headerInt(hdr)
	if err != nil {
		return 0, nil, err
	}
	if size < 0 || size > maxBulkLen {
		return 0, nil, fmt.Errorf("%w: bad bulk length %d", ErrProtocol, size)
	}
	return size, hdr, nil
}

// CopyRest copies the rest of a [Head.Partial] command from r to w as it
// arrives, in pieces of at most 64 KiB, checking its structure (headers)
// but not keeping it. Bodies are passed on unchecked: the server rejects a
// body that does not end in CRLF.
func (c *Head) CopyRest(r *bufio.Reader, w io.Writer) error {
	for {
		if c.bodyLeft > 0 {
			if _, err := io.CopyN(w, r, int64(c.bodyLeft)); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			c.bodyLeft = 0
		}
		if c.argsLeft == 0 {
			return nil
		}
		// The header is parsed in the reader's buffer, not copied: a command
		// of millions of tiny arguments costs no allocation per argument.
		hdr, err := r.ReadSlice('\n')
		if err != nil || len(hdr) > 32 {
			if err == nil || errors.Is(err, bufio.ErrBufferFull) {
				err = fmt.Errorf("%w: argument header too long", ErrProtocol)
			} else if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if hdr[0] != '$' {
			return fmt.Errorf("%w: expected '$', got %q", ErrProtocol, hdr[0])
		}
		size, err := headerInt(hdr)
		if err != nil {
			return err
		}
		if size < 0 || size > maxBulkLen {
			return fmt.Errorf("%w: bad bulk length %d", ErrProtocol, size)
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		c.bodyLeft, c.argsLeft = size+2, c.argsLeft-1
	}
}

// ReadFrame reads one complete RESP2/RESP3 frame and appends its raw bytes
// to buf. It returns the frame's type byte. Attribute frames ('|') are
// returned on their own at the top level (the caller attaches them to the
// following frame); inside aggregates they are read together with the
// element they annotate. Every line must end in CRLF, every bulk string be
// followed by CRLF, and lengths be an optional '-' and at most 18 digits:
// [Scanner] splits frames by the same rules.
func ReadFrame(r *bufio.Reader, buf []byte) ([]byte, byte, error) {
	typ, err := streamFrame(r, func(piece []byte) error {
		buf = append(buf, piece...)
		return nil
	}, 0)
	if err != nil {
		return nil, 0, err
	}
	return buf, typ, nil
}

// StreamFrame reads one complete frame, as [ReadFrame] does, but hands it
// to emit as it arrives, in pieces of at most 64 KiB (lines, parts of
// bodies), instead of keeping it: its memory is bounded whatever the
// frame's size. emit may keep the pieces; an error from emit stops the
// read and is returned.
func StreamFrame(r *bufio.Reader, emit func(piece []byte) error) (byte, error) {
	return streamFrame(r, emit, 0)
}

func streamFrame(r *bufio.Reader, emit func([]byte) error, depth int) (byte, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("%w: nesting too deep", ErrProtocol)
	}
	line, err := readLine(r, maxLineLen)
	if err != nil {
		if depth > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // inside an aggregate
		}
		return 0, err
	}
	if !bytes.HasSuffix(line, crlf) {
		return 0, fmt.Errorf("%w: line not ended by CRLF", ErrProtocol)
	}
	if err := emit(line); err != nil {
		return 0, err
	}
	typ := line[0]
	switch typ {
	case '+', '-', ':', '_', ',', '(', '#':
		return typ, nil
	case '$', '!', '=':
		n, err := lineInt(line)
		if err != nil {
			return 0, err
		}
		if n < 0 {
			return typ, nil // RESP2 null bulk string
		}
		if n > maxBulkLen {
			return 0, fmt.Errorf("%w: bulk too large", ErrProtocol)
		}
		for off := 0; off < n+2; {
			piece, err := readBody(r, nil, min(n+2-off, chunkSize))
			if err != nil {
				return 0, err
			}
			// The body's last two bytes, maybe split between two pieces,
			// must be its CRLF: anything else means the length was wrong
			// and what follows would be read out of step.
			for i := max(n, off); i < off+len(piece); i++ {
				if piece[i-off] != crlf[i-n] {
					return 0, fmt.Errorf("%w: bulk string not followed by CRLF", ErrProtocol)
				}
			}
			if err := emit(piece); err != nil {
				return 0, err
			}
			off += len(piece)
		}
		return typ, nil
	case '*', '~', '>', '%', '|':
		n, err := lineInt(line)
		if err != nil {
			return 0, err
		}
		if n < 0 {
			return typ, nil // RESP2 null array
		}
		if typ == '%' || typ == '|' {
			n *= 2
		}
		if n > maxElements {
			return 0, fmt.Errorf("%w: aggregate too large", ErrProtocol)
		}
		for i := 0; i < n; i++ {
			et, err := streamFrame(r, emit, depth+1)
			if err != nil {
				return 0, err
			}
			if et == '|' {
				i-- // an attribute annotates the next element; it is not one
			}
		}
		return typ, nil
	default:
		return 0, fmt.Errorf("%w: unknown type byte %q", ErrProtocol, typ)
	}
}

// Command encodes a command as a RESP array of bulk strings.
func Command(args ...string) []byte {
	return AppendCommand(make([]byte, 0, 16+16*len(args)), args...)
}

// AppendCommand appends a command, as a RESP array of bulk strings, to b.
func AppendCommand(b []byte, args ...string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// ErrorReply is an error reply decoded by ReadValue.
type ErrorReply string

// Push is a RESP3 push frame decoded by ReadValue.
type Push []any

// ReadValue reads and decodes one RESP2/RESP3 value: string (simple, bulk,
// verbatim, double, big number), int64, bool, nil, []any (arrays, sets and
// maps flattened), ErrorReply or Push. Attributes are skipped.
func ReadValue(r *bufio.Reader) (any, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: bad line %q", ErrProtocol, line)
	}
	typ, body := line[0], string(line[1:len(line)-2])
	switch typ {
	case '+':
		return body, nil
	case '-', '!':
		if typ == '!' {
			s, err := readBulk(r, body)
			if err != nil {
				return nil, err
			}
			return ErrorReply(s.(string)), nil
		}
		return ErrorReply(body), nil
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '_':
		return nil, nil
	case '#':
		return body == "t", nil
	case ',', '(':
		return body, nil
	case '$', '=':
		return readBulk(r, body)
	case '*', '~', '>', '%', '|':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, fmt.Errorf("%w: bad length %q", ErrProtocol, body)
		}
		if n < 0 {
			return nil, nil
		}
		if typ == '%' || typ == '|' {
			n *= 2
		}
		if n > 1<<20 {
			return nil, fmt.Errorf("%w: array of %d", ErrProtocol, n)
		}
		out := make([]any, 0, min(n, maxPrealloc))
		for range n {
			v, err := ReadValue(r)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if typ == '|' {
			return ReadValue(r) // attributes precede the value
		}
		if typ == '>' {
			return Push(out), nil
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown type %q", ErrProtocol, typ)
}

func readBulk(r *bufio.Reader, body string) (any, error) {
	n, err := strconv.Atoi(body)
	if err != nil {
		return nil, fmt.Errorf("%w: bad length %q", ErrProtocol, body)
	}
	if n < 0 {
		return nil, nil
	}
	if n > 512<<20 {
		return nil, fmt.Errorf("%w: bulk of %d", ErrProtocol, n)
	}
	b, err := readBody(r, nil, n+2)
	if err != nil {
		return nil, err
	}
	return string(b[:n]), nil
}
