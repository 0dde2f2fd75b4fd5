// Package fastcmd encodes simple go-redis commands and decodes their replies
// without going through go-redis's connection path, byte for byte and value
// for value the way go-redis v9 itself would.
//
// The factory writes commands such as GET, SET and INCR on a shared socket and
// frames the replies itself. To hand those replies to callers as ordinary
// go-redis Cmders it needs two things that must not drift from go-redis:
// the request encoding (AppendArgs) and the reply decoding (Decoder.SetReply).
// Anything this package is not certain to reproduce exactly is either refused
// (AppendArgs reports ok=false, Supported reports false) or handed to
// go-redis's own reader (the Decoder's slow path).
package fastcmd

import (
	"net"
	"strconv"
	"time"
)

// AppendArgs appends args encoded as go-redis encodes a command: a RESP array
// of bulk strings, with every argument converted the way go-redis's
// proto.Writer.WriteArg converts it.
//
// ok is false when an argument has a type this function does not encode
// exactly like go-redis; out is then dst unchanged and the caller must use
// go-redis's own path. The refused types are those go-redis either rejects
// ("can't marshal") or encodes by calling user code (encoding.BinaryMarshaler):
// calling MarshalBinary here and again on a fallback could differ or have side
// effects, so those are left to go-redis.
func AppendArgs(dst []byte, args []any) (out []byte, ok bool) {
	// Check every argument first so that a refused list leaves dst untouched
	// instead of returning a half-written array.
	if !argsEncodable(args) {
		return dst, false
	}
	dst = append(dst, '*')
	dst = strconv.AppendUint(dst, uint64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = appendArg(dst, a)
	}
	return dst, true
}

// argsEncodable reports whether AppendArgs encodes every one of args. It is
// kept separate from appendArg (and allocation free) because Supported and
// SetReply ask the same question on the hot path.
func argsEncodable(args []any) bool {
	for _, a := range args {
		if !encodable(a) {
			return false
		}
	}
	return true
}

// encodable must list exactly the types appendArg handles. go-redis's type
// switch matches concrete types exactly, so a named type such as
// `type key string` is not a string to it (it falls to BinaryMarshaler or
// "can't marshal"), and it is not one here either.
func encodable(v any) bool {
	switch v.(type) {
	case nil, string, *string, []byte,
		int, *int, int8, *int8, int16, *int16, int32, *int32, int64, *int64,
		uint, *uint, uint8, *uint8, uint16, *uint16, uint32, *uint32, uint64, *uint64,
		uintptr, *uintptr,
		float32, *float32, float64, *float64,
		bool, *bool,
		time.Time, *time.Time,
		time.Duration, *time.Duration,
		net.IP:
		return true
	}
	return false
}

