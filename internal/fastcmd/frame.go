package fastcmd

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unsafe"
)

// ErrMalformedFrame is wrapped by the error SetReply sets when a frame is not
// exactly one complete reply: it is truncated, announces more bytes than it
// holds, carries bytes after the reply, or nests deeper than maxFrameDepth.
// go-redis on a socket would wait for the missing bytes or misread the next
// reply; here the frame is all there is, so it is reported instead. It is not
// a redis.Error: it means the caller's framing is broken, not that the server
// answered with an error.
var ErrMalformedFrame = errors.New("fastcmd: malformed reply frame")

// maxFrameDepth bounds the nesting checkFrame accepts. go-redis discards
// attributes and their aggregates recursively; an attacker-sized nesting
// would grow the stack without bound, so deep frames never reach it.
const maxFrameDepth = 64

// checkFrame decides whether frame may be handed to go-redis's reader. It
// walks the reply the way go-redis consumes one (the header line up to the
// first '\n', lengths parsed with strconv.Atoi, attributes followed by the
// reply they annotate) and rejects a frame when go-redis would read past its
// end — which, on a real socket, means waiting for bytes that never come and
// possibly allocating a buffer of the announced length first — or when bytes
// are left after the reply.
//
// When the walk reaches something go-redis itself fails on (a bad line, a
// length that does not parse, an unknown type byte), go-redis stops reading
// there with its own error, so the rest of the frame cannot hurt and the
// frame is accepted: the error the caller sees is go-redis's.
func checkFrame(frame []byte) error {
	end, stopped, err := walkReply(frame, 0, 0)
	if err != nil {
		return err
	}
	if !stopped && end != len(frame) {
		return fmt.Errorf("%w: %d bytes after the reply", ErrMalformedFrame, len(frame)-end)
	}
	return nil
}

// walkReply walks the reply starting at pos and returns the offset after it.
// stopped is true when go-redis would fail inside this reply, at or before
// end, without reading further.
func walkReply(frame []byte, pos, depth int) (end int, stopped bool, err error) {
	if depth > maxFrameDepth {
		return 0, false, fmt.Errorf("%w: nested deeper than %d", ErrMalformedFrame, maxFrameDepth)
	}
	if pos >= len(frame) {
		return 0, false, fmt.Errorf("%w: truncated (reply expected at byte %d)", ErrMalformedFrame, pos)
	}
	nl := bytes.IndexByte(frame[pos:], '\n')
	if nl < 0 {
		return 0, false, fmt.Errorf("%w: truncated (no line end after byte %d)", ErrMalformedFrame, pos)
	}
	lineEnd := pos + nl + 1
	// go-redis rejects a line that does not end in "\r\n" or has nothing
	// before it ("redis: invalid reply").
	if nl+1 <= 2 || frame[lineEnd-2] != '\r' {
		return lineEnd, true, nil
	}
	line := frame[pos : lineEnd-2]
	switch line[0] {
	case '+', '-', ':', '_', ',', '#', '(':
		return lineEnd, false, nil
	case '$', '=', '!':
		n, ok := replyLen(line)
		if !ok {
			return lineEnd, true, nil
		}
		if n < 0 {
			return lineEnd, false, nil
		}
		if n > len(frame)-lineEnd-2 {
			return 0, false, fmt.Errorf("%w: announces %d bytes, holds %d", ErrMalformedFrame, n, len(frame)-lineEnd)
		}
		return lineEnd + n + 2, false, nil
	case '*', '~', '>', '%', '|':
		n, ok := replyLen(line)
		if !ok {
			return lineEnd, true, nil
		}
		elems := n
		if line[0] == '%' || line[0] == '|' {
			elems = 2 * n
			if n > len(frame) { // 2*n cannot overflow below; the walk fails long before
				elems = 2 * len(frame)
			}
		}
		pos = lineEnd
		for i := 0; i < elems; i++ {
			pos, stopped, err = walkReply(frame, pos, depth+1)
			if err != nil || stopped {
				return pos, stopped, err
			}
		}
		if line[0] == '|' {
			// An attribute annotates the reply that follows it; go-redis
			// discards the attribute (even a null one, "|-1") and reads
			// that reply in its place.
			return walkReply(frame, pos, depth+1)
		}
		return pos, false, nil
	}
	// go-redis: "redis: can't parse ..." for an unknown type byte.
	return lineEnd, true, nil
}

// replyLen parses an aggregate or blob length as go-redis does
// (strconv.Atoi on the text after the type byte; -1 is a null, anything below
// it invalid). ok is false where go-redis fails.
func replyLen(line []byte) (n int, ok bool) {
	n, err := strconv.Atoi(bytesString(line[1:]))
	if err != nil || n < -1 {
		return 0, false
	}
	return n, true
}

// bytesString views b as a string without copying, for strconv calls whose
// results do not keep the string (strconv copies the input into any error it
// returns, and those errors are discarded here anyway).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
