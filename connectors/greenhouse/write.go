package greenhouse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// The user-status writes of Harvest v3 (docs/greenhouse-wire.md, "Harvest v3: POST
// {harvest}/v3/users/{id}/deactivate and /activate") and the look-up that precedes them.
// Both writes are documented as idempotent: 204 No Content whether or not the user was
// already in that state.

// ErrActionsNotPermitted is the sentinel of CodeActionsNotPermitted, for errors.Is.
var ErrActionsNotPermitted error = &APIError{Code: CodeActionsNotPermitted}

// UserStatus is a status a user can be set to.
type UserStatus string

// The user statuses of the writes.
const (
	Deactivate UserStatus = "deactivate"
	Activate   UserStatus = "activate"
)

// SetUserStatus sends POST /v3/users/{id}/deactivate or /activate through the Harvest pacer
// (shared with every sync of the credential). A 403 naming a scope is actions_not_permitted;
// a 422 or 404 is unprocessable. Transient failures and 429s are retried as every request is:
// both writes are idempotent.
func (c *Client) SetUserStatus(ctx context.Context, id int64, to UserStatus) error {
	if to != Deactivate && to != Activate {
		return &APIError{Op: "set user status", Code: CodeUnexpectedResponse, Message: "unknown status " + strconv.Quote(string(to))}
	}
	op := fmt.Sprintf("%s user %d", to, id)
	target := c.base[kindHarvest].String() + "/v3/users/" + strconv.FormatInt(id, 10) + "/" + string(to)
	_, _, err := c.send(ctx, op, kindHarvest, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	}, true)
	return writeError(err)
}

// writeError gives a failed write its code: a missing scope is the actions permission, a 422
// or 404 the user's id.
func writeError(err error) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return err
	}
	cp := *ae
	switch {
	case ae.Code == CodeMissingScope:
		cp.Code = CodeActionsNotPermitted
	case ae.Status == http.StatusUnprocessableEntity || ae.Status == http.StatusNotFound:
		cp.Code = CodeUnprocessable
	default:
		return err
	}
	return &cp
}

// maxLookup is the most ids one users look-up takes (the ids filter's documented bound).
const maxLookup = 50

// LookupUsers returns the users of ids (at most 50) as Greenhouse lists them now, service
// accounts included; an id Greenhouse does not list is absent from the answer.
func (c *Client) LookupUsers(ctx context.Context, ids []int64) ([]User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > maxLookup {
		return nil, &APIError{Op: "look up users", Code: CodeUnexpectedResponse, Message: "more than 50 ids"}
	}
	var list []byte
	for i, id := range ids {
		if i > 0 {
			list = append(list, ',')
		}
		list = strconv.AppendInt(list, id, 10)
	}
	q := url.Values{"ids": {string(list)}, "show_service_accounts": {"true"}, "per_page": {strconv.Itoa(maxLookup)}}
	var out []User
	err := c.list(ctx, "look up users", "/v3/users", q, func(body []byte) error {
		users, err := decodeUsers(body)
		if err != nil {
			return &APIError{Op: "look up users", Code: CodeUnexpectedResponse, Err: err}
		}
		out = append(out, users...)
		return nil
	})
	return out, err
}
