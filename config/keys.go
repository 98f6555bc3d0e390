package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlLine matches the "line N: …" of a YAML decoding error.
var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// notFound matches the decoder's "field X not found in type config.T".
var notFound = regexp.MustCompile(`^field (\S+) not found in type \S+$`)

// collection matches an error about a list or mapping given for a value.
var collection = regexp.MustCompile(`^cannot (unmarshal !!(seq|map) into|read a (list|mapping) into) `)

// keyErrors rewrites the decoder's errors to name the key path
// (server.maxBodyBytes) instead of a Go type, and what the key takes.
func keyErrors(b []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		path := keyAt(&doc, line, "")
		if collection.MatchString(m[2]) {
			// A list or mapping where a value belongs: name the key it is
			// the value of, not a key or item inside it.
			if p := valueKeyAt(&doc, line, ""); p != "" {
				path = p
			}
		}
		switch f := notFound.FindStringSubmatch(m[2]); {
		case f != nil && path != "":
			msgs = append(msgs, fmt.Sprintf("line %d: %s is not a known key (check its spelling and case)", line, path))
		case path != "":
			msgs = append(msgs, fmt.Sprintf("line %d: %s: %s", line, path, strings.Replace(m[2], "cannot unmarshal", "cannot read", 1)+takes(m[2])))
		default:
			msgs = append(msgs, e)
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// takes says in words what a Go type named in a decoding error holds.
func takes(msg string) string {
	switch {
	case strings.HasSuffix(msg, "into int"), strings.HasSuffix(msg, "into int64"):
		return " (it takes a whole number)"
	case strings.HasSuffix(msg, "into a duration"):
		return " (it takes a duration: a number with a unit, such as 90s, 5m, 1h30m or 7d)"
	case strings.HasSuffix(msg, "into bool"):
		return " (it takes true or false)"
	case strings.HasSuffix(msg, "into string"):
		return " (it takes text)"
	case strings.Contains(msg, "into []"):
		return " (it takes a list)"
	case strings.Contains(msg, "into map"), strings.Contains(msg, "into config."):
		return " (it takes a mapping of keys)"
	}
	return ""
}

// keyAt returns the dotted path of the mapping key on line (or whose
// value starts on it), "" if none.
func keyAt(n *yaml.Node, line int, prefix string) string {
	return deepestKey(n, prefix, func(k, v *yaml.Node) bool {
		return (k != nil && k.Line == line) || (v.Line == line && v.Kind == yaml.ScalarNode)
	})
}

// valueKeyAt returns the dotted path of the deepest key whose value is a
// list or mapping starting on line, "" if none.
func valueKeyAt(n *yaml.Node, line int, prefix string) string {
	return deepestKey(n, prefix, func(k, v *yaml.Node) bool {
		return k != nil && v.Line == line && (v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode)
	})
}

// deepestKey walks n depth first and returns the dotted path (items as
// [i]) of the deepest entry match accepts: a mapping's key k and value v,
// or a list item v with k nil.
func deepestKey(n *yaml.Node, prefix string, match func(k, v *yaml.Node) bool) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := deepestKey(c, prefix, match); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			if p := deepestKey(v, path, match); p != "" {
				return p
			}
			if match(k, v) {
				return path
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			path := fmt.Sprintf("%s[%d]", prefix, i)
			if p := deepestKey(c, path, match); p != "" {
				return p
			}
			if match(nil, c) {
				return path
			}
		}
	}
	return ""
}
