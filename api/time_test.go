package api_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kavach-dev/kavach/api"
)

// fixedWidth is the one shape of every time Kavach writes.
var fixedWidth = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// wireTypes holds every struct type of package api. TestWireTypesListed
// fails when a type is declared that is not listed here, so the
// reflection below sees every field of every type.
var wireTypes = []any{
	api.Agent{}, api.Permission{}, api.AuditEntry{}, api.Actor{}, api.Delegation{}, api.Grant{},
	api.Inherited{}, api.Link{}, api.Approval{}, api.AgentWithToken{}, api.CreateAgentRequest{},
	api.UpdateAgentRequest{}, api.AuthorizeRequest{}, api.RequestContext{}, api.AuthorizeResponse{},
	api.DelegateRequest{}, api.DelegationList{}, api.EffectivePermission{}, api.EffectivePermissions{}, api.ConstraintSet{},
	api.ResolveApprovalRequest{}, api.APIKey{}, api.CreateKeyRequest{}, api.KeyWithSecret{}, api.KeyList{},
	api.ApprovalList{}, api.AgentList{}, api.AuditPage{}, api.ErrorBody{}, api.Error{}, api.Health{},
	api.SyncStatus{}, api.PolicyList{}, api.PolicyModule{}, api.AccessPolicy{}, api.AccessPolicyModule{},
	api.VerifyRequest{}, api.VerifyResponse{}, api.KeySet{}, api.Time{}, api.Anomaly{}, api.AnomalyList{}, api.Trust{}, api.Event{}, api.WebhookDelivery{}, api.WebhookDeliveryList{},
	api.TrustFactors{},
}

// declaredStructs parses the package's source: the names of its struct
// types, and the fields typed time.Time or *time.Time (which would write
// times as encoding/json does: variable width, in any offset).
func declaredStructs(t *testing.T) (names []string, stdTimes []string) {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.TypeSpec:
				if _, ok := n.Type.(*ast.StructType); ok {
					names = append(names, n.Name.Name)
				}
			case *ast.StructType:
				for _, field := range n.Fields.List {
					if len(field.Names) > 0 && isStdTime(field.Type) {
						stdTimes = append(stdTimes, fset.Position(field.Pos()).String())
					}
				}
			}
			return true
		})
	}
	return names, stdTimes
}

// isStdTime reports whether typ is time.Time or *time.Time.
func isStdTime(typ ast.Expr) bool {
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	sel, ok := typ.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "Time" {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "time"
}

func TestWireTypesListed(t *testing.T) {
	t.Parallel()
	listed := map[string]bool{}
	for _, v := range wireTypes {
		listed[reflect.TypeOf(v).Name()] = true
	}
	names, stdTimes := declaredStructs(t)
	for _, n := range names {
		if !listed[n] {
			t.Errorf("api.%s is not in wireTypes: add it, so its times are checked", n)
		}
	}
	if len(names) != len(listed) {
		t.Errorf("package api declares %d struct types; wireTypes lists %d", len(names), len(listed))
	}
	for _, pos := range stdTimes {
		t.Errorf("%s: a time.Time field; use api.Time, which writes api.TimeFormat", pos)
	}
}

// timeField is a field of type api.Time or *api.Time, by its JSON name.
type timeField struct {
	json  string
	index []int
	ptr   bool
}

var timeType = reflect.TypeFor[api.Time]()

// timeFields lists t's time fields as the JSON encoder sees them (those of
// embedded structs promoted); any other field of a time type fails.
func timeFields(t *testing.T, typ reflect.Type, prefix []int) []timeField {
	t.Helper()
	var out []timeField
	for i := range typ.NumField() {
		f := typ.Field(i)
		index := append(append([]int{}, prefix...), i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		ft, ptr := f.Type, false
		if ft.Kind() == reflect.Pointer {
			ft, ptr = ft.Elem(), true
		}
		switch {
		case ft == timeType:
			out = append(out, timeField{json: name, index: index, ptr: ptr})
		case ft == reflect.TypeFor[time.Time]():
			t.Errorf("%s.%s is a time.Time; use api.Time", typ.Name(), f.Name)
		case f.Anonymous && ft.Kind() == reflect.Struct && name == "":
			out = append(out, timeFields(t, ft, index)...)
		}
	}
	return out
}

// Every time field of every API shape writes api.TimeFormat: UTC, three
// fraction digits however many the time has (none, one, nine), Z.
func TestEveryTimeFieldIsFixedWidth(t *testing.T) {
	t.Parallel()
	ist := time.FixedZone("IST", 5*3600+1800)
	samples := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 23, 19, 12, 29, 300_000_000, time.UTC), "2026-11-23T19:12:29.300Z"},
		{time.Date(2026, 11, 23, 19, 12, 29, 0, time.UTC), "2026-11-23T19:12:29.000Z"},
		{time.Date(2026, 11, 24, 0, 42, 29, 123_456_789, ist), "2026-11-23T19:12:29.123Z"},
		{time.Date(2026, 11, 23, 19, 12, 29, 999_999_999, time.UTC), "2026-11-23T19:12:29.999Z"},
	}
	found := 0
	for _, v := range wireTypes {
		typ := reflect.TypeOf(v)
		if typ == timeType {
			continue
		}
		fields := timeFields(t, typ, nil)
		found += len(fields)
		for _, s := range samples {
			p := reflect.New(typ)
			for _, f := range fields {
				tv := reflect.ValueOf(api.Time{Time: s.in})
				if f.ptr {
					ptr := reflect.New(timeType)
					ptr.Elem().Set(tv)
					tv = ptr
				}
				p.Elem().FieldByIndex(f.index).Set(tv)
			}
			b, err := json.Marshal(p.Interface())
			if err != nil {
				t.Fatalf("json.Marshal(%s) = %v", typ.Name(), err)
			}
			var obj map[string]any
			if err := json.Unmarshal(b, &obj); err != nil {
				t.Fatalf("json.Unmarshal(%s) = %v", b, err)
			}
			for _, f := range fields {
				got, _ := obj[f.json].(string)
				if got != s.want || !fixedWidth.MatchString(got) {
					t.Errorf("%s.%s of %v = %q; want %q", typ.Name(), f.json, s.in, got, s.want)
				}
			}
		}
	}
	// Agent (4), AuditEntry, Delegation (3), Approval (4), AgentWithToken (4),
	// the three requests, EffectivePermission, APIKey (3), KeyWithSecret (3),
	// PolicyList (2), VerifyResponse, Anomaly, Trust, Event, WebhookDelivery (4).
	if want := 36; found != want {
		t.Errorf("found %d time fields; want %d (update the count when adding one)", found, want)
	}
}

