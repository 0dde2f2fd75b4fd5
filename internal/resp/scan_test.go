package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scanFrames are complete, well-formed frames of every type, each with the
// type byte that both ReadFrame and Scanner must report for it.
var scanFrames = []struct {
	name string
	raw  string
	typ  byte
}{
	{"simple string", "+OK\r\n", '+'},
	{"empty simple string", "+\r\n", '+'},
	{"error", "-ERR bad\r\n", '-'},
	{"integer", ":42\r\n", ':'},
	{"negative integer", ":-42\r\n", ':'},
	{"null", "_\r\n", '_'},
	{"double", ",3.14\r\n", ','},
	{"double inf", ",-inf\r\n", ','},
	{"big number", "(3492890328409238509324850943850943825024385\r\n", '('},
	{"true", "#t\r\n", '#'},
	{"false", "#f\r\n", '#'},
	{"bulk", "$5\r\nhello\r\n", '$'},
	{"empty bulk", "$0\r\n\r\n", '$'},
	{"bulk holding CRLF", "$10\r\nwith\r\nCRLF\r\n", '$'},
	{"binary bulk", "$4\r\n\x00\xff\r\n\r\n", '$'},
	{"bulk length with leading zero", "$03\r\nabc\r\n", '$'},
	{"large bulk", "$100000\r\n" + strings.Repeat("x", 100000) + "\r\n", '$'},
	{"RESP2 null bulk", "$-1\r\n", '$'},
	{"blob error", "!21\r\nSYNTAX invalid syntax\r\n", '!'},
	{"null blob error", "!-1\r\n", '!'},
	{"verbatim", "=15\r\ntxt:Some string\r\n", '='},
	{"array", "*2\r\n$1\r\na\r\n:1\r\n", '*'},
	{"empty array", "*0\r\n", '*'},
	{"RESP2 null array", "*-1\r\n", '*'},
	{"array of nulls", "*3\r\n$-1\r\n*-1\r\n_\r\n", '*'},
	{"nested aggregates", "*3\r\n*2\r\n:1\r\n*1\r\n+x\r\n%1\r\n+k\r\n~1\r\n,1.5\r\n>0\r\n", '*'},
	{"nested 64 deep", strings.Repeat("*1\r\n", 64) + ":1\r\n", '*'},
	{"set", "~2\r\n+a\r\n+b\r\n", '~'},
	{"empty set", "~0\r\n", '~'},
	{"null set", "~-1\r\n", '~'},
	{"map", "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", '%'},
	{"empty map", "%0\r\n", '%'},
	{"null map", "%-1\r\n", '%'},
	{"map of aggregates", "%1\r\n*1\r\n+k\r\n%1\r\n+a\r\n$1\r\nb\r\n", '%'},
	{"push", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nmsg\r\n", '>'},
	{"invalidate push", ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", '>'},
	// A top-level attribute is a frame of its own: the reply it annotates
	// is the next frame.
	{"attribute", "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n", '|'},
	{"empty attribute", "|0\r\n", '|'},
	{"null attribute", "|-1\r\n", '|'},
	{"attribute in attribute", "|1\r\n|1\r\n+a\r\n+b\r\n+k\r\n+v\r\n", '|'},
	// Inside an aggregate an attribute goes with the element after it and
	// is not counted as one.
	{"attribute in array", "*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", '*'},
	{"attribute before first element", "*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n", '*'},
	{"attributes in a row", "*1\r\n|1\r\n+a\r\n+b\r\n|0\r\n:1\r\n", '*'},
	{"attributes in map", "%1\r\n|1\r\n+a\r\n+b\r\n+k\r\n|0\r\n+v\r\n", '%'},
	{"null attribute in array", "*1\r\n|-1\r\n:1\r\n", '*'},
	{"attribute in push", ">1\r\n|0\r\n+x\r\n", '>'},
}

// scanIncomplete are proper prefixes of frames: Scan must ask for more,
// ReadFrame must fail with an unexpected EOF.
var scanIncomplete = []struct {
	name string
	raw  string
}{
	{"half a line", "+OK"},
	{"line without LF", "+OK\r"},
	{"bulk header only", "$5\r\n"},
	{"bulk without terminator", "$5\r\nhello"},
	{"bulk with half its terminator", "$5\r\nhello\r"},
	{"array short of elements", "*2\r\n:1\r\n"},
	{"map short of a value", "%2\r\n+a\r\n:1\r\n+b\r\n"},
	{"attribute without its element", "*1\r\n|1\r\n+a\r\n+b\r\n"},
	{"top-level attribute short of a value", "|1\r\n+a\r\n"},
	// The largest lengths allowed: nothing is allocated for them.
	{"largest bulk", "$536870912\r\n"},
	{"largest array", "*16777216\r\n"},
	{"largest map", "%8388608\r\n"},
	{"largest attribute", "|8388608\r\n"},
}

// scanMalformed must fail both readers with an error wrapping ErrProtocol.
var scanMalformed = []struct {
	name string
	raw  string
	msg  string // part of the Scanner's error
}{
	{"unknown type byte", "?x\r\n", "unknown type byte"},
	{"NUL type byte", "\x00\r\n", "unknown type byte"},
	{"empty line", "\r\n", "unknown type byte"},
	{"bare LF", "\n", "CRLF"},
	{"line ended by LF", "+OK\n", "CRLF"},
	{"header ended by LF", "$3\nfoo\r\n", "CRLF"},
	{"element ended by LF", "*1\r\n:1\n", "CRLF"},
	{"CR before CRLF", "$3\r\r\nfoo\r\n", "bad length"},
	{"letters for a length", "$abc\r\n", "bad length"},
	{"no length", "$\r\n", "bad length"},
	{"sign only", "*-\r\n", "bad length"},
	{"plus sign", "$+3\r\nfoo\r\n", "bad length"},
	{"space in length", "$ 3\r\nfoo\r\n", "bad length"},
	{"fraction for a length", "%1.5\r\n", "bad length"},
	{"19-digit length", "*1000000000000000000\r\n", "bad length"},
	{"19-digit negative length", "$-1000000000000000000\r\n", "bad length"},
	{"map length overflowing when doubled", "%4611686018427387904\r\n", "bad length"},
	{"bulk not followed by CRLF", "$3\r\nfooXY", "not followed by CRLF"},
	{"bulk followed by CR alone", "$3\r\nfoo\rX", "not followed by CRLF"},
	{"bulk followed by LF CR", "$3\r\nfoo\n\r", "not followed by CRLF"},
	{"bulk longer than its length", "$2\r\nfoo\r\n", "not followed by CRLF"},
	{"element bulk not followed by CRLF", "*1\r\n$1\r\nab\r\n", "not followed by CRLF"},
	{"bulk over 512 MiB", "$536870913\r\n", "bulk too large"},
	{"blob error over 512 MiB", "!536870913\r\n", "bulk too large"},
	{"verbatim over 512 MiB", "=536870913\r\n", "bulk too large"},
	{"array over 2^24", "*16777217\r\n", "aggregate too large"},
	{"set over 2^24", "~16777217\r\n", "aggregate too large"},
	{"push over 2^24", ">16777217\r\n", "aggregate too large"},
	// A map's elements are its keys and values: 2^23+1 pairs are too many.
	{"map over 2^24 elements", "%8388609\r\n", "aggregate too large"},
	{"attribute over 2^24 elements", "|8388609\r\n", "aggregate too large"},
	{"nested array over 2^24", "*1\r\n*16777217\r\n", "aggregate too large"},
	{"bad element", "*2\r\n:1\r\n?\r\n", "unknown type byte"},
}

// readFrame runs ReadFrame on b through a small buffer, so that lines and
// bodies cross buffer boundaries.
func readFrame(b []byte) (n int, typ byte, err error) {
	frame, typ, err := ReadFrame(bufio.NewReaderSize(bytes.NewReader(b), 16), nil)
	return len(frame), typ, err
}

type scanResult struct {
	n   int
	typ byte
	err error
}

// scanCuts feeds a fresh Scanner b[:cut] for each cut in turn (the same
// bytes with more appended each time, as a reader's buffer grows), then b
// whole, and returns the first result that is not "incomplete".
func scanCuts(b []byte, cuts []int) scanResult {
	var s Scanner
	for _, c := range append(cuts, len(b)) {
		n, typ, err := s.Scan(b[:c])
		if n != 0 || err != nil {
			return scanResult{n, typ, err}
		}
	}
	return scanResult{}
}

// byteCuts cuts b after every byte.
func byteCuts(b []byte) []int {
	cuts := make([]int, len(b))
	for i := range cuts {
		cuts[i] = i
	}
	return cuts
}

// randomCuts cuts b in chunks of 1 to max bytes.
func randomCuts(r *rand.Rand, b []byte, max int) []int {
	var cuts []int
	for c := r.IntN(max) + 1; c < len(b); c += r.IntN(max) + 1 {
		cuts = append(cuts, c)
	}
	return cuts
}

func TestScanFrames(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range scanFrames {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			// ReadFrame is the reference: the table must agree with it.
			n, typ, err := readFrame(raw)
			require.NoError(t, err)
			require.Equal(t, len(raw), n)
			require.Equal(t, string(tc.typ), string(typ))

			var s Scanner
			n, typ, err = s.Scan(raw)
			require.NoError(t, err)
			assert.Equal(t, len(raw), n)
			assert.Equal(t, string(tc.typ), string(typ))

			// What follows the frame is not looked at.
			for _, next := range []string{"+next\r\n", "?garbage", "$999999999999"} {
				n, typ, err = s.Scan([]byte(tc.raw + next))
				require.NoError(t, err, next)
				assert.Equal(t, len(raw), n, next)
				assert.Equal(t, string(tc.typ), string(typ), next)
			}

			// Every proper prefix is incomplete, and feeding the frame a
			// byte at a time ends in the same result as scanning it whole.
			for i := range len(raw) {
				var fresh Scanner
				n, _, err := fresh.Scan(raw[:i])
				require.NoError(t, err, "prefix of %d bytes", i)
				require.Zero(t, n, "prefix of %d bytes", i)
			}
			want := scanResult{len(raw), tc.typ, nil}
			assert.Equal(t, want, scanCuts(raw, byteCuts(raw)), "byte by byte")
			for range 20 {
				cuts := randomCuts(r, raw, 1+len(raw)/3)
				require.Equal(t, want, scanCuts(raw, cuts), "cuts %v", cuts)
			}

			// Scanning copies and allocates nothing.
			allocs := testing.AllocsPerRun(10, func() {
				var s Scanner
				if n, _, _ := s.Scan(raw); n != len(raw) {
					t.Fatal("wrong length")
				}
			})
			assert.Zero(t, allocs)
		})
	}
}

