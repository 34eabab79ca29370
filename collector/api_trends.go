package collector

import (
	"fmt"
	"net/http"
	"time"

	"github.com/seatwatch/greenhouse-collector/connectors"
	"github.com/seatwatch/greenhouse-collector/storage"
)

// GET /v1/tenants/{tenant_id}/trends: the usage_counts snapshots by day, week or month.

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
	Exempt         *int           `json:"exempt,omitempty"`
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

func bucketNext(t time.Time, bucket string) time.Time {
	switch bucket {
	case storage.BucketWeek:
		return t.AddDate(0, 0, 7)
	case storage.BucketMonth:
		return t.AddDate(0, 1, 0)
	}
	return t.AddDate(0, 0, 1)
}

func (a *api) trends(w http.ResponseWriter, r *http.Request) {
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
		writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidField, Field: "bucket", Message: "bucket must be day, week or month"})
		return
	}
	from, to, e := rangeParams(q, a.now())
	if e != nil {
		writeError(w, http.StatusBadRequest, *e)
		return
	}
	out := Trends{TenantID: tenant, Bucket: bucket, From: from, To: to}
	for b := storage.BucketStart(from, bucket); b.Before(to); b = bucketNext(b, bucket) {
		if len(out.Buckets) == maxTrendBuckets {
			writeError(w, http.StatusBadRequest, apiError{Code: codeInvalidField, Field: "from",
				Message: fmt.Sprintf("from and to span more than %d buckets of a %s", maxTrendBuckets, bucket)})
			return
		}
		out.Buckets = append(out.Buckets, TrendBucket{Start: b, End: bucketNext(b, bucket)})
	}
	if _, _, ok := a.tenantUsage(w, r, tenant); !ok {
		return
	}
	rows, err := a.store.UsageTrend(r.Context(), tenant, connectors.AppGreenhouse, bucket, out.Buckets[0].Start, to)
	if err != nil {
		a.unavailable(w, err)
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
			b.SnapshotAt, b.Users, b.Licenses, b.Active, b.Inactive, b.Exempt, b.Unknown = &at, zero(), zero(), zero(), zero(), zero(), zero()
			b.LicensesByType = map[string]int{}
			u := 0.0
			b.Utilisation = &u
		}
		*b.Users += int(row.Users)
		*b.Licenses += int(row.Licenses)
		*b.Active += int(row.Active)
		*b.Inactive += int(row.Inactive)
		*b.Exempt += int(row.Exempt)
		*b.Unknown += int(row.Unknown)
		if row.Licenses > 0 {
			b.LicensesByType[row.LicenseType] += int(row.Licenses)
		}
		all := storage.UsageCounts{Licenses: int64(*b.Licenses), Active: int64(*b.Active), Exempt: int64(*b.Exempt)}
		*b.Utilisation = all.Utilisation()
	}
	writeJSON(w, http.StatusOK, out)
}