func TestTimeMarshal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   api.Time
		want string
	}{
		{api.Time{}, `"0001-01-01T00:00:00.000Z"`},
		{api.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)}, `"2026-01-02T03:04:05.006Z"`},
		{api.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -7*3600))}, `"2026-01-02T10:04:05.000Z"`},
		{api.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 987_654_321, time.Local)), ""},
	} {
		b, err := json.Marshal(tc.in)
		if err != nil {
			t.Fatalf("json.Marshal(%v) = %v", tc.in.Time, err)
		}
		if tc.want != "" && string(b) != tc.want {
			t.Errorf("json.Marshal(%v) = %s; want %s", tc.in.Time, b, tc.want)
		}
		if !fixedWidth.MatchString(strings.Trim(string(b), `"`)) {
			t.Errorf("json.Marshal(%v) = %s; want fixed width", tc.in.Time, b)
		}
		if s := tc.in.String(); `"`+s+`"` != string(b) {
			t.Errorf("String() = %s; want %s", s, b)
		}
		if s := api.FormatTime(tc.in.Time); `"`+s+`"` != string(b) {
			t.Errorf("FormatTime = %s; want %s", s, b)
		}
		txt, err := tc.in.MarshalText()
		if err != nil || `"`+string(txt)+`"` != string(b) {
			t.Errorf("MarshalText() = %s, %v; want %s", txt, err, b)
		}
	}
	for _, y := range []int{-1, 10000} {
		if b, err := json.Marshal(api.Time{Time: time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
			t.Errorf("json.Marshal(year %d) = %s; want an error", y, b)
		}
	}
}

// Times are read in any RFC 3339 form, into UTC to the millisecond, so a
// time read equals itself written and read again.
func TestTimeUnmarshal(t *testing.T) {
	t.Parallel()
	want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{`"2026-01-02T03:04:05Z"`, want},
		{`"2026-01-02T03:04:05.000Z"`, want},
		{`"2026-01-02T03:04:05.3Z"`, want.Add(300 * time.Millisecond)},
		{`"2026-01-02T03:04:05.123456789Z"`, want.Add(123 * time.Millisecond)},
		{`"2026-01-02T08:34:05+05:30"`, want},
		{`"2026-01-01T22:04:05.5-05:00"`, want.Add(500 * time.Millisecond)},
	} {
		var got api.Time
		if err := json.Unmarshal([]byte(tc.in), &got); err != nil {
			t.Errorf("json.Unmarshal(%s) = %v", tc.in, err)
			continue
		}
		if got != api.NewTime(tc.want) || got.Location() != time.UTC {
			t.Errorf("json.Unmarshal(%s) = %v; want %v in UTC", tc.in, got.Time, tc.want)
		}
		b, _ := json.Marshal(got)
		var again api.Time
		if err := json.Unmarshal(b, &again); err != nil || again != got {
			t.Errorf("round trip of %s = %v, %v; want %v", b, again.Time, err, got.Time)
		}
		var txt api.Time
		if err := txt.UnmarshalText([]byte(strings.Trim(tc.in, `"`))); err != nil || txt != got {
			t.Errorf("UnmarshalText(%s) = %v, %v; want %v", tc.in, txt.Time, err, got.Time)
		}
	}
	for _, bad := range []string{`"tomorrow"`, `"2026-01-02"`, `"2026-01-02 03:04:05Z"`, `1767322800`} {
		var got api.Time
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("json.Unmarshal(%s) = %v; want an error", bad, got.Time)
		}
	}
	kept := api.NewTime(want)
	if err := json.Unmarshal([]byte(`null`), &kept); err != nil || kept != api.NewTime(want) {
		t.Errorf("json.Unmarshal(null) = %v, %v; want the time unchanged", kept.Time, err)
	}
	var ptr *api.Time
	if err := json.Unmarshal([]byte(`null`), &ptr); err != nil || ptr != nil || ptr.Std() != nil {
		t.Errorf("json.Unmarshal(null) into *api.Time = %v, %v; want nil", ptr, err)
	}
}

func TestNewTimePtr(t *testing.T) {
	t.Parallel()
	if api.NewTimePtr(nil) != nil {
		t.Error("NewTimePtr(nil) != nil")
	}
	in := time.Date(2026, 1, 2, 3, 4, 5, 6_789_000, time.FixedZone("", 3600))
	p := api.NewTimePtr(&in)
	if p == nil || !p.Equal(in.Truncate(time.Millisecond)) || p.Location() != time.UTC {
		t.Fatalf("NewTimePtr(%v) = %v; want it in UTC, to the millisecond", in, p)
	}
	if std := p.Std(); std == nil || !std.Equal(p.Time) {
		t.Errorf("Std() = %v; want %v", std, p.Time)
	}
}
