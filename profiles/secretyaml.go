package profiles

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/redisfactory/redisfactory/schema"
)

// secretValueIssue returns a message for the first secret-valued key
// (password, sentinel.password, url) whose value is not a plain scalar: an
// alias (*x), an anchor (&x) or a tag (!x). YAML gives those characters a
// meaning at the start of a value, so a password that starts with one is
// silently something else — "&x" an empty password, "!x foo" the password
// "foo", "*x" an alias whose name yaml.v3 would print in its error. The
// message never includes the value.
func secretValueIssue(n *yaml.Node, prefix string) string {
	if n == nil || n.Kind != yaml.MappingNode {
		if n != nil && n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				if msg := secretValueIssue(c, prefix+"[]"); msg != "" {
					return msg
				}
			}
		}
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		if schema.IsSecretPath(k.Value) {
			what := ""
			switch {
			case v.Kind == yaml.AliasNode:
				what = "starts with '*', which YAML reads as an alias"
			case v.Anchor != "":
				what = "starts with '&', which YAML reads as an anchor"
			case v.Style&yaml.TaggedStyle != 0 && v.Tag != "!!str":
				what = "starts with '!', which YAML reads as a tag"
			}
			if what != "" {
				return fmt.Sprintf("line %d: key %q: the value %s, so it would not be the secret you wrote; write the secret out and quote it (%s: \"...\"), or read it from a file (password_file). The value is not shown because it is a secret",
					v.Line, path, what, k.Value)
			}
		}
		if v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode {
			if msg := secretValueIssue(v, path); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// secretLineRE finds a key whose value is a secret on a line of YAML, block
// or flow style, and captures the rest of the line.
var secretLineRE = regexp.MustCompile(`(?i)(?:^|[\s{,'"-])(?:[\w-]*pass[\w-]*|url)['"]?\s*:\s*(.*)$`)

// quotedRE finds what a yaml.v3 error quotes: 'token' or `token`.
var quotedRE = regexp.MustCompile("'([^']*)'|`([^`]*)`")

// redactYAMLError removes from a yaml.v3 error message every quoted token
// that comes from the value of a secret key in data (an unknown anchor
// 'S3CRET…' referenced, for a password written as *S3CRET…), and every URL
// credential. yaml.v3 reports the token, not the key, so the token is
// looked up in the secret values of the whole document: this does not
// depend on the line number in the message being right.
func redactYAMLError(msg string, data []byte) string {
	msg = schema.RedactText(msg)
	if !quotedRE.MatchString(msg) {
		return msg
	}
	type secretLine struct {
		text string
		line int
	}
	var secrets []secretLine
	for i, line := range strings.Split(string(data), "\n") {
		if m := secretLineRE.FindStringSubmatch(line); m != nil && strings.TrimSpace(m[1]) != "" {
			secrets = append(secrets, secretLine{m[1], i + 1})
		}
	}
	if len(secrets) == 0 {
		return msg
	}
	at := 0
	msg = quotedRE.ReplaceAllStringFunc(msg, func(q string) string {
		tok := q[1 : len(q)-1]
		if tok == "" {
			return q
		}
		for _, s := range secrets {
			if strings.Contains(s.text, tok) {
				if at == 0 {
					at = s.line
				}
				return q[:1] + schema.Redacted + q[len(q)-1:]
			}
		}
		return q
	})
	if at > 0 {
		msg += fmt.Sprintf(" (line %d: the value of a secret key starts with '*', '&' or '!'; quote it)", at)
	}
	return msg
}
