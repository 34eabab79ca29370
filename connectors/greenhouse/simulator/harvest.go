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

// listFunc lists one page of a Harvest collection in id-descending order into p: items with
// an id below before (0: from the top) that match q, at most per of them; more tells whether
// another matching item follows. The caller holds o.mu.
type listFunc func(o *Org, q url.Values, before int64, per int, p *page) (more bool, err error)

// page is a Harvest list page being rendered: its JSON array so far, and the number and last
// id of its items.
type page struct {
	b    []byte
	n    int
	last int64
}

// item starts the next item, of id, in p.b.
func (p *page) item(id int64) {
	if p.n > 0 {
		p.b = append(p.b, ',')
	}
	p.n++
	p.last = id
}

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
		s.listPage(w, r, a, q, before, per, target, list)
	}
}

// listPage serves a page of list once the request passed the checks: the page (an empty one
// is [], never null), its Link to the next one, the harvest_access event of the documented
// profile, or the list's 422.
func (s *Server) listPage(w http.ResponseWriter, r *http.Request, a admitted, q url.Values, before int64, per, target int, list listFunc) {
	bp := getBuffer()
	p := page{b: append(*bp, '[')}
	a.org.mu.Lock()
	more, err := list(a.org, q, before, per, &p)
	if err == nil && a.sub != 0 && s.documented() {
		// Every answer from here on is a 200: the sub's own traffic enters its Audit Log.
		a.org.recordHarvestAccess(a.sub, a.now, target, requestTarget(r))
	}
	a.org.mu.Unlock()
	p.b = append(p.b, ']')
	var fe *fieldError
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusUnprocessableEntity, validation(fe.field, fe.msg))
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, msg("Internal Server Error"))
	default:
		if more {
			w.Header().Set("Link", fmt.Sprintf(`<%s%s?cursor=%s>; rel="next"`, origin(r), r.URL.Path, encodeCursor(q, p.last)))
		}
		if a.f.Malformed != "" && breakBody(w, a, p.b, wrongType(a.seq)) {
			break
		}
		writeRendered(w, http.StatusOK, bp, p.b)
		return
	}
	putBuffer(bp, p.b)
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

// appendUser appends a user's wire JSON.
func appendUser(b []byte, u *user) []byte {
	b = appendInt(b, `{"id":`, u.ID)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, u.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, u.UpdatedAt)
	b = append(b, `,"first_name":`...)
	b = appendString(b, u.First)
	b = append(b, `,"last_name":`...)
	b = appendString(b, u.Last)
	b = append(b, `,"name":`...)
	b = appendString(b, strings.TrimSpace(u.First+" "+u.Last)) // u.name(), on the stack when short
	b = append(b, `,"primary_email":`...)
	b = appendString(b, u.Email)
	b = append(b, `,"emails":[`...)
	if u.Email != "" {
		b = appendString(b, u.Email)
	}
	b = append(b, `],"job_title":null,"agency_id":null,"deactivated":`...)
	b = strconv.AppendBool(b, u.Deactivated)
	b = append(b, `,"site_admin":`...)
	b = strconv.AppendBool(b, u.SiteAdmin)
	return append(b, `,"employee_id":null,"linked_candidate_ids":[],"office_ids":[],"department_ids":[],"interviewer_tags":[],"custom_fields":{}}`...)
}

// rolesCreated is every role's created_at and updated_at.
var rolesCreated = time.Date(2019, 3, 4, 10, 0, 0, 0, time.UTC)

// appendRole appends a role's wire JSON.
func appendRole(b []byte, rl role) []byte {
	b = appendInt(b, `{"id":`, rl.ID)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, rolesCreated)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, rolesCreated)
	b = append(b, `,"role_type":`...)
	b = appendString(b, rl.Type)
	b = append(b, `,"name":`...)
	b = appendString(b, rl.Name)
	return append(b, '}')
}

