package collector

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The read API of the dashboard (docs/api.md): the users list with filters, sorts, cursors
// and CSV export, a user's detail, trends, and the sync-run history.

// Query parameters of the read routes, in the order docs/openapi.yaml lists them.
var (
	usersParams    = []string{"usage", "license_type", "status", "service_account", "licensed", "exempt", "q", "sort", "order", "limit", "cursor"}
	userParams     = []string{"from", "to"}
	trendsParams   = []string{"bucket", "from", "to"}
	syncRunsParams = []string{"kind", "status", "limit", "cursor"}
)

// Bounds of the read routes.
const (
	defaultPage    = 100
	maxPage        = 1000
	maxQueryLength = 200
	// activeDaysWindow is the window of active_days_30: the day of as_of and the 29 before.
	activeDaysWindow = 30
	// defaultRange is the range of from/to when neither is given.
	defaultRange = 30 * 24 * time.Hour
	// maxActivityRange bounds a user's daily activity range.
	maxActivityRange = 366 * 24 * time.Hour
	// maxTrendBuckets bounds a trend's buckets.
	maxTrendBuckets = 366
)

// onlyParams answers 400 unknown_parameter for a query parameter the route does not take and
// 400 invalid_field for one given twice, before h sees the request.
func onlyParams(allowed []string, h http.Handler) http.Handler {
	ok := make(map[string]bool, len(allowed))
	for _, p := range allowed {
		ok[p] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidQuery, Message: "the query string is malformed"})
			return
		}
		names := make([]string, 0, len(q))
		for k := range q {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if !ok[k] {
				msg := fmt.Sprintf("unknown parameter %q", k)
				if len(allowed) > 0 {
					msg += "; this route takes " + strings.Join(allowed, ", ")
				}
				writeError(w, http.StatusBadRequest, apiError{Code: codeUnknownParameter, Field: k, Message: msg})
				return
			}
			if len(q[k]) > 1 {
				writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidField, Field: k, Message: fmt.Sprintf("%s is given more than once", k)})
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// ListedUser is a row of GET …/users: the license record with its activity figures.
type ListedUser struct {
	events.LicenseRecord
	// DaysSinceActivity is the whole days from last_activity_at to as_of; null without activity.
	DaysSinceActivity *int `json:"days_since_activity"`
	// ActiveDays30 counts the UTC days with activity among the 30 ending with as_of's day.
	ActiveDays30 int `json:"active_days_30"`
}

// UsersPage is the body of GET /v1/tenants/{tenant_id}/users.
type UsersPage struct {
	TenantID string `json:"tenant_id"`
	Sort     string `json:"sort"`
	Order    string `json:"order"`
	// Total is the number of users in the walk: those that matched at its first page.
	Total      int          `json:"total"`
	AsOf       time.Time    `json:"as_of"`
	NextCursor string       `json:"next_cursor,omitempty"`
	Users      []ListedUser `json:"users"`
}

// usersQuery is a parsed GET …/users request.
type usersQuery struct {
	statuses, licenseTypes, usages []string
	serviceAccount, licensed       *bool
	exempt                         *bool
	q                              string
	sort                           storage.UserSort
	limit                          int
	limitSet                       bool
	cursor                         string
}

// key is the canonical form of the filters and sort: a cursor continues only a walk with
// the same key.
func (u usersQuery) key() string {
	tri := func(b *bool) string {
		if b == nil {
			return ""
		}
		return strconv.FormatBool(*b)
	}
	return strings.Join([]string{"v1", strings.Join(u.statuses, ","), strings.Join(u.licenseTypes, ","), strings.Join(u.usages, ","),
		tri(u.serviceAccount), tri(u.licensed), u.q, u.sort.Key, strconv.FormatBool(u.sort.Desc), tri(u.exempt)}, "\x00")
}

func (u usersQuery) filter(p storage.UsageParams) storage.UserFilter {
	return storage.UserFilter{Statuses: u.statuses, LicenseTypes: u.licenseTypes, Usages: u.usages,
		ServiceAccount: u.serviceAccount, Licensed: u.licensed, Exempt: u.exempt, Query: u.q, Usage: p}
}

func (u usersQuery) order() string {
	if u.sort.Desc {
		return "desc"
	}
	return "asc"
}

