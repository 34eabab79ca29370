package collector

import (
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/events"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// GET /v1/tenants/{tenant_id}/sync-runs: the sync_runs history in keyset pages, or CSV.

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
	case "", string(events.RunUsers), string(events.RunAudit):
	default:
		return f, &apiError{Code: codeInvalidField, Field: "kind", Message: "kind must be users or audit"}
	}
	switch f.Status = q.Get("status"); f.Status {
	case "", string(events.RunSucceeded), string(events.RunFailed):
	default:
		return f, &apiError{Code: codeInvalidField, Field: "status", Message: "status must be succeeded or failed"}
	}
	return f, nil
}

func syncSummary(r storage.SyncRunRow) events.SyncSummary {
	return events.SyncSummary{RunID: r.RunID, Kind: events.RunKind(r.Kind), StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Status: events.RunStatus(r.Status),
		Users: int(r.Users), Events: int(r.Events), Requests: int(r.Requests), Throttled: int(r.Throttled),
		ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage}
}

func (a *api) syncRuns(w http.ResponseWriter, r *http.Request) {
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
		if !a.openCursor("sync-runs", tenant, raw, &c) || !runIDRe.MatchString(c.RunID) || c.StartedAt < 0 {
			writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidCursor, Field: "cursor", Message: "cursor must be the next_cursor of an earlier page"})
			return
		}
		if c.Filter != filterKey {
			writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidCursor, Field: "cursor",
				Message: "the cursor belongs to a list with other filters: repeat the first page's parameters with it"})
			return
		}
		f.After = &storage.SyncRunRow{StartedAt: time.Unix(c.StartedAt, 0).UTC(), RunID: c.RunID}
	}
	asCSV := wantsCSV(r)
	if asCSV && (f.After != nil || limitSet) {
		writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidField, Field: map[bool]string{true: "cursor", false: "limit"}[f.After != nil],
			Message: "limit and cursor page the JSON answer; the CSV export has every row"})
		return
	}
	if _, _, ok := a.tenantUsage(w, r, tenant); !ok {
		return
	}
	if asCSV {
		a.exportSyncRunsCSV(r.Context(), w, tenant, f)
		return
	}
	page := SyncRunsPage{TenantID: tenant, Runs: make([]events.SyncSummary, 0, limit)}
	var last storage.SyncRunRow
	more := false
	err := a.store.SyncRuns(r.Context(), tenant, connectors.AppGreenhouse, f, limit+1, func(row storage.SyncRunRow) error {
		if len(page.Runs) == limit {
			more = true
			return nil
		}
		page.Runs = append(page.Runs, syncSummary(row))
		last = row
		return nil
	})
	if err != nil {
		a.unavailable(w, err)
		return
	}
	if more {
		if page.NextCursor, err = a.sealCursor("sync-runs", tenant, syncRunsCursor{StartedAt: last.StartedAt.Unix(), RunID: last.RunID, Filter: filterKey}); err != nil {
			a.unavailable(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, page)
}
