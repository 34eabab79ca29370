package greenhouse

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// list streams a Harvest v3 collection: the first request carries query, later requests follow
// the next link as given, which must stay on the same host. page must not keep the body it is
// given: its buffer is reused (sendRead).
func (c *Client) list(ctx context.Context, op, path string, query url.Values, page func([]byte) error) error {
	base := c.base[kindHarvest]
	next := base.String() + path + "?" + query.Encode()
	// Cursors seen, as 64-bit hashes: a loop is caught with 8 bytes per page kept.
	seen := map[uint64]struct{}{}
	for n := 0; next != ""; n++ {
		if n >= maxPages {
			return &APIError{Op: op, Code: CodeUnexpectedResponse, Message: fmt.Sprintf("more than %d pages", maxPages)}
		}
		target := next
		h, err := c.sendRead(ctx, op, kindHarvest, func() (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		}, true, page)
		if err != nil {
			return err
		}
		next, err = nextLink(h.Get("Link"), base)
		if err != nil {
			return &APIError{Op: op, Code: CodeUnexpectedResponse, Err: err}
		}
		if next != "" {
			h := fnv.New64a()
			_, _ = h.Write([]byte(next))
			if _, dup := seen[h.Sum64()]; dup {
				return &APIError{Op: op, Code: CodeUnexpectedResponse, Message: "pagination loops: a next link repeats"}
			}
			seen[h.Sum64()] = struct{}{}
		}
	}
	return nil
}

var linkPart = regexp.MustCompile(`<([^>]*)>\s*;([^,]*)`)

// nextLink returns the rel="next" URL of a Link header, "" when there is none. A next link on
// another scheme or host is an error: it is never followed.
func nextLink(header string, base *url.URL) (string, error) {
	if strings.TrimSpace(header) == "" {
		return "", nil
	}
	if len(header) > 16<<10 {
		return "", errors.New("Link header too long")
	}
	for _, m := range linkPart.FindAllStringSubmatch(header, -1) {
		params := strings.ToLower(strings.ReplaceAll(m[2], " ", ""))
		if !strings.Contains(params, `rel="next"`) && !strings.Contains(params, "rel=next") {
			continue
		}
		if strings.TrimSpace(m[1]) == "" {
			return "", nil
		}
		u, err := base.Parse(m[1])
		if err != nil {
			return "", fmt.Errorf("invalid next link: %w", err)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host {
			return "", fmt.Errorf("next link points to another host (%s://%s)", u.Scheme, u.Host)
		}
		return u.String(), nil
	}
	return "", nil
}

// ListUsers streams users (service accounts included), 500 per page. A zero query lists
// everyone; otherwise a two-sided updated_at window.
func (c *Client) ListUsers(ctx context.Context, q UserQuery, fn func([]User) error) error {
	v := url.Values{"per_page": {"500"}, "show_service_accounts": {"true"}}
	if !q.UpdatedFrom.IsZero() || !q.UpdatedTo.IsZero() {
		var parts []string
		if !q.UpdatedFrom.IsZero() {
			parts = append(parts, "gte", q.UpdatedFrom.UTC().Format(time.RFC3339))
		}
		if !q.UpdatedTo.IsZero() {
			parts = append(parts, "lte", q.UpdatedTo.UTC().Format(time.RFC3339))
		}
		v.Set("updated_at", strings.Join(parts, "|"))
	}
	return c.list(ctx, "list users", "/v3/users", v, func(b []byte) error {
		users, err := decodeUsers(b)
		if err != nil {
			return &APIError{Op: "list users", Code: CodeUnexpectedResponse, Err: err}
		}
		return fn(users)
	})
}

// ListUserRoles streams the user roles.
func (c *Client) ListUserRoles(ctx context.Context, fn func([]UserRole) error) error {
	return listArray(ctx, c, "list user roles", "/v3/user_roles", fn)
}

// ListJobPermissions streams every user job permission.
func (c *Client) ListJobPermissions(ctx context.Context, fn func([]JobPermission) error) error {
	return listArray(ctx, c, "list user job permissions", "/v3/user_job_permissions", fn)
}

// ListFutureJobPermissions streams every future job permission.
func (c *Client) ListFutureJobPermissions(ctx context.Context, fn func([]FutureJobPermission) error) error {
	return listArray(ctx, c, "list future job permissions", "/v3/future_job_permissions", fn)
}

// listArray streams a collection whose pages are bare JSON arrays of T, 500 per page.
func listArray[T any](ctx context.Context, c *Client, op, path string, fn func([]T) error) error {
	return c.list(ctx, op, path, url.Values{"per_page": {"500"}}, func(b []byte) error {
		var items []T
		if err := decodeArray(b, &items); err != nil {
			return &APIError{Op: op, Code: CodeUnexpectedResponse, Err: err}
		}
		return fn(items)
	})
}