// listParam reads a comma-separated list of allowed values, sorted and without repeats.
func listParam(q url.Values, name string, allowed ...string) ([]string, *apiError) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	set := map[string]bool{}
	for _, x := range strings.Split(v, ",") {
		if !contains(allowed, x) {
			return nil, &apiError{Code: codeInvalidField, Field: name, Message: fmt.Sprintf("%s must be one or more of %s, comma-separated", name, strings.Join(allowed, ", "))}
		}
		set[x] = true
	}
	out := make([]string, 0, len(set))
	for x := range set {
		out = append(out, x)
	}
	sort.Strings(out)
	return out, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func boolParam(q url.Values, name string) (*bool, *apiError) {
	switch q.Get(name) {
	case "":
		return nil, nil
	case "true":
		b := true
		return &b, nil
	case "false":
		b := false
		return &b, nil
	}
	return nil, &apiError{Code: codeInvalidField, Field: name, Message: name + " must be true or false"}
}

func limitParam(q url.Values) (int, bool, *apiError) {
	v := q.Get("limit")
	if v == "" {
		return defaultPage, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, false, &apiError{Code: codeInvalidField, Field: "limit", Message: fmt.Sprintf("limit must be an integer from 1 to %d", maxPage)}
	}
	return n, true, nil
}

// timeParam reads an RFC 3339 time or a date (YYYY-MM-DD, midnight UTC).
func timeParam(q url.Values, name string) (*time.Time, *apiError) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, &apiError{Code: codeInvalidField, Field: name, Message: name + " must be an RFC 3339 time (2026-11-22T10:00:00Z) or a date (2026-11-22)"}
}

// rangeParams reads from and to: to defaults to now, from to 30 days before to; from must be
// before to.
func rangeParams(q url.Values, now time.Time) (time.Time, time.Time, *apiError) {
	from, e := timeParam(q, "from")
	if e != nil {
		return time.Time{}, time.Time{}, e
	}
	to, e := timeParam(q, "to")
	if e != nil {
		return time.Time{}, time.Time{}, e
	}
	t := now
	if to != nil {
		t = *to
	}
	f := t.Add(-defaultRange)
	if from != nil {
		f = *from
	}
	if !f.Before(t) {
		return time.Time{}, time.Time{}, &apiError{Code: codeInvalidField, Field: "from", Message: "from must be before to"}
	}
	return f, t, nil
}

func parseUsersQuery(q url.Values) (usersQuery, *apiError) {
	var (
		u usersQuery
		e *apiError
	)
	if u.usages, e = listParam(q, "usage", "all", storage.UsageActive, storage.UsageInactive, storage.UsageUnknown, storage.UsageExempt); e != nil {
		return u, e
	}
	if contains(u.usages, "all") {
		if len(u.usages) > 1 {
			return u, &apiError{Code: codeInvalidField, Field: "usage", Message: "usage=all goes alone"}
		}
		u.usages = nil
	}
	if u.licenseTypes, e = listParam(q, "license_type", LicenseSiteAdmin, LicenseJobAdmin, LicenseBasic); e != nil {
		return u, e
	}
	if u.statuses, e = listParam(q, "status", storage.StatusActive, storage.StatusDeactivated, storage.StatusRemoved); e != nil {
		return u, e
	}
	if u.serviceAccount, e = boolParam(q, "service_account"); e != nil {
		return u, e
	}
	if u.licensed, e = boolParam(q, "licensed"); e != nil {
		return u, e
	}
	if u.exempt, e = boolParam(q, "exempt"); e != nil {
		return u, e
	}
	u.q = q.Get("q")
	if !utf8.ValidString(u.q) || utf8.RuneCountInString(u.q) > maxQueryLength {
		return u, &apiError{Code: codeInvalidField, Field: "q", Message: fmt.Sprintf("q must be valid UTF-8 of at most %d characters", maxQueryLength)}
	}
	u.sort.Key = q.Get("sort")
	switch u.sort.Key {
	case "":
		u.sort.Key = storage.SortName
	case storage.SortName, storage.SortEmail, storage.SortCreatedAt, storage.SortLastActivityAt:
	default:
		return u, &apiError{Code: codeInvalidField, Field: "sort", Message: "sort must be one of last_activity_at, name, email, created_at"}
	}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		u.sort.Desc = true
	default:
		return u, &apiError{Code: codeInvalidField, Field: "order", Message: "order must be asc or desc"}
	}
	if u.limit, u.limitSet, e = limitParam(q); e != nil {
		return u, e
	}
	u.cursor = q.Get("cursor")
	return u, nil
}

