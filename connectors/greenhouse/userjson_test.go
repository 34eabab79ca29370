package greenhouse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawUser is a user as decodeUsersJSON reads it.
type rawUser struct {
	ID             *int64          `json:"id"`
	Name           *string         `json:"name"`
	FirstName      *string         `json:"first_name"`
	LastName       *string         `json:"last_name"`
	PrimaryEmail   *string         `json:"primary_email"`
	Emails         []string        `json:"emails"`
	Deactivated    bool            `json:"deactivated"`
	SiteAdmin      bool            `json:"site_admin"`
	ServiceAccount *bool           `json:"service_account"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
	Extra          json.RawMessage `json:"-"`
}

// decodeUsersJSON is decodeUsers as it was, through encoding/json: the reference
// FuzzUsersDecoderMatchesJSON compares decodeUsers with.
func decodeUsersJSON(b []byte) ([]User, error) {
	var raw []rawUser
	if err := decodeArray(b, &raw); err != nil {
		return nil, err
	}
	out := make([]User, 0, len(raw))
	for i, r := range raw {
		if r.ID == nil || *r.ID <= 0 {
			return nil, fmt.Errorf("user %d of the page has no valid id", i)
		}
		u := User{ID: *r.ID, Emails: r.Emails, Deactivated: r.Deactivated, SiteAdmin: r.SiteAdmin}
		if r.Name != nil {
			u.Name = *r.Name
		}
		if r.FirstName != nil {
			u.FirstName = *r.FirstName
		}
		if r.LastName != nil {
			u.LastName = *r.LastName
		}
		if u.Name == "" {
			u.Name = strings.TrimSpace(u.FirstName + " " + u.LastName)
		}
		if r.PrimaryEmail != nil {
			u.PrimaryEmail = *r.PrimaryEmail
		}
		// Greenhouse marks integration service users by a primary email that is null, "" or
		// absent (docs/greenhouse-wire.md, "Assumptions", row 10); an explicit flag can only add.
		u.ServiceAccount = strings.TrimSpace(u.PrimaryEmail) == "" || r.ServiceAccount != nil && *r.ServiceAccount
		var err error
		if u.CreatedAt, err = parseTime(r.CreatedAt); err != nil {
			return nil, fmt.Errorf("user %d: created_at: %w", u.ID, err)
		}
		if u.UpdatedAt, err = parseTime(r.UpdatedAt); err != nil {
			return nil, fmt.Errorf("user %d: updated_at: %w", u.ID, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// usersPage is a page of n users as the simulator writes them (every field Harvest v3 shows).
func usersPage(n int) []byte {
	var page bytes.Buffer
	page.WriteByte('[')
	for i := range n {
		if i > 0 {
			page.WriteByte(',')
		}
		fmt.Fprintf(&page, `{"id":%d,"created_at":"2024-0%d-01T10:00:00.000Z","updated_at":"2025-01-%02dT10:00:00.000Z","first_name":"First%d","last_name":"Last","name":"First%d Last","primary_email":"user%d@acme.example","emails":["user%d@acme.example"],"job_title":null,"agency_id":null,"deactivated":%t,"site_admin":%t,"employee_id":null,"linked_candidate_ids":[],"office_ids":[],"department_ids":[],"interviewer_tags":[],"custom_fields":{}}`,
			4000000+i, 1+i%9, 1+i%28, i, i, i, i, i%7 == 0, i%50 == 0)
	}
	page.WriteByte(']')
	return page.Bytes()
}

// The cases where reading users straight from the bytes could part from encoding/json: keys
// in another case or escaped, repeated keys, nulls, lists given twice, values of the wrong
// type, pages that are not lists.
func TestUsersDecoderMatchesJSON(t *testing.T) {
	for _, body := range []string{
		string(usersPage(3)),
		`[{"ID":1,"Primary_Email":"a@x","NAME":"A"}]`,
		`[{"\u0069d":2,"prim\u0061ry_email":"b@x","first_name":"\u00e9l\u00e8ve","last_name":"\ud83d\ude00"}]`,
		`[{"id":3,"name":"x","name":null,"primary_email":"c@x","primary_email":"d@x"}]`,
		`[{"id":4,"emails":["a","b","c"],"emails":[null,"z"]}]`,
		`[{"id":5,"emails":["a","b"],"emails":[]}]`,
		`[{"id":6,"emails":["a","b","c"],"emails":null,"emails":[null,null]}]`,
		`[{"id":7,"deactivated":true,"deactivated":null,"site_admin":null,"service_account":null}]`,
		`[{"id":8,"service_account":true,"service_account":null,"created_at":"2024-01-01T00:00:00Z","created_at":null}]`,
		`[{"id":9,"ſite_admin":true,"K":1,"unknown":{"id":[1,{"a":"b"}]}}]`,
		`[{"id":10},null]`, `[null]`, `[]`, ` [ ] `, "\f[{\"id\":11}]\v",
		`[{"id":1.0}]`, `[{"id":1e2}]`, `[{"id":-0}]`, `[{"id":9223372036854775808}]`, `[{"id":"3"}]`,
		`[{"id":1,"site_admin":1}]`, `[{"id":1,"name":5}]`, `[{"id":1,"emails":"a"}]`, `[{"id":1,"emails":[1]}]`,
		`[{"id":1,"created_at":1}]`, `[{"id":1,"service_account":"yes"}]`, `[{"id":1,"created_at":"last year"}]`,
		`[1]`, `["u"]`, `[[]]`, `{"users":[]}`, `<html></html>`, `[{"id":1,`, `[{"id":1}] x`, ``, `null`,
		"[{\"id\":1,\"name\":\"\xff\"}]",
	} {
		want, wantErr := decodeUsersJSON([]byte(body))
		got, err := decodeUsers([]byte(body))
		if wantErr != nil {
			assert.Error(t, err, body)
			continue
		}
		if assert.NoError(t, err, body) {
			assert.Equal(t, want, got, body)
		}
	}
}

// FuzzUsersDecoderMatchesJSON: decodeUsers gives what decoding through encoding/json gave,
// or an error where it gave one.
func FuzzUsersDecoderMatchesJSON(f *testing.F) {
	f.Add(usersPage(2))
	f.Add([]byte(`[{"id":4,"emails":["a","b","c"],"emails":[null,"z"],"Name":"x","service_account":false}]`))
	f.Add([]byte(`[{"id":1,"created_at":"2024-01-01T00:00:00+0100","primary_email":null},null]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := decodeUsersJSON(b)
		got, err := decodeUsers(b)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("error %v, encoding/json's %v", err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("users\n%#v\nencoding/json's\n%#v", got, want)
		}
	})
}

func BenchmarkDecodeUsers(b *testing.B) {
	body := usersPage(500)
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeUsersJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bytes", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeUsers(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestUsersPageDecodes(t *testing.T) {
	users, err := decodeUsers(usersPage(50))
	require.NoError(t, err)
	require.Len(t, users, 50)
	assert.Equal(t, "First7 Last", users[7].Name)
	assert.True(t, users[7].Deactivated)
	assert.Equal(t, []string{"user7@acme.example"}, users[7].Emails)
	assert.False(t, strings.Contains(users[0].PrimaryEmail, `"`))
}