func TestScanIncomplete(t *testing.T) {
	for _, tc := range scanIncomplete {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			_, _, err := readFrame(raw)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			var s Scanner
			n, typ, err := s.Scan(raw)
			require.NoError(t, err)
			assert.Zero(t, n)
			assert.Zero(t, typ)
			assert.Equal(t, scanResult{}, scanCuts(raw, byteCuts(raw)))
		})
	}
	// A map needs both halves of every pair.
	var s Scanner
	n, _, err := s.Scan([]byte("%2\r\n+a\r\n:1\r\n+b\r\n"))
	require.NoError(t, err)
	require.Zero(t, n)
	n, typ, err := s.Scan([]byte("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n"))
	require.NoError(t, err)
	assert.Equal(t, 20, n)
	assert.Equal(t, "%", string(typ))
}

func TestScanMalformed(t *testing.T) {
	for _, tc := range scanMalformed {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			_, _, err := readFrame(raw)
			require.ErrorIs(t, err, ErrProtocol, "ReadFrame")

			var s Scanner
			n, _, err := s.Scan(raw)
			require.ErrorIs(t, err, ErrProtocol)
			assert.ErrorContains(t, err, tc.msg)
			assert.Zero(t, n)

			// Byte by byte, the scanner never reports a frame before it
			// finds the error.
			res := scanCuts(raw, byteCuts(raw))
			assert.Zero(t, res.n)
			assert.ErrorIs(t, res.err, ErrProtocol)
		})
	}
}

