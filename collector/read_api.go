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

	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// The read API of the dashboard (docs/api.md): the users list with filters, sorts, cursors
// and CSV export, a user's detail, trends, and the sync-run history.

// Query parameters of the read routes, in the order docs/openapi.yaml lists them.
var (
	usersParams    = []string{"usage", "license_type", "status", "service_account", "licensed", "q", "sort", "order", "limit", "cursor"}
	userParams     = []string{"from", "to"}
	trendsParams   = []string{"bucket", "from", "to"}
	syncRunsParams = []string{"kind", "status", "limit", "cursor"}
)

// reservedParams are parameters a later version will take; until then they are refused
// with a sentence saying why.
var reservedParams = map[string]string{
	"exempt": "exempt is reserved for license policies, which this version does not have",
}

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
			writeError(w, http.StatusBadRequest, apiError{Code: "invalid_query", Message: "the query string is malformed"})
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
				if why, reserved := reservedParams[k]; reserved {
					msg = why
				}
				writeError(w, http.StatusBadRequest, apiError{Code: "unknown_parameter", Field: k, Message: msg})
				return
			}
			if len(q[k]) > 1 {
				writeError(w, http.StatusBadRequest, apiError{Code: "invalid_field", Field: k, Message: fmt.Sprintf("%s is given more than once", k)})
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
		tri(u.serviceAccount), tri(u.licensed), u.q, u.sort.Key, strconv.FormatBool(u.sort.Desc)}, "\x00")
}

func (u usersQuery) filter(p UsageParams) storage.UserFilter {
	return storage.UserFilter{Statuses: u.statuses, LicenseTypes: u.licenseTypes, Usages: u.usages,
		ServiceAccount: u.serviceAccount, Licensed: u.licensed, Query: u.q, Usage: p.storage()}
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
			return nil, &apiError{Code: "invalid_field", Field: name, Message: fmt.Sprintf("%s must be one or more of %s, comma-separated", name, strings.Join(allowed, ", "))}
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
	return nil, &apiError{Code: "invalid_field", Field: name, Message: name + " must be true or false"}
}

func limitParam(q url.Values) (int, bool, *apiError) {
	v := q.Get("limit")
	if v == "" {
		return defaultPage, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, false, &apiError{Code: "invalid_field", Field: "limit", Message: fmt.Sprintf("limit must be an integer from 1 to %d", maxPage)}
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
	return nil, &apiError{Code: "invalid_field", Field: name, Message: name + " must be an RFC 3339 time (2026-11-22T10:00:00Z) or a date (2026-11-22)"}
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
		return time.Time{}, time.Time{}, &apiError{Code: "invalid_field", Field: "from", Message: "from must be before to"}
	}
	return f, t, nil
}

func parseUsersQuery(q url.Values) (usersQuery, *apiError) {
	var (
		u usersQuery
		e *apiError
	)
	if u.usages, e = listParam(q, "usage", "all", UsageActive, UsageInactive, UsageUnknown); e != nil {
		return u, e
	}
	if contains(u.usages, "all") {
		if len(u.usages) > 1 {
			return u, &apiError{Code: "invalid_field", Field: "usage", Message: "usage=all goes alone"}
		}
		u.usages = nil
	}
	if u.licenseTypes, e = listParam(q, "license_type", LicenseSiteAdmin, LicenseJobAdmin, LicenseBasic); e != nil {
		return u, e
	}
	if u.statuses, e = listParam(q, "status", StatusActive, StatusDeactivated, StatusRemoved); e != nil {
		return u, e
	}
	if u.serviceAccount, e = boolParam(q, "service_account"); e != nil {
		return u, e
	}
	if u.licensed, e = boolParam(q, "licensed"); e != nil {
		return u, e
	}
	u.q = q.Get("q")
	if !utf8.ValidString(u.q) || utf8.RuneCountInString(u.q) > maxQueryLength {
		return u, &apiError{Code: "invalid_field", Field: "q", Message: fmt.Sprintf("q must be valid UTF-8 of at most %d characters", maxQueryLength)}
	}
	u.sort.Key = q.Get("sort")
	switch u.sort.Key {
	case "":
		u.sort.Key = storage.SortName
	case storage.SortName, storage.SortEmail, storage.SortCreatedAt, storage.SortLastActivityAt:
	default:
		return u, &apiError{Code: "invalid_field", Field: "sort", Message: "sort must be one of last_activity_at, name, email, created_at"}
	}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		u.sort.Desc = true
	default:
		return u, &apiError{Code: "invalid_field", Field: "order", Message: "order must be asc or desc"}
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

// readContext loads a tenant's usage parameters for a read route, answering 404 or 503
// itself.
func (s *Service) readContext(w http.ResponseWriter, r *http.Request, tenant string) (storedConnection, UsageParams, bool) {
	sc, params, err := s.tenantUsage(r.Context(), tenant)
	if errors.Is(err, events.ErrNotFound) {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: fmt.Sprintf("tenant %q has no Greenhouse connection", tenant)})
		return sc, params, false
	}
	if err != nil {
		s.unavailable(w, err)
		return sc, params, false
	}
	return sc, params, true
}