// usersCursor is what a users-list cursor holds (sealed): the walk and the position in it.
type usersCursor struct {
	Walk   string `json:"w"`
	Offset int    `json:"o"`
}

var walkIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// activeDaysSince is the first day of the active_days_30 window ending with now's day.
func activeDaysSince(now time.Time) time.Time {
	return now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(activeDaysWindow - 1))
}

// listedUser is the API row of a stored user under p.
func listedUser(u storage.ListedUser, p storage.UsageParams) ListedUser {
	out := ListedUser{LicenseRecord: record(u.UserRow, p), ActiveDays30: int(u.ActiveDays)}
	if u.LastActivityAt != nil {
		d := max(0, int(p.Now.Sub(*u.LastActivityAt)/(24*time.Hour)))
		out.DaysSinceActivity = &d
	}
	return out
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	uq, e := parseUsersQuery(r.URL.Query())
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	asCSV := wantsCSV(r)
	if asCSV && (uq.cursor != "" || uq.limitSet) {
		writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidField, Field: map[bool]string{true: "cursor", false: "limit"}[uq.cursor != ""],
			Message: "limit and cursor page the JSON answer; the CSV export has every row"})
		return
	}
	_, params, ok := a.tenantUsage(w, r, tenant)
	if !ok {
		return
	}
	ctx := r.Context()
	if asCSV {
		a.exportUsersCSV(ctx, w, tenant, uq, params)
		return
	}
	var (
		ids    []int64
		offset int
		walkID string
	)
	if uq.cursor != "" {
		if ids, offset, walkID, ok = a.continueWalk(w, r, tenant, uq); !ok {
			return
		}
	} else {
		var err error
		if ids, err = a.store.UserIDs(ctx, tenant, connectors.AppGreenhouse, uq.filter(params), uq.sort); err != nil {
			a.unavailable(w, err)
			return
		}
	}
	// The walk is stored while the page's rows are read.
	stored := make(chan error, 1)
	if uq.cursor == "" && len(ids) > uq.limit {
		first := ids
		go func() {
			var err error
			walkID, err = a.walks.put(ctx, walk{tenant: tenant, query: uq.key(), asOf: a.now(), ids: first})
			stored <- err
		}()
	} else {
		stored <- nil
	}
	end := min(offset+uq.limit, len(ids))
	rows, err := a.store.UsersByID(ctx, tenant, connectors.AppGreenhouse, ids[offset:end], activeDaysSince(params.Now))
	if werr := <-stored; err == nil {
		err = werr
	}
	if err != nil {
		a.unavailable(w, err)
		return
	}
	byID := make(map[int64]storage.ListedUser, len(rows))
	for _, u := range rows {
		byID[u.UserID] = u
	}
	page := UsersPage{TenantID: tenant, Sort: uq.sort.Key, Order: uq.order(), Total: len(ids), AsOf: params.Now, Users: make([]ListedUser, 0, end-offset)}
	for _, id := range ids[offset:end] {
		if u, ok := byID[id]; ok { // users are never deleted; a missing one was removed by hand
			page.Users = append(page.Users, listedUser(u, params))
		}
	}
	if end < len(ids) {
		if page.NextCursor, err = a.sealCursor("users", tenant, usersCursor{Walk: walkID, Offset: end}); err != nil {
			a.unavailable(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// continueWalk reads the walk a users-list cursor continues and the position in it, answering
// 400 (not a cursor of this list), 410 (the walk expired) or 503 itself.
func (a *api) continueWalk(w http.ResponseWriter, r *http.Request, tenant string, uq usersQuery) ([]int64, int, string, bool) {
	var c usersCursor
	if !a.openCursor("users", tenant, uq.cursor, &c) || !walkIDRe.MatchString(c.Walk) || c.Offset < 1 {
		writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidCursor, Field: "cursor", Message: "cursor must be the next_cursor of an earlier page"})
		return nil, 0, "", false
	}
	wk, err := a.walks.get(r.Context(), c.Walk)
	if errors.Is(err, errWalkExpired) {
		writeError(w, http.StatusGone, apiError{Code: codeCursorExpired, Field: "cursor",
			Message: fmt.Sprintf("the walk of this cursor is older than %s or was lost; start again without a cursor", walkTTL)})
		return nil, 0, "", false
	}
	if err != nil {
		a.unavailable(w, err)
		return nil, 0, "", false
	}
	if wk.tenant != tenant || wk.query != uq.key() || c.Offset > len(wk.ids) {
		writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidCursor, Field: "cursor",
			Message: "the cursor belongs to a list with other filters or sort: repeat the first page's parameters with it"})
		return nil, 0, "", false
	}
	return wk.ids, c.Offset, c.Walk, true
}