// Lines are limited to 1 MiB, CRLF included, as ReadFrame limits them. A
// line that has reached the limit without its LF is an error at once: no
// more data can make it valid.
func TestScanLineLimit(t *testing.T) {
	atLimit := "+" + strings.Repeat("a", maxLineLen-3) + "\r\n"
	overLimit := "+" + strings.Repeat("a", maxLineLen-2) + "\r\n"
	for _, tc := range []struct {
		name string
		raw  string
		ok   bool
	}{
		{"line at the limit", atLimit, true},
		{"line over the limit", overLimit, false},
		{"bulk header at the limit", "$" + strings.Repeat("0", maxLineLen-4) + "1\r\nx\r\n", false}, // more than 18 digits
		{"element over the limit", "*1\r\n" + overLimit, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rn, rtyp, rerr := readFrame([]byte(tc.raw))
			var s Scanner
			n, typ, err := s.Scan([]byte(tc.raw))
			if tc.ok {
				require.NoError(t, rerr)
				require.NoError(t, err)
				assert.Equal(t, len(tc.raw), n)
				assert.Equal(t, rn, n)
				assert.Equal(t, rtyp, typ)
				return
			}
			require.ErrorIs(t, rerr, ErrProtocol)
			require.ErrorIs(t, err, ErrProtocol)
		})
	}
	var s Scanner
	_, _, err := s.Scan([]byte("+" + strings.Repeat("a", maxLineLen-1)))
	require.ErrorIs(t, err, ErrProtocol)
	require.ErrorContains(t, err, "line longer than 1048576 bytes")
	// One byte less could still end in CRLF.
	n, _, err := s.Scan([]byte("+" + strings.Repeat("a", maxLineLen-2)))
	require.NoError(t, err)
	require.Zero(t, n)
}

