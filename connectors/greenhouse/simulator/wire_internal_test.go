package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The appenders of wire.go must write exactly what encoding/json wrote for the structures
// below, which the simulator rendered its answers through before: they are the reference.

type refEvent struct {
	Request struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"request"`
	Performer      refPerformer `json:"performer"`
	OrganizationID int64        `json:"organization_id"`
	Event          refEventBody `json:"event"`
	EventTime      string       `json:"event_time"`
}

type refPerformer struct {
	Meta      any    `json:"meta"`
	ID        any    `json:"id"`
	IPAddress string `json:"ip_address"`
	Type      string `json:"type"`
}

type refEventBody struct {
	Meta       any    `json:"meta"`
	TargetType string `json:"target_type"`
	TargetID   *int64 `json:"target_id"`
	Type       string `json:"type"`
}

// refRender is the former render.
func (o *Org) refRender(e event) refEvent {
	var j refEvent
	j.Request.ID = fmt.Sprintf("%016x", e.rid)
	j.OrganizationID = o.orgID
	j.EventTime = time.UnixMilli(e.at).UTC().Format(tsLayout)
	j.Event.Type = o.types[e.typ]
	if e.perf <= 0 {
		k := int(-e.perf-1) % len(apiKeyNames)
		tt := targetTypes[int(e.tgt)%len(targetTypes)]
		path := "/v3/" + strings.ToLower(tt) + "s"
		j.Performer = refPerformer{Meta: map[string]string{"api_key_type": "harvest"}, ID: apiKeyNames[k],
			IPAddress: fmt.Sprintf("203.0.113.%d", 10+k), Type: "api_key"}
		j.Event.TargetType = tt
		j.Event.Meta = map[string]string{"endpoint": path}
		j.Request.Type = "GET " + path
		return j
	}
	name, email := "", ""
	if u := o.byID[e.perf]; u != nil {
		name, email = u.name(), u.Email
	}
	j.Performer = refPerformer{Meta: map[string]string{"name": name, "username": email}, ID: e.perf,
		IPAddress: fmt.Sprintf("10.%d.%d.%d", e.perf>>16&255, e.perf>>8&255, e.perf&255), Type: "user"}
	j.Request.Type = o.requestType(e)
	switch {
	case e.ownReq && e.typ == typeHarvest:
		j.Event.TargetType = harvestTargets[int(e.tgt)%len(harvestTargets)]
		return j
	case e.typ == typeAction:
		an := actionNames[int(e.tgt)%len(actionNames)]
		j.Event.TargetType = an
		j.Event.Meta = map[string]string{"action": an}
		return j
	}
	j.Event.TargetType = targetTypes[int(e.tgt)%len(targetTypes)]
	if !e.ownReq {
		tid := e.target
		j.Event.TargetID = &tid
	}
	switch e.typ {
	case typeUpdate:
		f := changeFields[e.rid%uint64(len(changeFields))]
		j.Event.Meta = map[string][]string{f: {"v" + strconv.FormatUint(e.rid>>8%97, 10), "v" + strconv.FormatUint(e.rid>>16%97, 10)}}
	case typeCreate:
		j.Event.Meta = map[string]string{"source": "web"}
	}
	return j
}

// refNextSearchAfter is the former nextSearchAfter.
func (s *Server) refNextSearchAfter(last event, f Faults, seq int) any {
	two := fmt.Sprintf("%d,%d", last.at, last.seq)
	three := fmt.Sprintf("%d,%d,%016x", last.at, last.seq, last.rid)
	switch {
	case f.SearchAfterTwoPartsOnly:
		return three
	case s.documented():
		return [3]string{strconv.FormatUint(uint64(last.seq), 10), two, three}[seq%3]
	case f.SearchAfterQuirk:
		if seq%2 == 0 {
			return three
		}
		return []any{last.at, last.seq}
	}
	return two
}

// refEventsBody is the former body of a GET /events answer.
func (s *Server) refEventsBody(a admitted, eq eventsQuery, pg eventsPage, paged bool) any {
	out := make([]refEvent, len(pg.res))
	for i, e := range pg.res {
		out[i] = a.org.refRender(e)
	}
	if !paged {
		return map[string]any{"hits": pg.hits, "results": out}
	}
	var next any
	if len(pg.res) > 0 {
		next = s.refNextSearchAfter(pg.res[len(pg.res)-1], a.f, a.seq)
	}
	var sa any
	if eq.searchAfter != "" {
		sa = eq.searchAfter
	}
	return map[string]any{"paging": map[string]any{"pit_id": pg.pitID, "search_after": sa, "size": eq.size, "next_search_after": next},
		"hits": pg.hits, "results": out}
}

type refUser struct {
	ID                 int64          `json:"id"`
	CreatedAt          string         `json:"created_at"`
	UpdatedAt          string         `json:"updated_at"`
	FirstName          string         `json:"first_name"`
	LastName           string         `json:"last_name"`
	Name               string         `json:"name"`
	PrimaryEmail       string         `json:"primary_email"`
	Emails             []string       `json:"emails"`
	JobTitle           *string        `json:"job_title"`
	AgencyID           *int64         `json:"agency_id"`
	Deactivated        bool           `json:"deactivated"`
	SiteAdmin          bool           `json:"site_admin"`
	EmployeeID         *string        `json:"employee_id"`
	LinkedCandidateIDs []int64        `json:"linked_candidate_ids"`
	OfficeIDs          []int64        `json:"office_ids"`
	DepartmentIDs      []int64        `json:"department_ids"`
	InterviewerTags    []any          `json:"interviewer_tags"`
	CustomFields       map[string]any `json:"custom_fields"`
}

func refTS(t time.Time) string { return t.UTC().Format(tsLayout) }

func (u *user) refJSON() refUser {
	emails := []string{}
	if u.Email != "" {
		emails = append(emails, u.Email)
	}
	return refUser{ID: u.ID, CreatedAt: refTS(u.CreatedAt), UpdatedAt: refTS(u.UpdatedAt), FirstName: u.First, LastName: u.Last,
		Name: u.name(), PrimaryEmail: u.Email, Emails: emails, Deactivated: u.Deactivated, SiteAdmin: u.SiteAdmin,
		LinkedCandidateIDs: []int64{}, OfficeIDs: []int64{}, DepartmentIDs: []int64{}, InterviewerTags: []any{},
		CustomFields: map[string]any{}}
}

type refRole struct {
	ID        int64  `json:"id"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	RoleType  string `json:"role_type"`
	Name      string `json:"name"`
}

