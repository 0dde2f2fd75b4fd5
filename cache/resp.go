package cache

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// respError is an error reply.
type respError string

// pushValue is a RESP3 push frame.
type pushValue []any

var errProtocol = errors.New("redisfactory/cache: protocol error")

// readValue reads one RESP2/RESP3 value: string (simple, bulk, verbatim),
// int64, nil, []any (arrays, sets, maps flattened), respError or pushValue.
func readValue(r *bufio.Reader) (any, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: bad line %q", errProtocol, line)
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
			return respError(s.(string)), nil
		}
		return respError(body), nil
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
			return nil, fmt.Errorf("%w: bad length %q", errProtocol, body)
		}
		if n < 0 {
			return nil, nil
		}
		if typ == '%' || typ == '|' {
			n *= 2
		}
		if n > 1<<20 {
			return nil, fmt.Errorf("%w: array of %d", errProtocol, n)
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readValue(r); err != nil {
				return nil, err
			}
		}
		if typ == '|' {
			return readValue(r) // attributes precede the value
		}
		if typ == '>' {
			return pushValue(out), nil
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown type %q", errProtocol, typ)
}

func readBulk(r *bufio.Reader, body string) (any, error) {
	n, err := strconv.Atoi(body)
	if err != nil {
		return nil, fmt.Errorf("%w: bad length %q", errProtocol, body)
	}
	if n < 0 {
		return nil, nil
	}
	if n > 512<<20 {
		return nil, fmt.Errorf("%w: bulk of %d", errProtocol, n)
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return string(b[:n]), nil
}

// appendCommand appends a command as a RESP array of bulk strings.
func appendCommand(b []byte, args ...string) []byte {
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
