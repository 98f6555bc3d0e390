package sidecar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/kavach-dev/kavach/api"
	"github.com/kavach-dev/kavach/apperr"
)

// decodeOptions make the decoder strict: names match exactly (encoding/json
// would take "AGENTID" for "agentId"), a name given twice is an error (it
// would keep the last one, so two readers of one body could disagree),
// unknown names are errors, and invalid UTF-8, raw or as an escaped lone
// surrogate (\ud800), is refused where encoding/json would silently make
// it U+FFFD.
var decodeOptions = json.JoinOptions(json.RejectUnknownMembers(true))

// decode reads exactly one JSON object into v, strictly (see
// decodeOptions); trailing data and oversized bodies are errors too, and so
// is a NUL (\u0000) in any string of the body, name or value, however deep
// (in arguments, metadata or constraints too): PostgreSQL can store it
// neither in text nor in jsonb, SQLite would keep it, and no identifier or
// text needs it. Every handler decodes with it, so every body is held to
// the same rules on every backend. Other escaped control characters (\n,
// \t) may stay in free text (arguments, metadata, notes); identifiers,
// names, actions and resources are checked for them field by field.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return decodeError(err)
	}
	if err := json.Unmarshal(body, v, decodeOptions); err != nil {
		return decodeError(err)
	}
	// Only an escape can put a NUL in a string (a raw one is not JSON), so
	// a body without the escape's text needs no second look.
	if bytes.Contains(body, nulEscape) {
		return checkNUL(body)
	}
	return nil
}

var nulEscape = []byte(`\u0000`)

// checkNUL walks a valid JSON body and refuses the first string, name or
// value, that holds a NUL, naming where it is but not repeating it.
func checkNUL(body []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil // io.EOF: the body was decoded, so it is valid JSON
		}
		if tok.Kind() != '"' || strings.IndexByte(tok.String(), 0) < 0 {
			continue
		}
		what, ptr := "the value of", dec.StackPointer()
		if kind, n := dec.StackIndex(dec.StackDepth()); kind == '{' && n%2 == 1 {
			// A name: the pointer ends with it, so name its object instead.
			what, ptr = "a name in", ptr.Parent()
		}
		where := "the body"
		if ptr != "" {
			where = "field " + fieldName(string(ptr))
		}
		return invalidJSON("invalid_field", "%s %s (byte %d) holds a NUL character (\\u0000), which no name or value may hold",
			what, where, dec.InputOffset())
	}
}

var errBodyTooLarge = errors.New("body too large")

func invalidJSON(code, format string, args ...any) error {
	return &apperr.Error{Kind: apperr.Invalid, Code: code, Message: fmt.Sprintf(format, args...)}
}

func decodeError(err error) error {
	var maxErr *http.MaxBytesError
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &maxErr):
		return fmt.Errorf("%w: limit is %d bytes", errBodyTooLarge, maxErr.Limit)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalidJSON("invalid_json", "the request body is empty or cut short; a JSON object is required")
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syn):
		return invalidJSON("duplicate_field", "field %s appears more than once", fieldName(string(syn.JSONPointer)))
	case errors.As(err, &syn):
		// Where, not what: the error's own text quotes what it shows
		// (escaped), and invalid UTF-8 is never repeated.
		where := fmt.Sprintf("at byte %d", syn.ByteOffset)
		if syn.JSONPointer != "" {
			where += ", in " + fieldName(string(syn.JSONPointer))
		}
		return invalidJSON("invalid_json", "the body is not valid JSON (%s): %v", where, syn.Err)
	case errors.Is(err, json.ErrUnknownName) && errors.As(err, &sem):
		return invalidJSON("unknown_field", "unknown field %s (names are case-sensitive)%s", fieldName(string(sem.JSONPointer)), unknownFieldHint(sem))
	case errors.As(err, &sem):
		field := fieldName(string(sem.JSONPointer))
		if field == `""` {
			return invalidJSON("invalid_json", "the body must be a JSON object")
		}
		if sem.GoType != nil && (sem.GoType == reflect.TypeFor[api.Time]() || sem.GoType == reflect.TypeFor[time.Time]()) {
			return invalidJSON("invalid_field", "field %s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", field)
		}
		if sem.JSONKind != 0 && sem.GoType != nil {
			return invalidJSON("invalid_field", "field %s must be of JSON type %s, not %s", field, jsonType(sem.GoType.String()), kindName(sem.JSONKind))
		}
		return invalidJSON("invalid_field", "field %s: %v", field, sem.Err)
	}
	return invalidJSON("invalid_json", "%v", err)
}

// kavachosNames are KavachOS's names for fields Kavach names otherwise.
var kavachosNames = map[string]string{"userId": "ownerId", "args": "arguments", "fromAgentId": "fromAgent",
	"toAgentId": "toAgent", "agentID": "agentId", "expires": "expiresAt", "expiresIn": "expiresAt"}

// unknownFieldHint suggests the field meant: KavachOS's name for it, or
// the same name in another case.
func unknownFieldHint(sem *json.SemanticError) string {
	ptr := string(sem.JSONPointer)
	name := ptr[strings.LastIndex(ptr, "/")+1:]
	if h, ok := kavachosNames[name]; ok {
		return fmt.Sprintf("; did you mean %q? (KavachOS calls it %q)", h, name)
	}
	t := sem.GoType
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if tag != "" && tag != name && strings.EqualFold(tag, name) {
			return fmt.Sprintf("; did you mean %q?", tag)
		}
	}
	return ""
}

// fieldName turns a JSON pointer (/context/ip) into a quoted dotted name.
func fieldName(ptr string) string {
	return fmt.Sprintf("%q", strings.ReplaceAll(strings.TrimPrefix(ptr, "/"), "/", "."))
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "JSON"
}

func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case goType == "json.RawMessage":
		return "object"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "object"
	case strings.TrimPrefix(goType, "*") == "string":
		return "string"
	case strings.TrimPrefix(goType, "*") == "bool":
		return "boolean"
	}
	return "number"
}