// A line arriving a few bytes at a time is searched for its LF once, not
// again from its start at every Scan: a server dribbling a 1 MiB error
// line must not cost the reader minutes of CPU. (Searching again costs
// tens of seconds here, the bound leaves a wide margin to a slow machine.)
func TestScanLongLineInSmallChunksIsLinear(t *testing.T) {
	line := []byte("-" + strings.Repeat("e", 256<<10) + "\r\n")
	var s Scanner
	start := time.Now()
	for i := 1; i < len(line); i++ {
		if n, _, err := s.Scan(line[:i]); n != 0 || err != nil {
			t.Fatalf("Scan of %d bytes: %d, %v", i, n, err)
		}
	}
	n, typ, err := s.Scan(line)
	require.NoError(t, err)
	assert.Equal(t, len(line), n)
	assert.Equal(t, "-", string(typ))
	assert.Less(t, time.Since(start), 2*time.Second)
}

// The Scanner walks frames without recursing, so it needs no limit on
// nesting: it accepts frames nested deeper than the 64 levels ReadFrame
// allows. That is the one rule the two do not share, on purpose.
func TestScanNestingBeyondReadFrame(t *testing.T) {
	raw := []byte(strings.Repeat("*1\r\n", 65) + ":1\r\n")
	_, _, err := readFrame(raw)
	require.ErrorIs(t, err, ErrProtocol)
	require.ErrorContains(t, err, "nesting too deep")
	var s Scanner
	n, typ, err := s.Scan(raw)
	require.NoError(t, err)
	assert.Equal(t, len(raw), n)
	assert.Equal(t, "*", string(typ))
}

