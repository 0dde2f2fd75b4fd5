package schema

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Secret values are recognised by what they are, not only by the key that
// holds them: a URL's user-info is a credential wherever it appears — in
// url, in addr by mistake, in a profile written as a URL string, inside an
// error a library returned — so RedactText removes it from any text.

// userinfoRE finds "scheme://USERINFO@" in free text. USERINFO runs to the
// last '@' before a space or a quote, so that a password holding an
// unescaped '@', '#', '/' or '?' is covered whole (url.Parse would split it
// at those characters and leave part of it in the host or path).
var userinfoRE = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)([^\s"'` + "`" + `<>]*)@`)

// passParamRE finds a query parameter whose name contains "pass" (go-redis's
// failover URLs take ?password= and ?sentinel_password=).
var passParamRE = regexp.MustCompile(`(?i)([?&;][^=&\s"'` + "`" + `]*pass[^=&\s"'` + "`" + `]*=)([^&#\s"'` + "`" + `]*)`)

// RedactText returns s with every credential it can recognise replaced by
// <redacted>: the password of every URL (user:<redacted>@), a lone URL
// user-info (<redacted>@, because go-redis v9 reads it as a user name but
// other clients read it as the password), and the value of every query
// parameter whose name contains "pass". Other text is left as it is.
func RedactText(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	s = userinfoRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfoRE.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		if info == "" || info == Redacted || strings.HasSuffix(info, ":"+Redacted) {
			return m
		}
		if user, _, ok := strings.Cut(info, ":"); ok {
			return scheme + user + ":" + Redacted + "@"
		}
		return scheme + Redacted + "@"
	})
	return passParamRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := passParamRE.FindStringSubmatch(m)
		if sub[2] == "" || sub[2] == Redacted {
			return m
		}
		return sub[1] + Redacted
	})
}

// EscapeText makes s safe to print on a terminal as part of one line:
// control characters (ANSI escape sequences, newlines, carriage returns,
// backspaces, C1 controls) and Unicode format characters that reorder text
// (bidirectional overrides) are written as Go escapes (\x1b, \n, \u202e);
// invalid UTF-8 bytes as \xNN. Printable text, spaces included, is kept.
// JSON output needs none of this: encoding/json escapes such characters
// itself and keeps the value exact.
func EscapeText(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100 && unsafeRune(r):
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case unsafeRune(r):
			b.WriteString(`\u`)
			for shift := 12; shift >= 0; shift -= 4 {
				b.WriteByte("0123456789abcdef"[(r>>shift)&0xf])
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	if r == ' ' {
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}
