package greenhouse

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// accessToken returns a valid token, minting one when none is held, the one held expires
// within refreshEarly, or it equals stale (a token Greenhouse just refused with a 401). Minting
// is single-flight: concurrent callers wait for one mint (or their ctx) and share its token.
func (c *Client) accessToken(ctx context.Context, stale string) (string, error) {
	select {
	case c.tokSem <- struct{}{}:
	case <-ctx.Done():
		return "", &APIError{Op: "mint token", Code: CodeUnavailable, Err: ctx.Err()}
	}
	defer func() { <-c.tokSem }()
	if c.token != "" && c.token != stale && c.now().Before(c.expires.Add(-refreshEarly)) {
		return c.token, nil
	}
	return c.mintLocked(ctx)
}

// mintLocked posts the client-credentials grant; c.tokSem is held.
func (c *Client) mintLocked(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "sub": {strconv.FormatInt(c.cfg.AdminUserID, 10)}}
	target := c.base[kindToken].String() + "/token"
	body, _, err := c.send(ctx, "mint token", kindToken, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(c.cfg.ClientID, c.cfg.ClientSecret)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req, nil
	}, false)
	if err != nil {
		return "", err
	}
	tok, exp, err := decodeToken(body, c.now())
	if err != nil {
		return "", &APIError{Op: "mint token", Code: CodeUnexpectedResponse, Err: err}
	}
	c.token, c.expires = tok, exp
	c.log.Debug().Time("expires", exp).Msg("greenhouse token minted")
	return tok, nil
}