// A stream of frames, arriving in chunks of any size, splits into the
// frames it was made of, whatever the chunks; a consumer keeps the bytes
// of an incomplete frame and scans them again with the next chunk, as the
// mux's reader does.
func TestScanStream(t *testing.T) {
	var stream []byte
	for _, f := range scanFrames {
		stream = append(stream, f.raw...)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, max := range []int{1, 2, 7, 100, 5000, len(stream)} {
		t.Run(strconv.Itoa(max), func(t *testing.T) {
			var (
				s     Scanner
				buf   []byte
				start int
				got   []string
				types []byte
			)
			for rest := stream; len(rest) > 0; {
				k := min(len(rest), 1+r.IntN(max))
				buf, rest = append(buf, rest[:k]...), rest[k:]
				for start < len(buf) {
					n, typ, err := s.Scan(buf[start:])
					require.NoError(t, err)
					if n == 0 {
						break
					}
					got = append(got, string(buf[start:start+n]))
					types = append(types, typ)
					start += n
				}
			}
			require.Equal(t, len(scanFrames), len(got), "frames found")
			for i, f := range scanFrames {
				assert.Equal(t, f.raw, got[i], f.name)
				assert.Equal(t, string(f.typ), string(types[i]), f.name)
			}
		})
	}
}

// The zero Scanner is ready, and a Scanner is ready again after each frame.
func TestScanReuse(t *testing.T) {
	var s Scanner
	for range 3 {
		n, _, err := s.Scan([]byte("*2\r\n:1\r\n"))
		require.NoError(t, err)
		require.Zero(t, n)
		n, typ, err := s.Scan([]byte("*2\r\n:1\r\n:2\r\n"))
		require.NoError(t, err)
		require.Equal(t, 12, n)
		require.Equal(t, "*", string(typ))
	}
}

// FuzzScanFrame checks the Scanner against ReadFrame on any input, frame
// after frame, scanning each whole and in chunks (cut by step):
//   - a frame ReadFrame reads is scanned to the same length and type;
//   - where ReadFrame fails with ErrProtocol, so does Scan (except for
//     nesting deeper than ReadFrame allows, see
//     TestScanNestingBeyondReadFrame);
//   - where ReadFrame runs out of input (io.EOF, io.ErrUnexpectedEOF),
//     Scan asks for more (or fails on a line that has reached 1 MiB
//     without its LF, which ReadFrame only sees once it has one more byte);
//   - scanning in chunks gives what scanning whole gives.
//
// Run it with (the default minimization budget, 60 s per new input, keeps
// the workers minimizing rather than fuzzing):
//
//	go test ./internal/resp/ -run '^$' -fuzz FuzzScanFrame -fuzztime 60s -fuzzminimizetime 3s
func FuzzScanFrame(f *testing.F) {
	for _, tc := range scanFrames {
		f.Add([]byte(tc.raw), uint16(3))
	}
	for _, tc := range scanIncomplete {
		f.Add([]byte(tc.raw), uint16(1))
	}
	for _, tc := range scanMalformed {
		f.Add([]byte(tc.raw), uint16(2))
	}
	// The commands of FuzzReadCommand's corpus are frames too (or not).
	for _, in := range readCommandCorpus(f) {
		f.Add(in, uint16(5))
	}
	f.Fuzz(func(t *testing.T, data []byte, step uint16) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		r := rand.New(rand.NewPCG(uint64(step), 0))
		rest := data
		for range 16 {
			frame, typ, rerr := ReadFrame(br, nil)
			var s Scanner
			n, styp, serr := s.Scan(rest)
			whole := scanResult{n, styp, serr}
			chunked := scanCuts(rest, randomCuts(r, rest, 1+int(step%64)))
			if chunked.n != whole.n || chunked.typ != whole.typ || (chunked.err == nil) != (whole.err == nil) {
				t.Fatalf("in chunks %+v, whole %+v (%q)", chunked, whole, rest)
			}
			if serr != nil && !errors.Is(serr, ErrProtocol) {
				t.Fatalf("Scan error %v does not wrap ErrProtocol", serr)
			}
			switch {
			case rerr == nil:
				if serr != nil || n != len(frame) || styp != typ {
					t.Fatalf("ReadFrame read %q (%q), Scan reported %d %q %v", frame, typ, n, styp, serr)
				}
				rest = rest[n:]
				continue
			case errors.Is(rerr, ErrProtocol):
				if strings.Contains(rerr.Error(), "nesting too deep") {
					return
				}
				if serr == nil {
					t.Fatalf("ReadFrame failed (%v), Scan reported %d %q (%q)", rerr, n, styp, rest)
				}
			case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
				if serr != nil && strings.Contains(serr.Error(), "line longer than") {
					return
				}
				if serr != nil || n != 0 {
					t.Fatalf("ReadFrame ran out of input (%v), Scan reported %d %q %v (%q)", rerr, n, styp, serr, rest)
				}
			default:
				t.Fatalf("ReadFrame: unexpected error %v", rerr)
			}
			return
		}
	})
}

// readCommandCorpus returns the inputs of FuzzReadCommand's corpus.
func readCommandCorpus(f *testing.F) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzReadCommand", "*"))
	require.NoError(f, err)
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		// "go test fuzz v1", then one Go literal per argument; the first
		// is []byte("...").
		lines := strings.Split(string(b), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[1], "[]byte(") {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		require.NoError(f, err, p)
		out = append(out, []byte(s))
	}
	require.NotEmpty(f, out)
	return out
}