// UserRevision is one entry of a user's license history.
type UserRevision struct {
	Revision       uint32    `json:"revision"`
	ChangedAt      time.Time `json:"changed_at"`
	Changed        []string  `json:"changed"`
	Status         string    `json:"status"`
	Licensed       bool      `json:"licensed"`
	LicenseType    string    `json:"license_type"`
	SiteAdmin      bool      `json:"site_admin"`
	ServiceAccount bool      `json:"service_account"`
	Name           string    `json:"name"`
	Email          string    `json:"email"`
}

// ActivityDay is a user's activity on one UTC day.
type ActivityDay struct {
	Day         string    `json:"day"` // YYYY-MM-DD
	Events      int       `json:"events"`
	LastEventAt time.Time `json:"last_event_at"`
}

// UserActivity is a user's daily activity over a range; days without activity are left out.
type UserActivity struct {
	From       time.Time     `json:"from"`
	To         time.Time     `json:"to"`
	ActiveDays int           `json:"active_days"`
	Events     int           `json:"events"`
	Days       []ActivityDay `json:"days"`
}

// UserDetail is the body of GET /v1/tenants/{tenant_id}/users/{user_id}.
type UserDetail struct {
	User     ListedUser     `json:"user"`
	History  []UserRevision `json:"history"`
	Activity UserActivity   `json:"activity"`
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidField, Field: "user_id", Message: "user_id must be a positive integer"})
		return
	}
	from, to, e := rangeParams(r.URL.Query(), a.now())
	if e == nil && to.Sub(from) > maxActivityRange {
		e = &apiError{Code: codeInvalidField, Field: "from", Message: "from and to may be at most 366 days apart"}
	}
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	_, params, ok := a.tenantUsage(w, r, tenant)
	if !ok {
		return
	}
	ctx := r.Context()
	rows, err := a.store.UsersByID(ctx, tenant, connectors.AppGreenhouse, []int64{id}, activeDaysSince(params.Now))
	if err != nil {
		a.unavailable(w, err)
		return
	}
	if len(rows) == 0 {
		writeError(w, http.StatusNotFound, apiError{Code: codeNotFound, Message: fmt.Sprintf("tenant %q has no user %d", tenant, id)})
		return
	}
	hist, err := a.store.UserHistory(ctx, tenant, connectors.AppGreenhouse, id)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	days, err := a.store.UserDailyActivity(ctx, tenant, connectors.AppGreenhouse, id, from, to)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	out := UserDetail{User: listedUser(rows[0], params), History: make([]UserRevision, 0, len(hist)),
		Activity: UserActivity{From: from, To: to, Days: make([]ActivityDay, 0, len(days))}}
	for _, h := range hist {
		changed := h.Changed
		if changed == nil {
			changed = []string{}
		}
		out.History = append(out.History, UserRevision{Revision: h.Revision, ChangedAt: h.ChangedAt, Changed: changed, Status: h.Status,
			Licensed: storage.Licensed(h.Status, h.ServiceAccount), LicenseType: h.LicenseType, SiteAdmin: h.SiteAdmin,
			ServiceAccount: h.ServiceAccount, Name: h.Name, Email: h.Email})
	}
	for _, d := range days {
		out.Activity.Days = append(out.Activity.Days, ActivityDay{Day: d.Day.Format(time.DateOnly), Events: int(d.Events), LastEventAt: d.LastEventAt})
		out.Activity.Events += int(d.Events)
		if d.Events > 0 {
			out.Activity.ActiveDays++
		}
	}
	writeJSON(w, http.StatusOK, out)
}
