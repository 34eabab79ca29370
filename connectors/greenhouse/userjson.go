package greenhouse

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// decodeUsers decodes a users page: a JSON list of users (docs/greenhouse-wire.md). It reads
// the page as encoding/json read it into a list of structs of pointers before, but without
// reflection and without allocating the pointers: a page is validated once (validValue) and
// each user's members are read straight from its bytes. Through encoding/json, users pages were a tenth of the collector's
// CPU onboarding, as much as the Audit Log's pages (docs/performance.md, "Twelfth session").
// FuzzUsersDecoderMatchesJSON compares the two, down to how encoding/json matches keys
// (exactly, else as bytes.EqualFold does), lets a repeated key's last value win, and fills a
// list given twice.
func decodeUsers(b []byte) ([]User, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil, fmt.Errorf("expected a JSON array, got %s", snippet(b))
	}
	end, ok := validValue(b, 0, 0)
	switch {
	case !ok:
		return nil, fmt.Errorf("decode page: invalid JSON at byte %d", end)
	case end != len(b):
		return nil, errors.New("decode page: data after the JSON array")
	}
	var raws []userFields
	var first error
	for i := skipSpace(b, 1); b[i] != ']'; {
		r, next, err := readUser(b, i)
		if err != nil && first == nil {
			first = fmt.Errorf("decode page: user %d: %w", len(raws), err)
		}
		raws = append(raws, r)
		if i = skipSpace(b, next); b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	if first != nil {
		return nil, first
	}
	out := make([]User, 0, len(raws))
	for i := range raws {
		u, err := raws[i].user(i)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// userKeys are rawUser's keys, in the order of its fields.
var userKeys = [...]string{"id", "name", "first_name", "last_name", "primary_email", "emails", "deactivated", "site_admin", "service_account", "created_at", "updated_at"}

// userFields are a user's members as encoding/json read them into pointers before: null or
// absent is "" (or false) where the pointer was nil, and hasID tells a null or absent id.
type userFields struct {
	id                                      int64
	hasID                                   bool
	name, firstName, lastName, primaryEmail string
	emails                                  []string
	deactivated, siteAdmin, serviceAccount  bool
	createdAt, updatedAt                    string
}

// readUser reads the valid JSON value at b[i] as encoding/json read it into a user, and
// returns the index after it. As encoding/json, it reads every member even after a value of
// the wrong type, and returns the first such error.
func readUser(b []byte, i int) (userFields, int, error) {
	var r userFields
	switch b[i] {
	case 'n':
		return r, i + 4, nil // null: the zero user
	case '{':
	default:
		return r, valueEnd(b, i), fmt.Errorf("cannot read %s as a user", jsonKind(b[i]))
	}
	var first error
	for i = skipSpace(b, i+1); b[i] != '}'; {
		kEnd := stringEnd(b, i)
		key := b[i+1 : kEnd-1]
		if !plainKey(key) {
			key = []byte(unquote(b[i:kEnd]))
		}
		j := skipSpace(b, skipSpace(b, kEnd)+1) // past the ':'
		vEnd := valueEnd(b, j)
		if err := r.set(userKey(key), b[j:vEnd]); err != nil && first == nil {
			first = fmt.Errorf("%q: %w", key, err)
		}
		if i = skipSpace(b, vEnd); b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return r, i + 1, first
}

// userKey is the index in userKeys of the field encoding/json gives key to: the field of that
// name, else the first whose name equals it under bytes.EqualFold; -1 for none.
func userKey(key []byte) int {
	for f, name := range userKeys {
		if string(key) == name {
			return f
		}
	}
	for f, name := range userKeys {
		if bytes.EqualFold(key, []byte(name)) {
			return f
		}
	}
	return -1
}

// set stores the valid JSON value v into field f (userKeys) as encoding/json did: null
// clears a pointer or a list and leaves a string or a bool as it was.
func (r *userFields) set(f int, v []byte) error {
	null := v[0] == 'n'
	switch f {
	case 0:
		if r.hasID = !null; null {
			return nil
		}
		var err error
		r.id, err = jsonInt(v)
		return err
	case 1, 2, 3, 4:
		p := [...]*string{&r.name, &r.firstName, &r.lastName, &r.primaryEmail}[f-1]
		if null {
			*p = ""
			return nil
		}
		var err error
		*p, err = jsonString(v)
		return err
	case 5:
		if null {
			r.emails = nil
			return nil
		}
		var err error
		r.emails, err = jsonStrings(r.emails, v)
		return err
	case 6, 7:
		return jsonBool([...]*bool{&r.deactivated, &r.siteAdmin}[f-6], v)
	case 8:
		r.serviceAccount = false // null: no flag
		return jsonBool(&r.serviceAccount, v)
	case 9, 10:
		if null {
			return nil
		}
		s, err := jsonString(v)
		if err == nil {
			*[...]*string{&r.createdAt, &r.updatedAt}[f-9] = s
		}
		return err
	}
	return nil // a member there is no field for
}

// jsonInt reads a JSON number as an int64, as encoding/json does (no fraction, no exponent,
// in range).
func jsonInt(v []byte) (int64, error) {
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return 0, fmt.Errorf("cannot read %s as an integer", jsonKind(v[0]))
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %s is not an int64", v)
	}
	return n, nil
}

// jsonString reads a JSON string.
func jsonString(v []byte) (string, error) {
	if v[0] != '"' {
		return "", fmt.Errorf("cannot read %s as a string", jsonKind(v[0]))
	}
	return unquote(v), nil
}

// jsonBool reads true or false into t; null leaves it.
func jsonBool(t *bool, v []byte) error {
	switch v[0] {
	case 't', 'f':
		*t = v[0] == 't'
		return nil
	case 'n':
		return nil
	}
	return fmt.Errorf("cannot read %s as a bool", jsonKind(v[0]))
}

// jsonStrings reads a JSON list of strings into s as encoding/json fills a slice it already
// holds: element by element over s's array (a null element keeps what was there), cut to the
// list's length, and an empty list is an empty slice, not nil.
func jsonStrings(s []string, v []byte) ([]string, error) {
	if v[0] != '[' {
		return s, fmt.Errorf("cannot read %s as a list of strings", jsonKind(v[0]))
	}
	var first error
	n := 0
	for i := skipSpace(v, 1); v[i] != ']'; n++ {
		end := valueEnd(v, i)
		if n >= cap(s) {
			s = append(s[:cap(s)], "")
		}
		s = s[:max(len(s), n+1)]
		switch v[i] {
		case '"':
			s[n] = unquote(v[i:end])
		case 'n':
		default:
			if first == nil {
				first = fmt.Errorf("element %d: cannot read %s as a string", n, jsonKind(v[i]))
			}
		}
		if i = skipSpace(v, end); v[i] == ',' {
			i = skipSpace(v, i+1)
		}
	}
	if n == 0 {
		return []string{}, first
	}
	return s[:n], first
}

// jsonKind names the kind of the JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "a bool"
	case 'n':
		return "null"
	}
	return "a number"
}

// user is the User r describes, the i-th of its page.
func (r *userFields) user(i int) (User, error) {
	if !r.hasID || r.id <= 0 {
		return User{}, fmt.Errorf("user %d of the page has no valid id", i)
	}
	u := User{ID: r.id, Name: r.name, FirstName: r.firstName, LastName: r.lastName, PrimaryEmail: r.primaryEmail,
		Emails: r.emails, Deactivated: r.deactivated, SiteAdmin: r.siteAdmin}
	if u.Name == "" {
		u.Name = strings.TrimSpace(u.FirstName + " " + u.LastName)
	}
	// Greenhouse marks integration service users by a primary email that is null, "" or
	// absent (docs/greenhouse-wire.md, "Assumptions", row 10); an explicit flag can only add.
	u.ServiceAccount = strings.TrimSpace(u.PrimaryEmail) == "" || r.serviceAccount
	var err error
	if u.CreatedAt, err = parseTime(r.createdAt); err != nil {
		return User{}, fmt.Errorf("user %d: created_at: %w", u.ID, err)
	}
	if u.UpdatedAt, err = parseTime(r.updatedAt); err != nil {
		return User{}, fmt.Errorf("user %d: updated_at: %w", u.ID, err)
	}
	return u, nil
}