type refJobPerm struct {
	ID        int64  `json:"id"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
	JobID     int64  `json:"job_id"`
	UserID    int64  `json:"user_id"`
	RoleID    int64  `json:"role_id"`
	Automated bool   `json:"automated"`
}

type refFuturePerm struct {
	ID           int64  `json:"id"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
	UserID       int64  `json:"user_id"`
	RoleID       int64  `json:"role_id"`
	DepartmentID *int64 `json:"department_id"`
	OfficeID     *int64 `json:"office_id"`
}

func refPerm(p perm, future bool) any {
	if !future {
		return refJobPerm{ID: p.ID, CreatedAt: refTS(p.CreatedAt), UpdatedAt: refTS(p.UpdatedAt), JobID: p.JobID,
			UserID: p.UserID, RoleID: p.RoleID, Automated: p.Automated}
	}
	fp := refFuturePerm{ID: p.ID, CreatedAt: refTS(p.CreatedAt), UpdatedAt: refTS(p.UpdatedAt), UserID: p.UserID, RoleID: p.RoleID}
	if p.DepartmentID != 0 {
		fp.DepartmentID = &p.DepartmentID
	}
	if p.OfficeID != 0 {
		fp.OfficeID = &p.OfficeID
	}
	return fp
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hardStrings need every escape encoding/json has.
var hardStrings = []string{"", "plain", "Zoë <script>&amp;", "Tab\tNew\nLine\r", "Ctl\x00\x01\x1f\x7f Quote\"Back\\slash",
	"Bad\xffUTF \xe2\x80", "\xed\xa0\x80 surrogate", "Sep\u2028Para\u2029 End", "Emoji 😀 Ünïcödé \uFFFD", "  Spaced  Out  ",
	"\b\f Esc", "\u2027\u202a", "/v3/users?a=1&b=<2>", "\xf4\x90\x80\x80 beyond", "Müller O'Brien"}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	check := func(s string) {
		if got, want := appendString([]byte("x"), s), append([]byte("x"), marshal(t, s)...); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	for _, s := range hardStrings {
		check(s)
	}
	for c := range 256 {
		check(string([]byte{byte(c)}))
		check("a" + string([]byte{byte(c)}) + "b")
		for d := 0x80; d < 256; d++ {
			check(string([]byte{byte(c), byte(d), 'z'}))
		}
	}
	for r := rune(0); r < 0x3000; r++ {
		check(string(r) + "x")
	}
	check(string(utf8.MaxRune))
	rng := mrand.New(mrand.NewPCG(1, 2))
	alphabet := []byte("aZ09 <>&\"\\\x00\x1f\x7f\x80\xbf\xc3\xa9\xe2\x80\xa8\xa9\xf0\x9f\x98\x80\xff")
	for range 20000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
}

func TestAppendTimeMatchesFormat(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(3, 4))
	times := []time.Time{{}, time.Unix(0, 0), time.UnixMilli(-1), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 20, 12, 0, 0, 999_500_000, time.FixedZone("x", -5*3600-1800))}
	for range 20000 {
		times = append(times, time.UnixMilli(rng.Int64N(400_000_000_000_000)-200_000_000_000_000).Add(time.Duration(rng.IntN(1e6))))
	}
	for _, tm := range times {
		if got, want := appendTime(nil, tm), marshal(t, tm.UTC().Format(tsLayout)); !bytes.Equal(got, want) {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// wireOrg is an organisation whose users, events and permissions need every escape.
func wireOrg(t *testing.T, profile string) *Org {
	t.Helper()
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return now }, Profile: profile})
	o, err := s.AddOrg(OrgSpec{Name: "wire", Seed: 21, Users: 400, Events: 6000})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range hardStrings {
		id := o.AddUser(NewUser{Name: n, Email: hardStrings[(i+3)%len(hardStrings)], ServiceAccount: i == 4,
			CreatedAt: now.Add(-time.Duration(i) * 24 * time.Hour)})
		for _, typ := range []string{n, "action", "data_change_update"} {
			if err := o.AddUserEvent(id, now.Add(-time.Duration(i)*time.Minute), typ); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.AddAPIUserEvent(id, now.Add(-time.Hour), "harvest_access", hardStrings[(i+5)%len(hardStrings)]); err != nil {
			t.Fatal(err)
		}
		if err := o.GrantJobPermission(id, 200001); err != nil {
			t.Fatal(err)
		}
	}
	o.AddUser(NewUser{Name: "Far Future", CreatedAt: time.Date(12000, 1, 2, 3, 4, 5, 6e6, time.UTC)})
	o.recordHarvestAccess(o.cred.AdminUserID, now, 2, "/v3/user_job_permissions?per_page=500&x=<y>")
	return o
}

