package sidecar

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/kavach-dev/kavach/apperr"
)

// decodeOptions make the decoder strict: names match exactly (encoding/json
// would take "AGENTID" for "agentId"), a name given twice is an error (it
// would keep the last one, so two readers of one body could disagree),
// unknown names are errors, and invalid UTF-8 is refused.
var decodeOptions = json.JoinOptions(json.RejectUnknownMembers(true))

// decode reads exactly one JSON object into v, strictly (see
// decodeOptions); trailing data and oversized bodies are errors too.
func decode(r *http.Request, v any) error {
	if err := json.UnmarshalRead(r.Body, v, decodeOptions); err != nil {
		return decodeError(err)
	}
	return nil
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
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &syn):
		return invalidJSON("invalid_json", "the request body is empty or cut short; a JSON object is required")
	case errors.Is(err, jsontext.ErrDuplicateName) && errors.As(err, &syn):
		return invalidJSON("duplicate_field", "field %s appears more than once", fieldName(string(syn.JSONPointer)))
	case errors.As(err, &syn):
		return invalidJSON("invalid_json", "the body is not valid JSON: %v", syn.Err)
	case errors.Is(err, json.ErrUnknownName) && errors.As(err, &sem):
		return invalidJSON("unknown_field", "unknown field %s (names are case-sensitive)", fieldName(string(sem.JSONPointer)))
	case errors.As(err, &sem):
		field := fieldName(string(sem.JSONPointer))
		if field == `""` {
			return invalidJSON("invalid_json", "the body must be a JSON object")
		}
		if sem.GoType != nil && sem.GoType.String() == "time.Time" {
			return invalidJSON("invalid_field", "field %s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", field)
		}
		if sem.JSONKind != 0 && sem.GoType != nil {
			return invalidJSON("invalid_field", "field %s must be of JSON type %s, not %s", field, jsonType(sem.GoType.String()), kindName(sem.JSONKind))
		}
		return invalidJSON("invalid_field", "field %s: %v", field, sem.Err)
	}
	return invalidJSON("invalid_json", "%v", err)
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
