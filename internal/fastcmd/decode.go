package fastcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrUnsupported is returned by SetReply, without touching the command, for a
// command Supported rejects.
var ErrUnsupported = errors.New("fastcmd: command not supported")

// Supported reports whether SetReply handles cmd: its type is one of
// *redis.StringCmd, *redis.StatusCmd, *redis.IntCmd, *redis.BoolCmd and
// *redis.FloatCmd, and AppendArgs encodes all of its arguments.
//
// The argument check is there because SetReply's slow path runs the command
// through go-redis, which writes the arguments before reading the reply; an
// argument go-redis cannot marshal (or marshals by calling user code) would
// fail or repeat that write instead of decoding the reply. A command whose
// arguments AppendArgs refuses is meant to go through go-redis's own path
// anyway.
func Supported(cmd redis.Cmder) bool {
	switch cmd.(type) {
	case *redis.StringCmd, *redis.StatusCmd, *redis.IntCmd, *redis.BoolCmd, *redis.FloatCmd:
		return argsEncodable(cmd.Args())
	}
	return false
}

// Decoder sets replies on commands. The zero value is not usable; create one
// with NewDecoder. It is safe for concurrent use.
type Decoder struct {
	// slow is the first slow path; concurrent callers get more, up to
	// maxSlow, made when every one is busy (a server answering LOADING or
	// MOVED to every command makes every reply slow), and kept in idle.
	slow    *slowPath
	idle    chan *slowPath
	maxSlow int

	mu     sync.Mutex
	all    []*slowPath
	closed bool
}

// NewDecoder returns a Decoder. It owns in-memory go-redis clients for the
// slow path (no network, no goroutines of their own); release them with
// Close.
func NewDecoder() *Decoder {
	n := min(runtime.GOMAXPROCS(0), 8)
	d := &Decoder{slow: newSlowPath(), idle: make(chan *slowPath, n), maxSlow: n}
	d.all = []*slowPath{d.slow}
	d.idle <- d.slow
	return d
}

