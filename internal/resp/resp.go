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

// Limits protecting readers against garbage input.
const (
	maxLineLen  = 1 << 20
	maxBulkLen  = 512 << 20
	maxElements = 1 << 24
	maxDepth    = 64
)

// ErrProtocol is wrapped by errors about malformed input.
var ErrProtocol = errors.New("RESP protocol error")

// readLine reads a line including its terminating "\n".
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
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
		if len(line) > maxLineLen {
			return nil, fmt.Errorf("%w: line too long", ErrProtocol)
		}
	}
}

// lineInt parses the integer of a header line such as "*3\r\n".
func lineInt(line []byte) (int, error) {
	s := strings.TrimRight(string(line[1:]), "\r\n")
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, s)
	}
	return n, nil
}

// ReadCommand reads one client command: a RESP array of bulk strings or an
// inline command. It returns the arguments (empty for an empty inline line
// or an empty array, which Redis ignores) and the raw bytes to forward.
func ReadCommand(r *bufio.Reader) (args []string, raw []byte, err error) {
	line, err := readLine(r)
	if err != nil {
		return nil, nil, err
	}
	raw = line
	if line[0] != '*' {
		return strings.Fields(string(line)), raw, nil
	}
	n, err := lineInt(line)
	if err != nil {
		return nil, nil, err
	}
	if n <= 0 {
		return nil, raw, nil
	}
	if n > maxElements {
		return nil, nil, fmt.Errorf("%w: too many arguments", ErrProtocol)
	}
	args = make([]string, 0, n)
	for i := 0; i < n; i++ {
		hdr, err := readLine(r)
		if err != nil {
			return nil, nil, err
		}
		if hdr[0] != '$' {
			return nil, nil, fmt.Errorf("%w: expected '$', got %q", ErrProtocol, hdr[0])
		}
		size, err := lineInt(hdr)
		if err != nil {
			return nil, nil, err
		}
		if size < 0 || size > maxBulkLen {
			return nil, nil, fmt.Errorf("%w: bad bulk length %d", ErrProtocol, size)
		}
		raw = append(raw, hdr...)
		start := len(raw)
		raw = append(raw, make([]byte, size+2)...)
		if _, err := io.ReadFull(r, raw[start:]); err != nil {
			return nil, nil, err
		}
		if !bytes.HasSuffix(raw, []byte("\r\n")) {
			return nil, nil, fmt.Errorf("%w: bulk string not terminated by CRLF", ErrProtocol)
		}
		args = append(args, string(raw[start:start+size]))
	}
	return args, raw, nil
}

// ReadFrame reads one complete RESP2/RESP3 frame and appends its raw bytes
// to buf. It returns the frame's type byte. Attribute frames ('|') are
// returned on their own at the top level (the caller attaches them to the
// following frame); inside aggregates they are read together with the
// element they annotate.
func ReadFrame(r *bufio.Reader, buf []byte) ([]byte, byte, error) {
	return readFrameDepth(r, buf, 0)
}

func readFrameDepth(r *bufio.Reader, buf []byte, depth int) ([]byte, byte, error) {
	if depth > maxDepth {
		return nil, 0, fmt.Errorf("%w: nesting too deep", ErrProtocol)
	}
	line, err := readLine(r)
	if err != nil {
		return nil, 0, err
	}
	buf = append(buf, line...)
	typ := line[0]
	switch typ {
	case '+', '-', ':', '_', ',', '(', '#':
		return buf, typ, nil
	case '$', '!', '=':
		n, err := lineInt(line)
		if err != nil {
			return nil, 0, err
		}
		if n < 0 {
			return buf, typ, nil // RESP2 null bulk string
		}
		if n > maxBulkLen {
			return nil, 0, fmt.Errorf("%w: bulk too large", ErrProtocol)
		}
		start := len(buf)
		buf = append(buf, make([]byte, n+2)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return nil, 0, err
		}
		return buf, typ, nil
	case '*', '~', '>', '%', '|':
		n, err := lineInt(line)
		if err != nil {
			return nil, 0, err
		}
		if n < 0 {
			return buf, typ, nil // RESP2 null array
		}
		if typ == '%' || typ == '|' {
			n *= 2
		}
		if n > maxElements {
			return nil, 0, fmt.Errorf("%w: aggregate too large", ErrProtocol)
		}
		for i := 0; i < n; i++ {
			var et byte
			buf, et, err = readFrameDepth(r, buf, depth+1)
			if err != nil {
				return nil, 0, err
			}
			if et == '|' {
				i-- // an attribute annotates the next element; it is not one
			}
		}
		return buf, typ, nil
	default:
		return nil, 0, fmt.Errorf("%w: unknown type byte %q", ErrProtocol, typ)
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
		out := make([]any, n)
		for i := range out {
			if out[i], err = ReadValue(r); err != nil {
				return nil, err
			}
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
	b := make([]byte, n+2)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return string(b[:n]), nil
}