// randomEvent is an event with any performer, type, target and time the structure allows.
func randomEvent(o *Org, rng *mrand.Rand) event {
	e := event{at: rng.Int64N(1<<49) - 1<<48, rid: rng.Uint64(), seq: rng.Uint32(), typ: uint8(rng.IntN(len(o.types))),
		tgt: uint8(rng.IntN(256)), target: rng.Int64N(1 << 40)}
	switch rng.IntN(3) {
	case 0:
		e.perf = -1 - rng.Int64N(10)
	case 1:
		e.perf = o.users[rng.IntN(len(o.users))].ID
	default:
		e.perf = 1 + rng.Int64N(1<<40) // no such user
	}
	if e.perf > 0 && rng.IntN(3) == 0 {
		e.ownReq, e.target = true, rng.Int64N(int64(len(o.requests)))
	}
	return e
}

func TestEventsRenderLikeEncodingJSON(t *testing.T) {
	o := wireOrg(t, ProfileDocumented)
	rng := mrand.New(mrand.NewPCG(5, 6))
	evs := append([]event(nil), o.events...)
	for range 20000 {
		evs = append(evs, randomEvent(o, rng))
	}
	for _, e := range evs {
		if got, want := o.appendEvent(nil, e), marshal(t, o.refRender(e)); !bytes.Equal(got, want) {
			t.Fatalf("event %+v:\n got %s\nwant %s", e, got, want)
		}
	}
}

