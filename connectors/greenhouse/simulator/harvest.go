package simulator

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Harvest v3's list endpoints: the wrapper every list goes through (harvest: auth, limits,
// cursor rules, pagination, faults) and the lists with their JSON forms and filters.

// listFunc lists one page of a Harvest collection in id-descending order: items with an id
// below before (0: from the top) that match q, at most per of them; more tells whether
// another matching item follows.
type listFunc func(o *Org, q url.Values, before int64, per int) (items []any, more bool, err error)

// fieldError is a 422 on a query parameter.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

const cursorOnly = "When passing a cursor, do not include other query params."

// harvest wraps a list with auth, limits, cursor rules, pagination and faults; target indexes
// harvestTargets, the target_type of the harvest_access event a 200 records in the documented
// profile.
func (s *Server) harvest(scope string, target int, list listFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := s.front(w, r, "harvest", scope, false)
		if !ok {
			return
		}
		q := r.URL.Query()
		var before int64
		if q.Has("cursor") {
			if len(q) > 1 || len(q["cursor"]) > 1 {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": []string{cursorOnly}})
				return
			}
			cq, b, err := decodeCursor(q.Get("cursor"))
			if err != nil {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"errors": []string{"Invalid cursor."}})
				return
			}
			q, before = cq, b
		}
		per := 100
		if v := q.Get("per_page"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 500 {
				writeJSON(w, http.StatusUnprocessableEntity, validation("per_page", "must be an integer between 1 and 500"))
				return
			}
			per = n
		}
		a.org.mu.Lock()
		items, more, err := list(a.org, q, before, per)
		if err == nil && a.sub != 0 && s.documented() {
			// Every answer from here on is a 200: the sub's own traffic enters its Audit Log.
			a.org.recordHarvestAccess(a.sub, a.now, target, requestTarget(r))
		}
		a.org.mu.Unlock()
		var fe *fieldError
		if errors.As(err, &fe) {
			writeJSON(w, http.StatusUnprocessableEntity, validation(fe.field, fe.msg))
			return
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, msg("Internal Server Error"))
			return
		}
		if items == nil {
			items = []any{} // an empty page is [], never null
		}
		if more {
			last := lastID(items[len(items)-1])
			w.Header().Set("Link", fmt.Sprintf(`<%s%s?cursor=%s>; rel="next"`, origin(r), r.URL.Path, encodeCursor(q, last)))
		}
		if a.f.Malformed != "" && breakBody(w, a, items, wrongType(a.seq)) {
			return
		}
		writeJSON(w, http.StatusOK, items)
	}
}

// requestTarget is the request's path and query as sent.
func requestTarget(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// origin is the scheme and host the request reached, so links work behind httptest.
func origin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func lastID(item any) int64 {
	switch v := item.(type) {
	case userJSON:
		return v.ID
	case roleJSON:
		return v.ID
	case jobPermJSON:
		return v.ID
	case futurePermJSON:
		return v.ID
	}
	return 0
}

// A cursor is opaque URL-safe base64 of the first request's query plus the last id served.
func encodeCursor(q url.Values, last int64) string {
	c := url.Values{}
	for k, v := range q {
		c[k] = v
	}
	c.Set("_before", strconv.FormatInt(last, 10))
	return base64.RawURLEncoding.EncodeToString([]byte(c.Encode()))
}

func decodeCursor(c string) (url.Values, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, 0, err
	}
	q, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, 0, err
	}
	before, err := strconv.ParseInt(q.Get("_before"), 10, 64)
	if err != nil || before <= 0 {
		return nil, 0, errors.New("cursor without position")
	}
	q.Del("_before")
	return q, before, nil
}

const tsLayout = "2006-01-02T15:04:05.000Z"

func ts(t time.Time) string { return t.UTC().Format(tsLayout) }

