package resp

import (
	"bytes"
	"fmt"
)

// Scanner finds where RESP frames end in a byte slice without copying or
// decoding them: the auto-pipelining socket splits the server's replies
// (and go-redis's commands) with it. It is resumable: when a frame is not
// complete yet, the scanner keeps its place, and the next Scan, given the
// same frame's bytes with more appended, continues from there instead of
// walking the frame again (an LRANGE of a million elements arrives in
// hundreds of reads).
//
// Its limits are ReadFrame's: lines of at most 1 MiB, bulk strings of at
// most 512 MiB, aggregates of at most 2^24 elements. Nesting needs no
// limit here: the scanner counts the elements still to come instead of
// recursing.
//
// The zero Scanner is ready to use.
type Scanner struct {
	pos  int // where the scan of the current frame resumes
	left int // elements still to come in the current frame
	typ  byte
	seen int // bytes of the line at pos known to hold no LF
}

// Scan reports the length of the frame at the start of b and its type
// byte. n is 0 when b holds only part of the frame: call Scan again with
// the same bytes and more appended. A top-level attribute frame ('|') is
// returned on its own, as ReadFrame does.
func (s *Scanner) Scan(b []byte) (n int, typ byte, err error) {
	if s.pos == 0 {
		s.left, s.typ = 1, 0
	}
	for s.left > 0 {
		if s.pos >= len(b) {
			return 0, 0, nil
		}
		t := b[s.pos]
		end, ok, err := lineEnd(b, s.pos, s.seen)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			// Next time, look for the LF only in what has been appended.
			s.seen = len(b) - s.pos
			return 0, 0, nil
		}
		s.seen = 0
		first := s.typ == 0
		if first {
			s.typ = t
		}
		switch t {
		case '+', '-', ':', '_', ',', '(', '#':
			s.pos = end
			s.left--
		case '$', '!', '=':
			l, err := scanInt(b[s.pos+1 : end-2])
			if err != nil {
				return 0, 0, err
			}
			if l < 0 {
				s.pos = end
				s.left--
				continue
			}
			if l > maxBulkLen {
				return 0, 0, fmt.Errorf("%w: bulk too large", ErrProtocol)
			}
			if len(b) < end+l+2 {
				return 0, 0, nil
			}
			if b[end+l] != '\r' || b[end+l+1] != '\n' {
				return 0, 0, fmt.Errorf("%w: bulk string not followed by CRLF", ErrProtocol)
			}
			s.pos = end + l + 2
			s.left--
		case '*', '~', '>', '%', '|':
			l, err := scanInt(b[s.pos+1 : end-2])
			if err != nil {
				return 0, 0, err
			}
			// A map's or an attribute's elements are its keys and values,
			// as ReadFrame counts them against the limit (l has at most 18
			// digits: doubling it cannot overflow).
			elems := l
			if t == '%' || t == '|' {
				elems *= 2
			}
			if elems > maxElements {
				return 0, 0, fmt.Errorf("%w: aggregate too large", ErrProtocol)
			}
			s.pos = end
			switch {
			case l < 0 && t == '|' && !first:
				// Even a null attribute is not an element: the element it
				// annotates still comes, as ReadFrame reads it.
			case l < 0:
				s.left-- // RESP2 null array
			case t == '%':
				s.left += 2*l - 1
			case t == '|':
				// An attribute annotates the element after it: that
				// element still counts, the attribute's pairs come first.
				// At the top level it is a frame of its own.
				if first {
					s.left += 2*l - 1
				} else {
					s.left += 2 * l
				}
			default:
				s.left += l - 1
			}
		default:
			return 0, 0, fmt.Errorf("%w: unknown type byte %q", ErrProtocol, t)
		}
	}
	n, typ = s.pos, s.typ
	*s = Scanner{}
	return n, typ, nil
}

// lineEnd returns the index just past the CRLF of the line starting at i,
// and false when the line is not complete yet. Its first seen bytes are
// known to hold no LF.
func lineEnd(b []byte, i, seen int) (int, bool, error) {
	limit := min(len(b), i+maxLineLen)
	// From i itself: a line that is a bare LF is not ended by CRLF either.
	// (min: a caller passing fewer bytes than last time gets no panic.)
	from := min(i+seen, limit)
	if k := bytes.IndexByte(b[from:limit], '\n'); k >= 0 {
		j := from + k
		if j == i || b[j-1] != '\r' {
			return 0, false, fmt.Errorf("%w: line not ended by CRLF", ErrProtocol)
		}
		return j + 1, true, nil
	}
	if limit-i >= maxLineLen {
		return 0, false, fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLineLen)
	}
	return 0, false, nil
}

// scanInt parses a header's length: an optional '-' and at most 18 digits.
func scanInt(b []byte) (int, error) {
	neg := len(b) > 0 && b[0] == '-'
	d := b
	if neg {
		d = b[1:]
	}
	if len(d) == 0 || len(d) > 18 {
		return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, b)
	}
	n := 0
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: bad length %q", ErrProtocol, b)
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}