func TestEventsBodiesRenderLikeEncodingJSON(t *testing.T) {
	for _, profile := range []string{ProfileDocumented, ProfileGenerous} {
		o := wireOrg(t, profile)
		s := o.srv
		for i, f := range []Faults{{}, {SearchAfterQuirk: true}, {SearchAfterTwoPartsOnly: true}, {SearchAfterQuirk: true, SearchAfterTwoPartsOnly: true}} {
			for seq := range 6 {
				a := admitted{org: o, f: f, seq: seq}
				for _, res := range [][]event{nil, o.events[:1], o.events[len(o.events)-60:]} {
					pg := eventsPage{res: res, hits: 1234 * seq, pitID: fmt.Sprintf("%032x", i)}
					for _, eq := range []eventsQuery{{size: 100}, {size: 500, searchAfter: hardStrings[seq+i]}} {
						for _, paged := range []bool{false, true} {
							got := s.appendEventsBody(nil, a, eq, pg, paged)
							if want := marshal(t, s.refEventsBody(a, eq, pg, paged)); !bytes.Equal(got, want) {
								t.Fatalf("%s %+v seq %d paged %v:\n got %.300s\nwant %.300s", profile, f, seq, paged, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// TestListsRenderLikeEncodingJSON checks every item and the pages' framing: a page is the
// items it lists, as encoding/json wrote them.
func TestListsRenderLikeEncodingJSON(t *testing.T) {
	o := wireOrg(t, ProfileDocumented)
	for _, u := range o.users {
		if got, want := appendUser(nil, u), marshal(t, u.refJSON()); !bytes.Equal(got, want) {
			t.Fatalf("user %d:\n got %s\nwant %s", u.ID, got, want)
		}
	}
	refs := map[string]func(id int64) any{
		"users":  func(id int64) any { return o.byID[id].refJSON() },
		"roles":  func(id int64) any { return refRoleOf(o, id) },
		"jobs":   func(id int64) any { return refPermOf(o.jobPerms, id, false) },
		"future": func(id int64) any { return refPermOf(o.futurePerms, id, true) },
	}
	lists := map[string]listFunc{"users": listUsers, "roles": listRoles, "jobs": listJobPerms, "future": listFuturePerms}
	for name, list := range lists {
		for _, q := range []url.Values{{}, {"show_service_accounts": {"true"}}, {"ids": {"1,2"}}} {
			for _, per := range []int{1, 7, 500} {
				p := page{b: []byte{'['}}
				if _, err := list(o, q, 0, per, &p); err != nil {
					t.Fatal(err)
				}
				p.b = append(p.b, ']')
				var items []struct{ ID int64 }
				if err := json.Unmarshal(p.b, &items); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				want := []any{}
				for _, it := range items {
					want = append(want, refs[name](it.ID))
				}
				if got, want := p.b, marshal(t, want); !bytes.Equal(got, want) {
					t.Fatalf("%s %v per %d:\n got %.300s\nwant %.300s", name, q, per, got, want)
				}
				if len(items) > 0 && p.last != items[len(items)-1].ID {
					t.Fatalf("%s: last %d, want %d", name, p.last, items[len(items)-1].ID)
				}
			}
		}
	}
}

func refRoleOf(o *Org, id int64) any {
	created := refTS(time.Date(2019, 3, 4, 10, 0, 0, 0, time.UTC))
	for _, rl := range o.roles {
		if rl.ID == id {
			return refRole{ID: rl.ID, CreatedAt: created, UpdatedAt: created, RoleType: rl.Type, Name: rl.Name}
		}
	}
	return nil
}

func refPermOf(ps []perm, id int64, future bool) any {
	for _, p := range ps {
		if p.ID == id {
			return refPerm(p, future)
		}
	}
	return nil
}
