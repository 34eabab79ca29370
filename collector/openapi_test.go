package collector_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/collector"
	"github.com/seatwatch/greenhouse-collector/events"
)

// The conformance test of docs/openapi.yaml: the document is valid OpenAPI 3.1, its examples
// validate against their schemas, its schemas have exactly the fields of the Go types the
// service writes (TestOpenAPIDocument), and against a live collector (checkOpenAPI, run by
// TestReadAPI): every route served is documented with its scope and query parameters and
// every documented operation is served, every answer validates against the documented
// response, and every operation answers an unknown query parameter with 400.

var openAPI struct {
	once  sync.Once
	doc   libopenapi.Document
	model *v3.Document
	err   error
}

func loadOpenAPI(t *testing.T) (libopenapi.Document, *v3.Document) {
	t.Helper()
	openAPI.once.Do(func() {
		raw, err := os.ReadFile("../docs/openapi.yaml")
		if err != nil {
			openAPI.err = err
			return
		}
		if openAPI.doc, err = libopenapi.NewDocument(raw); err != nil {
			openAPI.err = err
			return
		}
		m, err := openAPI.doc.BuildV3Model()
		if err != nil {
			openAPI.err = err
			return
		}
		openAPI.model = &m.Model
	})
	require.NoError(t, openAPI.err)
	return openAPI.doc, openAPI.model
}

// operations lists the documented operations as "METHOD /path".
func operations(model *v3.Document) map[string]*v3.Operation {
	out := map[string]*v3.Operation{}
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			out[strings.ToUpper(method)+" "+path] = op
		}
	}
	return out
}