type userJSON struct {
	ID                 int64          `json:"id"`
	CreatedAt          string         `json:"created_at"`
	UpdatedAt          string         `json:"updated_at"`
	FirstName          string         `json:"first_name"`
	LastName           string         `json:"last_name"`
	Name               string         `json:"name"`
	PrimaryEmail       string         `json:"primary_email"`
	Emails             []string       `json:"emails"`
	JobTitle           *string        `json:"job_title"`
	AgencyID           *int64         `json:"agency_id"`
	Deactivated        bool           `json:"deactivated"`
	SiteAdmin          bool           `json:"site_admin"`
	EmployeeID         *string        `json:"employee_id"`
	LinkedCandidateIDs []int64        `json:"linked_candidate_ids"`
	OfficeIDs          []int64        `json:"office_ids"`
	DepartmentIDs      []int64        `json:"department_ids"`
	InterviewerTags    []any          `json:"interviewer_tags"`
	CustomFields       map[string]any `json:"custom_fields"`
}

func (u *user) json() userJSON {
	emails := []string{}
	if u.Email != "" {
		emails = append(emails, u.Email)
	}
	return userJSON{ID: u.ID, CreatedAt: ts(u.CreatedAt), UpdatedAt: ts(u.UpdatedAt), FirstName: u.First, LastName: u.Last,
		Name: u.name(), PrimaryEmail: u.Email, Emails: emails, Deactivated: u.Deactivated, SiteAdmin: u.SiteAdmin,
		LinkedCandidateIDs: []int64{}, OfficeIDs: []int64{}, DepartmentIDs: []int64{}, InterviewerTags: []any{},
		CustomFields: map[string]any{}}
}

type roleJSON struct {
	ID        int64  `json:"id"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	RoleType  string `json:"role_type"`
	Name      string `json:"name"`
}

type jobPermJSON struct {
	ID        int64  `json:"id"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	JobID     int64  `json:"job_id"`
	UserID    int64  `json:"user_id"`
	RoleID    int64  `json:"role_id"`
	Automated bool   `json:"automated"`
}