// appendArg encodes one argument already known to be encodable. Each case
// reproduces the conversion go-redis's WriteArg applies to the same type,
// including what a nil pointer becomes (its zero value).
func appendArg(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return appendBulkString(dst, "")
	case string:
		return appendBulkString(dst, v)
	case *string:
		if v == nil {
			return appendBulkString(dst, "")
		}
		return appendBulkString(dst, *v)
	case []byte:
		return appendBulk(dst, v)
	case int:
		return appendInt(dst, int64(v))
	case *int:
		return appendInt(dst, int64(deref(v)))
	case int8:
		return appendInt(dst, int64(v))
	case *int8:
		return appendInt(dst, int64(deref(v)))
	case int16:
		return appendInt(dst, int64(v))
	case *int16:
		return appendInt(dst, int64(deref(v)))
	case int32:
		return appendInt(dst, int64(v))
	case *int32:
		return appendInt(dst, int64(deref(v)))
	case int64:
		return appendInt(dst, v)
	case *int64:
		return appendInt(dst, deref(v))
	case uint:
		return appendUint(dst, uint64(v))
	case *uint:
		return appendUint(dst, uint64(deref(v)))
	case uint8:
		return appendUint(dst, uint64(v))
	case *uint8:
		return appendUint(dst, uint64(deref(v)))
	case uint16:
		return appendUint(dst, uint64(v))
	case *uint16:
		return appendUint(dst, uint64(deref(v)))
	case uint32:
		return appendUint(dst, uint64(v))
	case *uint32:
		return appendUint(dst, uint64(deref(v)))
	case uint64:
		return appendUint(dst, v)
	case *uint64:
		return appendUint(dst, deref(v))
	case uintptr:
		return appendUint(dst, uint64(v))
	case *uintptr:
		return appendUint(dst, uint64(deref(v)))
	case float32:
		return appendFloat(dst, float64(v))
	case *float32:
		return appendFloat(dst, float64(deref(v)))
	case float64:
		return appendFloat(dst, v)
	case *float64:
		return appendFloat(dst, deref(v))
	case bool:
		return appendBool(dst, v)
	case *bool:
		return appendBool(dst, deref(v))
	case time.Time:
		return appendTime(dst, v)
	case *time.Time:
		return appendTime(dst, deref(v))
	case time.Duration:
		// go-redis sends a Duration as its nanosecond count, not as
		// seconds or milliseconds; commands that want other units convert
		// before building args.
		return appendInt(dst, v.Nanoseconds())
	case *time.Duration:
		return appendInt(dst, deref(v).Nanoseconds())
	case net.IP:
		// go-redis writes the raw address bytes (4 or 16), not the dotted
		// text form.
		return appendBulk(dst, v)
	}
	// Unreachable while encodable and appendArg list the same types; a
	// panic here is a bug in this file, not a property of the input.
	panic("fastcmd: appendArg called with a type encodable refused")
}

// deref returns *p, or the zero value for a nil pointer, which is what
// go-redis sends for nil pointers of every supported kind.
func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func appendBulkString(dst []byte, s string) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendUint(dst, uint64(len(s)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

func appendBulk(dst, b []byte) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendUint(dst, uint64(len(b)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

// wrapBulk wraps number text that the caller formatted at the end of dst
// (starting at start) into a bulk string. Formatting in place avoids a
// scratch buffer: the text is formatted once, then moved right to make room
// for the "$<len>\r\n" header.
func wrapBulk(dst []byte, start int) []byte {
	n := len(dst) - start
	var hdr [24]byte
	h := append(hdr[:0], '$')
	h = strconv.AppendUint(h, uint64(n), 10)
	h = append(h, '\r', '\n')
	dst = append(dst, h...) // grow by len(h)
	copy(dst[start+len(h):], dst[start:start+n])
	copy(dst[start:], h)
	return append(dst, '\r', '\n')
}

func appendInt(dst []byte, n int64) []byte {
	start := len(dst)
	return wrapBulk(strconv.AppendInt(dst, n, 10), start)
}

func appendUint(dst []byte, n uint64) []byte {
	start := len(dst)
	return wrapBulk(strconv.AppendUint(dst, n, 10), start)
}

// appendFloat uses the format go-redis uses: 'f' with the shortest exact
// precision, so 1e300 is sent as 300 digits and NaN/Inf as "NaN", "+Inf",
// "-Inf".
func appendFloat(dst []byte, f float64) []byte {
	start := len(dst)
	return wrapBulk(strconv.AppendFloat(dst, f, 'f', -1, 64), start)
}

// appendBool sends booleans as the integers 1 and 0, as go-redis does.
func appendBool(dst []byte, b bool) []byte {
	if b {
		return appendBulkString(dst, "1")
	}
	return appendBulkString(dst, "0")
}

// appendTime sends a time in RFC 3339 with nanoseconds, as go-redis does
// (a nil *time.Time becomes the zero time, "0001-01-01T00:00:00Z").
func appendTime(dst []byte, t time.Time) []byte {
	start := len(dst)
	return wrapBulk(t.AppendFormat(dst, time.RFC3339Nano), start)
}
