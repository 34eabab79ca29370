package collector

import (
	"context"
	"encoding/csv"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// CSV export of the list routes (docs/api.md, "CSV export"): Accept: text/csv streams the
// same rows as the JSON pages, with the same filters and order, from ClickHouse's answer to
// the response row by row: memory does not grow with the rows.

const (
	csvType = "text/csv; charset=utf-8"
	// csvFlushRows is how many rows are written between two flushes to the client.
	csvFlushRows = 500
)

// wantsCSV reports whether the Accept header prefers text/csv to JSON: text/csv is named
// with a quality above zero and above that of application/json (or */*) when those are named.
func wantsCSV(r *http.Request) bool {
	csvQ, jsonQ := -1.0, -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch mt {
		case "text/csv":
			csvQ = max(csvQ, q)
		case "application/json", "*/*", "application/*":
			jsonQ = max(jsonQ, q)
		}
	}
	return csvQ > 0 && csvQ > jsonQ
}

// csvCell escapes a cell against formula injection (OWASP, "CSV Injection"): a cell starting
// with =, +, -, @, a tab or a carriage return gets a leading apostrophe, so a spreadsheet
// shows it as text instead of evaluating it.
func csvCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// csvStream writes CSV rows to w, escaping every cell and flushing every csvFlushRows rows.
type csvStream struct {
	w    http.ResponseWriter
	csv  *csv.Writer
	rows int
	rc   *http.ResponseController
}

func newCSVStream(w http.ResponseWriter, filename string, header []string) *csvStream {
	w.Header().Set("Content-Type", csvType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	cs := &csvStream{w: w, csv: csv.NewWriter(w), rc: http.NewResponseController(w)}
	cs.write(header)
	return cs
}

func (cs *csvStream) write(cells []string) {
	for i, c := range cells {
		cells[i] = csvCell(c)
	}
	_ = cs.csv.Write(cells)
	if cs.rows++; cs.rows%csvFlushRows == 0 {
		cs.csv.Flush()
		_ = cs.rc.Flush()
	}
}

// finish ends the export. After a failure mid-way the connection is closed without the
// final chunk, so that the client sees a broken transfer rather than a complete-looking file.
func (cs *csvStream) finish(err error) {
	cs.csv.Flush()
	if err == nil {
		return
	}
	if conn, _, herr := cs.rc.Hijack(); herr == nil {
		_ = conn.Close()
	}
}

// Unwrap lets http.ResponseController reach the connection under the API's status recorder
// (flushes and the hijack of a failed export).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func csvTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return csvTime(*t)
}

// usersCSVHeader names the columns of the users export: the JSON row's fields in its order.
var usersCSVHeader = []string{"tenant_id", "app", "user_id", "name", "email", "status", "licensed", "license_type", "site_admin",
	"service_account", "created_at", "updated_at", "first_seen_at", "last_seen_at", "removed_at", "last_activity_at",
	"last_activity_type", "usage", "reason", "days_since_activity", "active_days_30"}

func usersCSVRow(u ListedUser) []string {
	days := ""
	if u.DaysSinceActivity != nil {
		days = strconv.Itoa(*u.DaysSinceActivity)
	}
	return []string{u.TenantID, u.App, strconv.FormatInt(u.UserID, 10), u.Name, u.Email, u.Status, strconv.FormatBool(u.Licensed),
		u.LicenseType, strconv.FormatBool(u.SiteAdmin), strconv.FormatBool(u.ServiceAccount), csvTime(u.CreatedAt), csvTime(u.UpdatedAt),
		csvTime(u.FirstSeenAt), csvTime(u.LastSeenAt), csvTimePtr(u.RemovedAt), csvTimePtr(u.LastActivityAt), u.LastActivityType,
		u.Usage, u.Reason, days, strconv.Itoa(u.ActiveDays30)}
}

func (a *api) exportUsersCSV(ctx context.Context, w http.ResponseWriter, tenant string, uq usersQuery, params storage.UsageParams) {
	var cs *csvStream
	err := a.store.ExportUsers(ctx, tenant, connectors.AppGreenhouse, uq.filter(params), uq.sort, activeDaysSince(params.Now), func(u storage.ListedUser) error {
		if cs == nil {
			cs = newCSVStream(w, tenant+"-users.csv", append([]string{}, usersCSVHeader...))
		}
		cs.write(usersCSVRow(listedUser(u, params)))
		return nil
	})
	a.endCSV(w, cs, err, tenant+"-users.csv", usersCSVHeader)
}

// endCSV ends an export: a failure before the first row is an ordinary 503, one after it
// breaks the transfer; an export without rows is its header alone.
func (a *api) endCSV(w http.ResponseWriter, cs *csvStream, err error, filename string, header []string) {
	switch {
	case err != nil && cs == nil:
		a.unavailable(w, err)
	case err != nil:
		a.log.Error().Err(err).Msg("csv export failed mid-way; connection closed")
		cs.finish(err)
	case cs == nil:
		newCSVStream(w, filename, append([]string{}, header...)).finish(nil)
	default:
		cs.finish(nil)
	}
}

var syncRunsCSVHeader = []string{"run_id", "kind", "started_at", "finished_at", "status", "users", "events", "requests", "throttled",
	"error_code", "error_message"}

func (a *api) exportSyncRunsCSV(ctx context.Context, w http.ResponseWriter, tenant string, f storage.SyncRunFilter) {
	var cs *csvStream
	err := a.store.SyncRuns(ctx, tenant, connectors.AppGreenhouse, f, 0, func(r storage.SyncRunRow) error {
		if cs == nil {
			cs = newCSVStream(w, tenant+"-sync-runs.csv", append([]string{}, syncRunsCSVHeader...))
		}
		cs.write([]string{r.RunID, r.Kind, csvTime(r.StartedAt), csvTime(r.FinishedAt), r.Status, strconv.Itoa(int(r.Users)),
			strconv.Itoa(int(r.Events)), strconv.Itoa(int(r.Requests)), strconv.Itoa(int(r.Throttled)), r.ErrorCode, r.ErrorMessage})
		return nil
	})
	a.endCSV(w, cs, err, tenant+"-sync-runs.csv", syncRunsCSVHeader)
}
