package collector

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// The paging of a list answer (GET /v1/connections): ?limit= and an opaque ?cursor=, the
// next_cursor of the page before.

// Pages of GET /v1/connections.
const (
	defaultConnectionsPage = 100
	maxConnectionsPage     = 1000
)

// pageCursor is the position after which a page of GET /v1/connections starts: the last
// connection of the previous page, by state rank and tenant id. A connection whose state
// changes between two pages may be shown twice or not at all.
type pageCursor struct {
	rank   int
	tenant string
}

func encodeCursor(c pageCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("c1:%d:%s", c.rank, c.tenant)))
}

func decodeCursor(raw string) (pageCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return pageCursor{}, false
	}
	parts := strings.SplitN(string(b), ":", 3)
	if len(parts) != 3 || parts[0] != "c1" {
		return pageCursor{}, false
	}
	rank, err := strconv.Atoi(parts[1])
	if err != nil || rank < 0 || rank > 3 || ValidateTenantID(parts[2]) != nil {
		return pageCursor{}, false
	}
	return pageCursor{rank: rank, tenant: parts[2]}, true
}

// pageParams reads ?limit= (1 to maxConnectionsPage, default defaultConnectionsPage) and
// ?cursor= (a next_cursor of an earlier page).
func pageParams(q url.Values) (int, *pageCursor, *apiError) {
	limit := defaultConnectionsPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxConnectionsPage {
			return 0, nil, &apiError{Code: codeInvalidField, Field: "limit", Message: fmt.Sprintf("limit must be an integer from 1 to %d", maxConnectionsPage)}
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, ok := decodeCursor(v)
		if !ok {
			return 0, nil, &apiError{Code: codeInvalidCursor, Field: "cursor", Message: "cursor must be the next_cursor of an earlier page"}
		}
		return limit, &c, nil
	}
	return limit, nil, nil
}