// activeDaysSince is the first day of the active_days_30 window ending with now's day.
func activeDaysSince(now time.Time) time.Time {
	return now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(activeDaysWindow - 1))
}

// listedUser is the API row of a stored user under p.
func listedUser(u storage.ListedUser, p UsageParams) ListedUser {
	out := ListedUser{LicenseRecord: record(u.UserRow, p), ActiveDays30: int(u.ActiveDays)}
	if u.LastActivityAt != nil {
		d := max(0, int(p.Now.Sub(*u.LastActivityAt)/(24*time.Hour)))
		out.DaysSinceActivity = &d
	}
	return out
}

func (s *Service) listUsers(w http.ResponseWriter, r *http.Request) {
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
		writeError(w, http.StatusBadRequest, apiError{Code: "invalid_field", Field: map[bool]string{true: "cursor", false: "limit"}[uq.cursor != ""],
			Message: "limit and cursor page the JSON answer; the CSV export has every row"})
		return
	}
	_, params, ok := s.readContext(w, r, tenant)
	if !ok {
		return
	}
	ctx := r.Context()
	if asCSV {
		s.exportUsersCSV(ctx, w, tenant, uq, params)
		return
	}
	var (
		ids    []int64
		offset int
		walkID string
	)
	if uq.cursor != "" {
		var c usersCursor
		if !s.openCursor("users", tenant, uq.cursor, &c) || !walkIDRe.MatchString(c.Walk) || c.Offset < 1 {
			writeError(w, http.StatusBadRequest, apiError{Code: "invalid_cursor", Field: "cursor", Message: "cursor must be the next_cursor of an earlier page"})
			return
		}
		wk, err := s.walks.get(ctx, c.Walk)
		if errors.Is(err, errWalkExpired) {
			writeError(w, http.StatusGone, apiError{Code: "cursor_expired", Field: "cursor",
				Message: fmt.Sprintf("the walk of this cursor is older than %s or was lost; start again without a cursor", walkTTL)})
			return
		}
		if err != nil {
			s.unavailable(w, err)
			return
		}
		if wk.tenant != tenant || wk.query != uq.key() || c.Offset > len(wk.ids) {
			writeError(w, http.StatusBadRequest, apiError{Code: "invalid_cursor", Field: "cursor",
				Message: "the cursor belongs to a list with other filters or sort: repeat the first page's parameters with it"})
			return
		}
		ids, offset, walkID = wk.ids, c.Offset, c.Walk
	} else {
		var err error
		if ids, err = s.store.UserIDs(ctx, tenant, appName, uq.filter(params), uq.sort); err != nil {
			s.unavailable(w, err)
			return
		}
	}
	// The walk is stored while the page's rows are read.
	stored := make(chan error, 1)
	if uq.cursor == "" && len(ids) > uq.limit {
		first := ids
		go func() {
			var err error
			walkID, err = s.walks.put(ctx, walk{tenant: tenant, query: uq.key(), asOf: s.now(), ids: first})
			stored <- err
		}()
	} else {
		stored <- nil
	}
	end := min(offset+uq.limit, len(ids))
	rows, err := s.store.UsersByID(ctx, tenant, appName, ids[offset:end], activeDaysSince(params.Now))
	if werr := <-stored; err == nil {
		err = werr
	}
	if err != nil {
		s.unavailable(w, err)
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
		if page.NextCursor, err = s.sealCursor("users", tenant, usersCursor{Walk: walkID, Offset: end}); err != nil {
			s.unavailable(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, page)
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

func (s *Service) getUser(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, apiError{Code: "invalid_field", Field: "user_id", Message: "user_id must be a positive integer"})
		return
	}
	from, to, e := rangeParams(r.URL.Query(), s.now())
	if e == nil && to.Sub(from) > maxActivityRange {
		e = &apiError{Code: "invalid_field", Field: "from", Message: "from and to may be at most 366 days apart"}
	}
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	_, params, ok := s.readContext(w, r, tenant)
	if !ok {
		return
	}
	ctx := r.Context()
	rows, err := s.store.UsersByID(ctx, tenant, appName, []int64{id}, activeDaysSince(params.Now))
	if err != nil {
		s.unavailable(w, err)
		return
	}
	if len(rows) == 0 {
		writeError(w, http.StatusNotFound, apiError{Code: "not_found", Message: fmt.Sprintf("tenant %q has no user %d", tenant, id)})
		return
	}
	hist, err := s.store.UserHistory(ctx, tenant, appName, id)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	days, err := s.store.UserDailyActivity(ctx, tenant, appName, id, from, to)
	if err != nil {
		s.unavailable(w, err)
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
			Licensed: Licensed(h.Status, h.ServiceAccount), LicenseType: h.LicenseType, SiteAdmin: h.SiteAdmin,
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

// TrendBucket is one bucket of GET …/trends: the figures of the last snapshot (users sync)
// in the bucket, or only its bounds when no users sync fell in it.
type TrendBucket struct {
	Start          time.Time      `json:"start"`
	End            time.Time      `json:"end"`
	SnapshotAt     *time.Time     `json:"snapshot_at"`
	Users          *int           `json:"users,omitempty"`
	Licenses       *int           `json:"licenses,omitempty"`
	LicensesByType map[string]int `json:"licenses_by_type,omitempty"`
	Active         *int           `json:"active,omitempty"`
	Inactive       *int           `json:"inactive,omitempty"`
	Unknown        *int           `json:"unknown,omitempty"`
	Utilisation    *float64       `json:"utilisation,omitempty"`
}

// Trends is the body of GET /v1/tenants/{tenant_id}/trends.
type Trends struct {
	TenantID string        `json:"tenant_id"`
	Bucket   string        `json:"bucket"`
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Buckets  []TrendBucket `json:"buckets"`
}

// bucketStart is the start of t's bucket (UTC): its day, the Monday of its ISO week, or the
// first of its month.
func bucketStart(t time.Time, bucket string) time.Time {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch bucket {
	case storage.BucketWeek:
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case storage.BucketMonth:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return d
}

func bucketNext(t time.Time, bucket string) time.Time {
	switch bucket {
	case storage.BucketWeek:
		return t.AddDate(0, 0, 7)
	case storage.BucketMonth:
		return t.AddDate(0, 1, 0)
	}
	return t.AddDate(0, 0, 1)
}

func (s *Service) trends(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	bucket := q.Get("bucket")
	switch bucket {
	case "":
		bucket = storage.BucketDay
	case storage.BucketDay, storage.BucketWeek, storage.BucketMonth:
	default:
		writeError(w, http.StatusBadRequest, apiError{Code: "invalid_field", Field: "bucket", Message: "bucket must be day, week or month"})
		return
	}
	from, to, e := rangeParams(q, s.now())
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	out := Trends{TenantID: tenant, Bucket: bucket, From: from, To: to}
	for b := bucketStart(from, bucket); b.Before(to); b = bucketNext(b, bucket) {
		if len(out.Buckets) == maxTrendBuckets {
			writeError(w, http.StatusBadRequest, apiError{Code: "invalid_field", Field: "from",
				Message: fmt.Sprintf("from and to span more than %d buckets of a %s", maxTrendBuckets, bucket)})
			return
		}
		out.Buckets = append(out.Buckets, TrendBucket{Start: b, End: bucketNext(b, bucket)})
	}
	if _, _, ok := s.readContext(w, r, tenant); !ok {
		return
	}
	rows, err := s.store.UsageTrend(r.Context(), tenant, appName, bucket, out.Buckets[0].Start, to)
	if err != nil {
		s.unavailable(w, err)
		return
	}
	i := 0
	for _, row := range rows {
		for i < len(out.Buckets) && !row.TS.Before(out.Buckets[i].End) {
			i++
		}
		if i == len(out.Buckets) {
			break
		}
		b := &out.Buckets[i]
		if b.SnapshotAt == nil {
			at := row.TS
			zero := func() *int { n := 0; return &n }
			b.SnapshotAt, b.Users, b.Licenses, b.Active, b.Inactive, b.Unknown = &at, zero(), zero(), zero(), zero(), zero()
			b.LicensesByType = map[string]int{}
			u := 0.0
			b.Utilisation = &u
		}
		*b.Users += int(row.Users)
		*b.Licenses += int(row.Licenses)
		*b.Active += int(row.Active)
		*b.Inactive += int(row.Inactive)
		*b.Unknown += int(row.Unknown)
		if row.Licenses > 0 {
			b.LicensesByType[row.LicenseType] += int(row.Licenses)
		}
		if *b.Licenses > 0 {
			*b.Utilisation = float64(*b.Active) / float64(*b.Licenses)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// SyncRunsPage is the body of GET /v1/tenants/{tenant_id}/sync-runs.
type SyncRunsPage struct {
	TenantID   string               `json:"tenant_id"`
	NextCursor string               `json:"next_cursor,omitempty"`
	Runs       []events.SyncSummary `json:"runs"`
}

// syncRunsCursor is what a sync-runs cursor holds (sealed): the last run of the previous page
// and the filters it was given with.
type syncRunsCursor struct {
	StartedAt int64  `json:"t"`
	RunID     string `json:"r"`
	Filter    string `json:"f"`
}

var runIDRe = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func parseSyncRunsQuery(q url.Values) (storage.SyncRunFilter, *apiError) {
	var f storage.SyncRunFilter
	switch f.Kind = q.Get("kind"); f.Kind {
	case "", runKindUsers, runKindAudit:
	default:
		return f, &apiError{Code: "invalid_field", Field: "kind", Message: "kind must be users or audit"}
	}
	switch f.Status = q.Get("status"); f.Status {
	case "", "succeeded", "failed":
	default:
		return f, &apiError{Code: "invalid_field", Field: "status", Message: "status must be succeeded or failed"}
	}
	return f, nil
}

func syncSummary(r storage.SyncRunRow) events.SyncSummary {
	return events.SyncSummary{RunID: r.RunID, Kind: r.Kind, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Status: r.Status,
		Users: int(r.Users), Events: int(r.Events), Requests: int(r.Requests), Throttled: int(r.Throttled),
		ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage}
}

func (s *Service) syncRuns(w http.ResponseWriter, r *http.Request) {
	tenant, ok := tenantParam(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f, e := parseSyncRunsQuery(q)
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	limit, limitSet, e := limitParam(q)
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	filterKey := f.Kind + "\x00" + f.Status
	if raw := q.Get("cursor"); raw != "" {
		var c syncRunsCursor
		if !s.openCursor("sync-runs", tenant, raw, &c) || !runIDRe.MatchString(c.RunID) || c.StartedAt < 0 {
			writeError(w, http.StatusBadRequest, apiError{Code: "invalid_cursor", Field: "cursor", Message: "cursor must be the next_cursor of an earlier page"})
			return
		}
		if c.Filter != filterKey {
			writeError(w, http.StatusBadRequest, apiError{Code: "invalid_cursor", Field: "cursor",
				Message: "the cursor belongs to a list with other filters: repeat the first page's parameters with it"})
			return
		}
		f.After = &storage.SyncRunRow{StartedAt: time.Unix(c.StartedAt, 0).UTC(), RunID: c.RunID}
	}
	asCSV := wantsCSV(r)
	if asCSV && (f.After != nil || limitSet) {
		writeError(w, http.StatusBadRequest, apiError{Code: "invalid_field", Field: map[bool]string{true: "cursor", false: "limit"}[f.After != nil],
			Message: "limit and cursor page the JSON answer; the CSV export has every row"})
		return
	}
	if _, _, ok := s.readContext(w, r, tenant); !ok {
		return
	}
	if asCSV {
		s.exportSyncRunsCSV(r.Context(), w, tenant, f)
		return
	}
	page := SyncRunsPage{TenantID: tenant, Runs: make([]events.SyncSummary, 0, limit)}
	var last storage.SyncRunRow
	more := false
	err := s.store.SyncRuns(r.Context(), tenant, appName, f, limit+1, func(row storage.SyncRunRow) error {
		if len(page.Runs) == limit {
			more = true
			return nil
		}
		page.Runs = append(page.Runs, syncSummary(row))
		last = row
		return nil
	})
	if err != nil {
		s.unavailable(w, err)
		return
	}
	if more {
		if page.NextCursor, err = s.sealCursor("sync-runs", tenant, syncRunsCursor{StartedAt: last.StartedAt.Unix(), RunID: last.RunID, Filter: filterKey}); err != nil {
			s.unavailable(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, page)
}

// Kinds of sync runs (the kind filter of GET …/sync-runs).
const (
	runKindUsers = "users"
	runKindAudit = "audit"
)