// Close releases the Decoder's in-memory go-redis clients. SetReply calls
// that need the slow path fail afterwards with go-redis's "client is
// closed".
func (d *Decoder) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	var errs []error
	for _, s := range d.all {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// slowProcess runs the slow path on an idle in-memory client, a new one
// when all are busy and fewer than maxSlow exist, or else the first to be
// free.
func (d *Decoder) slowProcess(ctx context.Context, cmd redis.Cmder, frame []byte) error {
	var s *slowPath
	select {
	case s = <-d.idle:
	default:
		d.mu.Lock()
		switch {
		case d.closed:
			s = d.slow // closed: it answers go-redis's "client is closed"
			d.mu.Unlock()
			return s.process(ctx, cmd, frame)
		case len(d.all) < d.maxSlow:
			s = newSlowPath()
			d.all = append(d.all, s)
			d.mu.Unlock()
		default:
			d.mu.Unlock()
			s = <-d.idle
		}
	}
	defer func() { d.idle <- s }()
	return s.process(ctx, cmd, frame)
}

// SetReply sets cmd's value and error from frame exactly as go-redis reading
// frame off a connection would, and returns cmd.Err(). frame must hold one
// complete reply (optionally preceded by RESP3 attributes) and nothing else.
//
// The common frames are decoded here without allocating beyond the value:
// bulk strings, simple strings, integers, RESP3 doubles (into string and
// float commands), and both null forms ("$-1" and "_"), which give redis.Nil.
// Every other frame — error replies, attributes, verbatim strings, booleans,
// big numbers, aggregates, anything non-canonical or that fails to parse — is
// handed to go-redis's own reader through an in-memory client, so value and
// error (including go-redis's typed errors such as MOVED or LOADING, and its
// "can't parse" errors) are go-redis's by construction.
//
// A frame that is truncated, announces more bytes than it holds, nests
// deeper than 64 levels, or has bytes after the reply never reaches go-redis:
// cmd gets a zero value and an error wrapping ErrMalformedFrame. An
// unsupported cmd (see Supported) is left untouched and ErrUnsupported is
// returned.
//
// ctx only bounds the slow path (pool wait); the reply has already arrived,
// so a cancelled ctx does not turn it into a context error.
func (d *Decoder) SetReply(ctx context.Context, cmd redis.Cmder, frame []byte) error {
	if !Supported(cmd) {
		return fmt.Errorf("%w: %T", ErrUnsupported, cmd)
	}
	if setFast(cmd, frame) {
		return cmd.Err()
	}
	if err := checkFrame(frame); err != nil {
		setZero(cmd)
		cmd.SetErr(err)
		return err
	}
	return d.slowProcess(ctx, cmd, frame)
}

// setFast decodes the frames whose go-redis result is certain without running
// go-redis: it applies the same strconv functions to the same bytes go-redis
// would, and gives up (returns false, cmd untouched) whenever a parse fails or
// the frame is anything but the canonical shape, so go-redis produces every
// error itself.
func setFast(cmd redis.Cmder, frame []byte) bool {
	k, text := classify(frame)
	switch c := cmd.(type) {
	case *redis.StringCmd:
		s, err, ok := fastString(k, text)
		if ok {
			c.SetVal(s)
			c.SetErr(err)
		}
		return ok
	case *redis.StatusCmd:
		s, err, ok := fastString(k, text)
		if ok {
			c.SetVal(s)
			c.SetErr(err)
		}
		return ok
	case *redis.IntCmd:
		switch k {
		case kindNull:
			c.SetVal(0)
			c.SetErr(redis.Nil)
			return true
		case kindInt, kindSimple, kindBulk:
			// go-redis's ReadInt accepts integers, simple strings and bulk
			// strings, all through strconv.ParseInt base 10.
			n, err := strconv.ParseInt(bytesString(text), 10, 64)
			if err != nil {
				return false
			}
			c.SetVal(n)
			c.SetErr(nil)
			return true
		}
	case *redis.BoolCmd:
		// go-redis's ReadBool reads a string and compares it; BoolCmd turns
		// a null into false without an error (SET NX).
		switch k {
		case kindNull:
			c.SetVal(false)
			c.SetErr(nil)
			return true
		case kindSimple, kindInt, kindDouble, kindBulk:
			s := bytesString(text)
			c.SetVal(s == "OK" || s == "1" || s == "true")
			c.SetErr(nil)
			return true
		}
	case *redis.FloatCmd:
		switch k {
		case kindNull:
			c.SetVal(0)
			c.SetErr(redis.Nil)
			return true
		case kindSimple, kindBulk, kindDouble:
			f, err := strconv.ParseFloat(bytesString(text), 64)
			if k == kindDouble {
				// go-redis's readFloat: RESP3's spellings of infinity and
				// NaN first, then strconv.
				switch string(text) {
				case "inf":
					f, err = math.Inf(1), nil
				case "-inf":
					f, err = math.Inf(-1), nil
				case "nan", "-nan":
					f, err = math.NaN(), nil
				}
			}
			if err != nil {
				return false
			}
			c.SetVal(f)
			c.SetErr(nil)
			return true
		}
	}
	return false
}

// fastString is go-redis's ReadString for the fast frame kinds: simple
// strings, integers and doubles give the text after the type byte, a bulk
// string its payload, a null redis.Nil with an empty value.
func fastString(k frameKind, text []byte) (string, error, bool) {
	switch k {
	case kindNull:
		return "", redis.Nil, true
	case kindSimple, kindInt, kindDouble, kindBulk:
		// "OK" is by far the most common status; returning the constant
		// saves the one allocation a status reply would otherwise cost.
		if string(text) == "OK" {
			return "OK", nil, true
		}
		return string(text), nil, true
	}
	return "", nil, false
}

// frameKind is the shape classify recognised.
type frameKind uint8

const (
	kindOther  frameKind = iota // anything else: slow path
	kindNull                    // "$-1\r\n" or "_\r\n"
	kindSimple                  // "+text\r\n"
	kindInt                     // ":text\r\n"
	kindDouble                  // ",text\r\n"
	kindBulk                    // "$n\r\n<n bytes>\r\n"
)

// classify recognises the canonical single-reply frames and returns the text
// go-redis would hand to its conversion: the line after the type byte, or a
// bulk string's payload. Its line rule is go-redis's: a line runs to the
// first '\n' and must end in "\r\n" with at least one byte before it, so a
// '\r' inside a simple string is part of the text, as it is for go-redis.
// Frames with anything after the reply are kindOther, so the slow path's
// frame check reports them.
func classify(frame []byte) (frameKind, []byte) {
	nl := bytes.IndexByte(frame, '\n')
	if nl < 2 || frame[nl-1] != '\r' {
		return kindOther, nil
	}
	line := frame[:nl-1]
	if frame[0] == '$' {
		body := frame[nl+1:]
		if string(line) == "$-1" {
			if len(body) == 0 {
				return kindNull, nil
			}
			return kindOther, nil
		}
		n, err := strconv.Atoi(bytesString(line[1:]))
		if err != nil || n < 0 || n != len(body)-2 || body[n] != '\r' || body[n+1] != '\n' {
			return kindOther, nil
		}
		return kindBulk, body[:n]
	}
	if nl != len(frame)-1 {
		return kindOther, nil
	}
	switch frame[0] {
	case '+':
		return kindSimple, line[1:]
	case ':':
		return kindInt, line[1:]
	case ',':
		return kindDouble, line[1:]
	case '_':
		// go-redis treats any line starting with '_' as null; only the
		// canonical one is decoded here, the rest go to go-redis.
		if len(line) == 1 {
			return kindNull, nil
		}
	}
	return kindOther, nil
}

// setZero gives cmd the zero value go-redis leaves after a failed read.
func setZero(cmd redis.Cmder) {
	switch c := cmd.(type) {
	case *redis.StringCmd:
		c.SetVal("")
	case *redis.StatusCmd:
		c.SetVal("")
	case *redis.IntCmd:
		c.SetVal(0)
	case *redis.BoolCmd:
		c.SetVal(false)
	case *redis.FloatCmd:
		c.SetVal(0)
	}
}