// appendPerm appends a job permission's wire JSON, or a future one's (future).
func appendPerm(b []byte, p *perm, future bool) []byte {
	b = appendInt(b, `{"id":`, p.ID)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, p.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, p.UpdatedAt)
	if future {
		b = appendInt(b, `,"user_id":`, p.UserID)
		b = appendInt(b, `,"role_id":`, p.RoleID)
		b = appendOptInt(b, `,"department_id":`, p.DepartmentID)
		b = appendOptInt(b, `,"office_id":`, p.OfficeID)
		return append(b, '}')
	}
	b = appendInt(b, `,"job_id":`, p.JobID)
	b = appendInt(b, `,"user_id":`, p.UserID)
	b = appendInt(b, `,"role_id":`, p.RoleID)
	b = append(b, `,"automated":`...)
	b = strconv.AppendBool(b, p.Automated)
	return append(b, '}')
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

func listUsers(o *Org, q url.Values, before int64, per int, p *page) (bool, error) {
	ids, err := idSet("ids", q.Get("ids"))
	if err != nil {
		return false, err
	}
	if q.Get("created_at") != "" && q.Get("updated_at") != "" {
		return false, &fieldError{"updated_at", "do not send created_at and updated_at together"}
	}
	var created, updated func(time.Time) bool
	if v := q.Get("created_at"); v != "" {
		if created, err = pipeFilter("created_at", v); err != nil {
			return false, err
		}
	}
	if v := q.Get("updated_at"); v != "" {
		if updated, err = pipeFilter("updated_at", v); err != nil {
			return false, err
		}
	}
	deact, err := boolParam(q, "deactivated")
	if err != nil {
		return false, err
	}
	show, err := boolParam(q, "show_service_accounts")
	if err != nil {
		return false, err
	}
	email := q.Get("primary_email")
	for i := startBelow(len(o.users), func(i int) int64 { return o.users[i].ID }, before); i >= 0; i-- {
		u := o.users[i]
		switch {
		case u.Removed, u.Service && (show == nil || !*show), ids != nil && !ids[u.ID],
			deact != nil && u.Deactivated != *deact, created != nil && !created(u.CreatedAt),
			updated != nil && !updated(u.UpdatedAt), email != "" && !strings.EqualFold(email, u.Email):
			continue
		}
		if p.n == per {
			return true, nil
		}
		p.item(u.ID)
		p.b = appendUser(p.b, u)
	}
	return false, nil
}

func listRoles(o *Org, _ url.Values, before int64, per int, p *page) (bool, error) {
	for i := startBelow(len(o.roles), func(i int) int64 { return o.roles[i].ID }, before); i >= 0; i-- {
		if p.n == per {
			return true, nil
		}
		p.item(o.roles[i].ID)
		p.b = appendRole(p.b, o.roles[i])
	}
	return false, nil
}

func listPerms(o *Org, q url.Values, before int64, per int, pg *page, ps []perm, future bool) (bool, error) {
	users, err := idSet("user_ids", q.Get("user_ids"))
	if err != nil {
		return false, err
	}
	var jobs map[int64]bool
	if !future {
		if jobs, err = idSet("job_ids", q.Get("job_ids")); err != nil {
			return false, err
		}
	}
	for i := startBelow(len(ps), func(i int) int64 { return ps[i].ID }, before); i >= 0; i-- {
		p := &ps[i]
		if users != nil && !users[p.UserID] || jobs != nil && !jobs[p.JobID] {
			continue
		}
		if u := o.byID[p.UserID]; u == nil || u.Removed {
			continue
		}
		if pg.n == per {
			return true, nil
		}
		pg.item(p.ID)
		pg.b = appendPerm(pg.b, p, future)
	}
	return false, nil
}

func listJobPerms(o *Org, q url.Values, before int64, per int, p *page) (bool, error) {
	return listPerms(o, q, before, per, p, o.jobPerms, false)
}

func listFuturePerms(o *Org, q url.Values, before int64, per int, p *page) (bool, error) {
	return listPerms(o, q, before, per, p, o.futurePerms, true)
}