type futurePermJSON struct {
	ID           int64  `json:"id"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
	UserID       int64  `json:"user_id"`
	RoleID       int64  `json:"role_id"`
	DepartmentID *int64 `json:"department_id"`
	OfficeID     *int64 `json:"office_id"`
}

// pipeFilter parses "gte|t|lte|t" (operators gte, lte, gt, lt) into a predicate.
func pipeFilter(field, v string) (func(time.Time) bool, error) {
	parts := strings.Split(v, "|")
	if len(parts)%2 != 0 || len(parts) == 0 {
		return nil, &fieldError{field, "must be operator|time pairs, e.g. gte|2024-01-01T00:00:00Z"}
	}
	type bound struct {
		op string
		t  time.Time
	}
	var bs []bound
	for i := 0; i < len(parts); i += 2 {
		t, err := time.Parse(time.RFC3339Nano, parts[i+1])
		if err != nil {
			return nil, &fieldError{field, fmt.Sprintf("invalid time %q", parts[i+1])}
		}
		switch parts[i] {
		case "gte", "gt", "lte", "lt":
		default:
			return nil, &fieldError{field, fmt.Sprintf("invalid operator %q: use gte, gt, lte or lt", parts[i])}
		}
		bs = append(bs, bound{parts[i], t})
	}
	return func(x time.Time) bool {
		for _, b := range bs {
			c := x.Compare(b.t)
			if b.op == "gte" && c < 0 || b.op == "gt" && c <= 0 || b.op == "lte" && c > 0 || b.op == "lt" && c >= 0 {
				return false
			}
		}
		return true
	}, nil
}

// idSet parses a comma-separated list of at most 50 ids; nil when absent.
func idSet(field, v string) (map[int64]bool, error) {
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > 50 {
		return nil, &fieldError{field, "at most 50 ids"}
	}
	out := make(map[int64]bool, len(parts))
	for _, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil {
			return nil, &fieldError{field, fmt.Sprintf("invalid id %q", p)}
		}
		out[n] = true
	}
	return out, nil
}

func boolParam(q url.Values, field string) (*bool, error) {
	v := q.Get(field)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, &fieldError{field, "must be true or false"}
	}
	return &b, nil
}

// startBelow is the index of the first element (counting down) with id below before.
func startBelow(n int, id func(int) int64, before int64) int {
	if before == 0 {
		return n - 1
	}
	lo, hi := 0, n // first index with id >= before
	for lo < hi {
		m := (lo + hi) / 2
		if id(m) < before {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

func listUsers(o *Org, q url.Values, before int64, per int) ([]any, bool, error) {
	ids, err := idSet("ids", q.Get("ids"))
	if err != nil {
		return nil, false, err
	}
	if q.Get("created_at") != "" && q.Get("updated_at") != "" {
		return nil, false, &fieldError{"updated_at", "do not send created_at and updated_at together"}
	}
	var created, updated func(time.Time) bool
	if v := q.Get("created_at"); v != "" {
		if created, err = pipeFilter("created_at", v); err != nil {
			return nil, false, err
		}
	}
	if v := q.Get("updated_at"); v != "" {
		if updated, err = pipeFilter("updated_at", v); err != nil {
			return nil, false, err
		}
	}
	deact, err := boolParam(q, "deactivated")
	if err != nil {
		return nil, false, err
	}
	show, err := boolParam(q, "show_service_accounts")
	if err != nil {
		return nil, false, err
	}
	email := q.Get("primary_email")
	var out []any
	for i := startBelow(len(o.users), func(i int) int64 { return o.users[i].ID }, before); i >= 0; i-- {
		u := o.users[i]
		switch {
		case u.Removed, u.Service && (show == nil || !*show), ids != nil && !ids[u.ID],
			deact != nil && u.Deactivated != *deact, created != nil && !created(u.CreatedAt),
			updated != nil && !updated(u.UpdatedAt), email != "" && !strings.EqualFold(email, u.Email):
			continue
		}
		if len(out) == per {
			return out, true, nil
		}
		out = append(out, u.json())
	}
	return out, false, nil
}

func listRoles(o *Org, _ url.Values, before int64, per int) ([]any, bool, error) {
	created := ts(time.Date(2019, 3, 4, 10, 0, 0, 0, time.UTC))
	var out []any
	for i := startBelow(len(o.roles), func(i int) int64 { return o.roles[i].ID }, before); i >= 0; i-- {
		if len(out) == per {
			return out, true, nil
		}
		rl := o.roles[i]
		out = append(out, roleJSON{ID: rl.ID, CreatedAt: created, UpdatedAt: created, RoleType: rl.Type, Name: rl.Name})
	}
	return out, false, nil
}

func listPerms(o *Org, q url.Values, before int64, per int, ps []perm, future bool) ([]any, bool, error) {
	users, err := idSet("user_ids", q.Get("user_ids"))
	if err != nil {
		return nil, false, err
	}
	var jobs map[int64]bool
	if !future {
		if jobs, err = idSet("job_ids", q.Get("job_ids")); err != nil {
			return nil, false, err
		}
	}
	var out []any
	for i := startBelow(len(ps), func(i int) int64 { return ps[i].ID }, before); i >= 0; i-- {
		p := ps[i]
		if users != nil && !users[p.UserID] || jobs != nil && !jobs[p.JobID] {
			continue
		}
		if u := o.byID[p.UserID]; u == nil || u.Removed {
			continue
		}
		if len(out) == per {
			return out, true, nil
		}
		if future {
			fp := futurePermJSON{ID: p.ID, CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt), UserID: p.UserID, RoleID: p.RoleID}
			if p.DepartmentID != 0 {
				fp.DepartmentID = &p.DepartmentID
			}
			if p.OfficeID != 0 {
				fp.OfficeID = &p.OfficeID
			}
			out = append(out, fp)
			continue
		}
		out = append(out, jobPermJSON{ID: p.ID, CreatedAt: ts(p.CreatedAt), UpdatedAt: ts(p.UpdatedAt), JobID: p.JobID,
			UserID: p.UserID, RoleID: p.RoleID, Automated: p.Automated})
	}
	return out, false, nil
}

func listJobPerms(o *Org, q url.Values, before int64, per int) ([]any, bool, error) {
	return listPerms(o, q, before, per, o.jobPerms, false)
}

func listFuturePerms(o *Org, q url.Values, before int64, per int) ([]any, bool, error) {
	return listPerms(o, q, before, per, o.futurePerms, true)
}