// queryParams are the documented query parameters of an operation (its own and its path's).
func queryParams(model *v3.Document, key string, op *v3.Operation) []string {
	path := key[strings.IndexByte(key, ' ')+1:]
	var out []string
	params := append([]*v3.Parameter{}, model.Paths.PathItems.GetOrZero(path).Parameters...)
	for _, p := range append(params, op.Parameters...) {
		if p.In == "query" {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

func TestOpenAPIDocument(t *testing.T) {
	doc, model := loadOpenAPI(t)
	assert.Equal(t, "3.1.0", model.Version)
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	ok, verrs := v.ValidateDocument()
	for _, e := range verrs {
		t.Errorf("document: %s: %s", e.Message, e.Reason)
	}
	assert.True(t, ok)

	// Every example validates against its schema.
	sv := schema_validation.NewSchemaValidator()
	examples := 0
	check := func(where string, mt *v3.MediaType) {
		if mt == nil || mt.Example == nil || mt.Schema == nil {
			return
		}
		var value any
		require.NoError(t, mt.Example.Decode(&value), where)
		raw, err := json.Marshal(value)
		require.NoError(t, err, where)
		ok, errs := sv.ValidateSchemaString(mt.Schema.Schema(), string(raw))
		for _, e := range errs {
			t.Errorf("example of %s: %s: %s", where, e.Message, e.Reason)
		}
		assert.True(t, ok, where)
		examples++
	}
	for key, op := range operations(model) {
		if op.RequestBody != nil {
			for ct, mt := range op.RequestBody.Content.FromOldest() {
				check(key+" request "+ct, mt)
			}
		}
		for code, resp := range op.Responses.Codes.FromOldest() {
			if resp.Content == nil {
				continue
			}
			for ct, mt := range resp.Content.FromOldest() {
				check(fmt.Sprintf("%s %s %s", key, code, ct), mt)
			}
		}
	}
	for name, resp := range model.Components.Responses.FromOldest() {
		for ct, mt := range resp.Content.FromOldest() {
			check("response "+name+" "+ct, mt)
		}
	}
	assert.GreaterOrEqual(t, examples, 5, "examples checked")

	// The schemas have exactly the JSON fields of the Go types, at every depth.
	for name, typ := range map[string]reflect.Type{
		"Connection":     reflect.TypeFor[events.Connection](),
		"LicenseRecord":  reflect.TypeFor[events.LicenseRecord](),
		"ListedUser":     reflect.TypeFor[collector.ListedUser](),
		"UsersPage":      reflect.TypeFor[collector.UsersPage](),
		"UserDetail":     reflect.TypeFor[collector.UserDetail](),
		"Trends":         reflect.TypeFor[collector.Trends](),
		"SyncRunsPage":   reflect.TypeFor[collector.SyncRunsPage](),
		"Summary":        reflect.TypeFor[collector.Summary](),
		"SeatSummary":    reflect.TypeFor[collector.SeatSummary](),
		"Policy":         reflect.TypeFor[events.Policy](),
		"PolicyDocument": reflect.TypeFor[events.PolicyDocument](),
		"Action":         reflect.TypeFor[collector.ActionView](),
		"ActionsPage":    reflect.TypeFor[collector.ActionsPage](),
		"ActionRequest":  reflect.TypeFor[collector.ActionRequest](),
	} {
		proxy := model.Components.Schemas.GetOrZero(name)
		require.NotNil(t, proxy, name)
		compareFields(t, name, proxy.Schema(), typ)
	}
}

// jsonFields returns the JSON names of a struct's fields (embedded structs' promoted) and
// their types.
func jsonFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// objectSchema returns the object schema inside s: itself, an array's items, or the non-null
// alternative of a oneOf.
func objectSchema(s *base.Schema) *base.Schema {
	if s == nil {
		return nil
	}
	if s.Items != nil && s.Items.IsA() {
		return objectSchema(s.Items.A.Schema())
	}
	for _, alt := range s.OneOf {
		if a := alt.Schema(); a != nil && !(len(a.Type) == 1 && a.Type[0] == "null") {
			return objectSchema(a)
		}
	}
	if s.Properties != nil && s.Properties.Len() > 0 {
		return s
	}
	return nil
}

func compareFields(t *testing.T, where string, s *base.Schema, typ reflect.Type) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	obj := objectSchema(s)
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[time.Time]() || obj == nil {
		return
	}
	fields := jsonFields(typ)
	var schemaNames, goNames []string
	for name := range obj.Properties.KeysFromOldest() {
		schemaNames = append(schemaNames, name)
	}
	for name := range fields {
		goNames = append(goNames, name)
	}
	sort.Strings(schemaNames)
	sort.Strings(goNames)
	if !assert.Equal(t, goNames, schemaNames, "fields of %s (Go %s)", where, typ) {
		return
	}
	for name, ft := range fields {
		compareFields(t, where+"."+name, obj.Properties.GetOrZero(name).Schema(), ft)
	}
}

// checkOpenAPI checks docs/openapi.yaml against the live collector of r.
func checkOpenAPI(t *testing.T, r *readEnv) {
	doc, model := loadOpenAPI(t)
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	ops := operations(model)

	// Every route served is documented, with its scope and parameters, and nothing else is.
	served := map[string]bool{}
	for _, route := range r.app.Service.RoutesForTest() {
		served[route.Pattern] = true
		op, ok := ops[route.Pattern]
		if !assert.True(t, ok, "route %s is not in docs/openapi.yaml", route.Pattern) {
			continue
		}
		params := append([]string{}, route.Params...)
		sort.Strings(params)
		if len(params) == 0 {
			params = nil
		}
		assert.Equal(t, params, queryParams(model, route.Pattern, op), "query parameters of %s", route.Pattern)
		public := op.Security != nil && len(op.Security) == 0
		assert.Equal(t, route.Scope == "", public, "security of %s", route.Pattern)
		if route.Scope != "" {
			assert.Contains(t, op.Summary, "scope "+route.Scope, "the summary of %s names its scope", route.Pattern)
		}
	}
	for key := range ops {
		assert.True(t, served[key], "%s is documented but not served", key)
	}

	var first collector.UsersPage
	require.Equal(t, 200, r.call(http.MethodGet, "/v1/tenants/reads/users?limit=1", nil, &first))
	require.NotEmpty(t, first.Users)
	// A dry run gives the action routes an action to show.
	var dry collector.ActionView
	require.Equal(t, 200, r.call(http.MethodPost, "/v1/tenants/reads/actions", map[string]any{"type": "deactivate",
		"user_ids": []int64{first.Users[0].UserID}, "requested_by": "openapi", "dry_run": true, "idempotency_key": "openapi-1"}, &dry))
	concrete := func(path string) string {
		path = strings.ReplaceAll(path, "{tenant_id}", r.tenant)
		path = strings.ReplaceAll(path, "{action_id}", dry.ActionID)
		return strings.ReplaceAll(path, "{user_id}", fmt.Sprint(first.Users[0].UserID))
	}
	// send makes a request and validates it and its answer against the document.
	send := func(method, path, token, accept string, body []byte) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, r.api+path, bytes.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		vreq, _ := http.NewRequest(method, "http://localhost:8080"+path, bytes.NewReader(body))
		vreq.Header = req.Header.Clone()
		ct := resp.Header.Get("Content-Type")
		if strings.HasPrefix(ct, "application/json") {
			ok, verrs := v.ValidateHttpResponse(vreq, resp)
			for _, e := range verrs {
				t.Errorf("%s %s → %d: %s: %s %v", method, path, resp.StatusCode, e.Message, e.Reason, e.SchemaValidationErrors)
			}
			assert.True(t, ok, "%s %s", method, path)
		} else {
			// Other content types: the status and content type are documented.
			op := ops[method+" "+templateOf(model, path)]
			require.NotNil(t, op, path)
			rs := op.Responses.Codes.GetOrZero(fmt.Sprint(resp.StatusCode))
			if assert.NotNil(t, rs, "%s %s → %d undocumented", method, path, resp.StatusCode) && rs.Content != nil {
				mt, _, _ := strings.Cut(ct, ";")
				assert.NotNil(t, rs.Content.GetOrZero(mt), "%s %s → %s undocumented", method, path, ct)
			}
		}
		return resp.StatusCode, raw
	}

	for key := range ops {
		method, path, _ := strings.Cut(key, " ")
		path = concrete(path)
		// An unknown parameter is refused before anything else happens.
		code, raw := send(method, path+"?no_such_parameter=1", testToken, "", nil)
		assert.Equal(t, 400, code, "%s with an unknown parameter", key)
		assert.Contains(t, string(raw), `"unknown_parameter"`, key)
		if method != http.MethodGet {
			continue
		}
		code, _ = send(method, path, testToken, "", nil)
		assert.Contains(t, []int{200, 503}, code, key)
		if code == 503 {
			t.Errorf("%s answered 503", key)
		}
	}
	// More answers of the read routes, each validated: pages, filters, CSV, errors.
	for _, c := range []struct {
		path, token, accept string
		code                int
	}{
		{"/v1/tenants/reads/users?usage=inactive,unknown&sort=last_activity_at&order=desc&limit=3", testToken, "", 200},
		{"/v1/tenants/reads/users?licensed=false&service_account=true&q=a", testToken, "", 200},
		{"/v1/tenants/reads/users?status=removed", testToken, "", 200},
		{"/v1/tenants/reads/users?sort=email", testToken, "text/csv", 200},
		{"/v1/tenants/reads/users?exempt=true", testToken, "", 200},
		{"/v1/tenants/reads/users?exempt=maybe", testToken, "", 400},
		{"/v1/tenants/reads/usage/summary", testToken, "", 200},
		{"/v1/tenants/reads/connections/greenhouse/policy", readerToken, "", 200},
		{"/v1/tenants/reads/users?limit=0", testToken, "", 400},
		{"/v1/tenants/reads/users", "", "", 401},
		{"/v1/tenants/reads/users", connectorToken, "", 403},
		{"/v1/tenants/nobody/users", testToken, "", 404},
		{"/v1/tenants/reads/users/1", testToken, "", 404},
		{"/v1/tenants/reads/trends?bucket=week&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", testToken, "", 200},
		{"/v1/tenants/reads/trends?bucket=month", testToken, "", 200},
		{"/v1/tenants/reads/sync-runs?kind=users&limit=1", testToken, "", 200},
		{"/v1/tenants/reads/sync-runs", testToken, "text/csv", 200},
		{"/v1/tenants/reads/licenses?usage=active", testToken, "", 200},
		{"/v1/connections?limit=1", connectorToken, "", 200},
		{"/v1/tenants/reads/connections/greenhouse", readerToken, "", 403},
		{"/metrics", readerToken, "", 200},
		{"/metrics", "", "", 401},
	} {
		code, _ := send(http.MethodGet, c.path, c.token, c.accept, nil)
		assert.Equal(t, c.code, code, c.path)
	}

	// The documented examples against live answers: the error examples are the answers
	// themselves; the users page's example has the live page's fields at every depth.
	example := func(mt *v3.MediaType) any {
		var v any
		require.NoError(t, mt.Example.Decode(&v))
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(raw, &v))
		return v
	}
	for name, req := range map[string]struct{ path, token string }{
		"BadRequest":   {"/v1/tenants/reads/users?exempt=maybe", testToken},
		"Unauthorized": {"/v1/tenants/reads/users", "wrong-token-0123456789"},
		"Forbidden":    {"/v1/tenants/reads/connections/greenhouse", readerToken},
	} {
		mt := model.Components.Responses.GetOrZero(name).Content.GetOrZero("application/json")
		_, raw := send(http.MethodGet, req.path, req.token, "", nil)
		var live any
		require.NoError(t, json.Unmarshal(raw, &live))
		assert.Equal(t, example(mt), live, "the %s example is the live answer", name)
	}
	pageExample := example(ops["GET /v1/tenants/{tenant_id}/users"].Responses.Codes.GetOrZero("200").Content.GetOrZero("application/json"))
	_, raw := send(http.MethodGet, "/v1/tenants/reads/users?usage=inactive&sort=last_activity_at&order=desc&limit=1", testToken, "", nil)
	var livePage any
	require.NoError(t, json.Unmarshal(raw, &livePage))
	sameShape(t, "users page", shape(pageExample), shape(livePage))

	code, _ := send(http.MethodPut, "/v1/tenants/reads/connections/greenhouse", testToken, "", []byte(`{"client_id":"x"}`))
	assert.Equal(t, 400, code)
	// A policy put, its document, and a refused one: each validated against the document.
	policy := fmt.Sprintf(`{"license_types": {"basic": {"seats_purchased": 50, "annual_cost": "480.00", "currency": "USD"}},
		"new_user_grace_days": 7, "seats_unused_threshold": 5, "exemptions": [{"user_id": %d, "reason": "the founder"}]}`, first.Users[0].UserID)
	code, _ = send(http.MethodPut, "/v1/tenants/reads/connections/greenhouse/policy", testToken, "", []byte(policy))
	assert.Equal(t, 200, code)
	code, _ = send(http.MethodPut, "/v1/tenants/reads/connections/greenhouse/policy", testToken, "", []byte(`{"license_types": {"basic": {"annual_cost": 480.0, "currency": "USD"}}}`))
	assert.Equal(t, 400, code)
	code, _ = send(http.MethodGet, "/v1/tenants/reads/usage/summary", testToken, "", nil)
	assert.Equal(t, 200, code)
	code, _ = send(http.MethodPut, "/v1/tenants/reads/connections/greenhouse/policy", testToken, "", []byte(`{}`))
	assert.Equal(t, 200, code, "the tests after this one judge without a policy")
	code, _ = send(http.MethodDelete, "/v1/tenants/nobody/connections/greenhouse", testToken, "", nil)
	assert.Equal(t, 404, code)
}

// shape is a JSON value's structure: objects by their keys (each with its value's shape),
// arrays by their first element, and the JSON type of everything else.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = shape(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		return []any{shape(x[0])}
	case nil:
		return "null"
	}
	return reflect.TypeOf(v).Kind().String()
}

// omittable are the fields the service leaves out when empty (omitempty in the Go types).
var omittable = map[string]bool{"next_cursor": true, "last_activity_type": true, "usage": true, "reason": true}

// sameShape compares two shapes: the same keys but omittable ones, the same types where
// neither is null.
func sameShape(t *testing.T, where string, a, b any) {
	t.Helper()
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !assert.True(t, ok, "%s: object vs %v", where, b) {
			return
		}
		for k := range x {
			if _, ok := y[k]; !ok {
				assert.True(t, omittable[k], "%s.%s: in the example, not in the live answer", where, k)
			}
		}
		for k, v := range y {
			if w, ok := x[k]; ok {
				sameShape(t, where+"."+k, w, v)
			} else {
				assert.True(t, omittable[k], "%s.%s: in the live answer, not in the example", where, k)
			}
		}
	case []any:
		y, ok := b.([]any)
		if assert.True(t, ok, "%s: array vs %v", where, b) && len(x) > 0 && len(y) > 0 {
			sameShape(t, where+"[0]", x[0], y[0])
		}
	default:
		if a != "null" && b != "null" {
			assert.Equal(t, a, b, where)
		}
	}
}

// templateOf finds the documented path template of a concrete path.
func templateOf(model *v3.Document, path string) string {
	path, _, _ = strings.Cut(path, "?")
	parts := strings.Split(path, "/")
	for tmpl := range model.Paths.PathItems.KeysFromOldest() {
		tp := strings.Split(tmpl, "/")
		if len(tp) != len(parts) {
			continue
		}
		match := true
		for i := range tp {
			if tp[i] != parts[i] && !strings.HasPrefix(tp[i], "{") {
				match = false
				break
			}
		}
		if match {
			return tmpl
		}
	}
	return ""
}
