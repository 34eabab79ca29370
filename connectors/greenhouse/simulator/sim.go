// Package simulator is a simulated Greenhouse: the Harvest v3 token, users, roles and
// permissions endpoints and the Audit Log, over real HTTP, for seeded organisations of any size,
// with Greenhouse's documented pagination, errors and rate limits, faults on demand, and the
// ground truth a correct collector must end with.
package simulator

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. Zero values take Greenhouse's documented defaults.
type Options struct {
	Now              func() time.Time
	HarvestLimit     int
	HarvestWindow    time.Duration
	AuditLimit       int
	AuditWindow      time.Duration
	AuditPagedLimit  int
	AuditPagedWindow time.Duration
	TokenLimit       int
	TokenWindow      time.Duration
	TokenTTL         time.Duration
	PITLifetime      time.Duration
	Retention        time.Duration
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.HarvestLimit, 75)
	defD(&o.HarvestWindow, 30*time.Second)
	def(&o.AuditLimit, 50)
	defD(&o.AuditWindow, 10*time.Second)
	def(&o.AuditPagedLimit, 3)
	defD(&o.AuditPagedWindow, 30*time.Second)
	def(&o.TokenLimit, 30)
	defD(&o.TokenWindow, 60*time.Second)
	defD(&o.TokenTTL, time.Hour)
	defD(&o.PITLifetime, 5*time.Minute)
	defD(&o.Retention, 30*24*time.Hour)
	return o
}

// Server is the simulated Greenhouse; it implements http.Handler.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu       sync.Mutex
	orgs     []*Org
	byClient map[string]*Org
	tokens   map[string]tokenInfo
	nextID   int64
}

type tokenInfo struct {
	org     *Org
	sub     int64
	expires time.Time
}

// New returns a simulator with no organisation.
func New(opts Options) *Server {
	s := &Server{opts: opts.withDefaults(), byClient: map[string]*Org{}, tokens: map[string]tokenInfo{}, nextID: 4_000_000}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("GET /v3/users", s.harvest("harvest:users:list", s.listUsers))
	mux.HandleFunc("GET /v3/user_roles", s.harvest("harvest:user_roles:list", s.listRoles))
	mux.HandleFunc("GET /v3/user_job_permissions", s.harvest("harvest:user_job_permissions:list", s.listJobPerms))
	mux.HandleFunc("GET /v3/future_job_permissions", s.harvest("harvest:future_job_permissions:list", s.listFuturePerms))
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /events/", s.events)
	s.mux = mux
	return s
}

// ServeHTTP serves every simulated host.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// OrgSpec describes an organisation to generate.
type OrgSpec struct {
	Name   string
	Seed   int64
	Users  int
	Events int
	Jobs   int
}

// Credentials are an organisation's Harvest v3 credential and its Site Admin.
type Credentials struct {
	ClientID, ClientSecret string
	AdminUserID            int64
}

// Faults make an organisation misbehave.
type Faults struct {
	AuditLogDisabled  bool
	MissingScopes     []string
	AdminNotSiteAdmin bool
	InvalidClient     bool
	ExpirePIT         bool // the next point-in-time continuation finds its PIT expired (one-shot)
	Fail5xx           int
	Latency           time.Duration
	Malformed         string // truncated, wrong_type, html, hostile_link, absurd_retry_after, huge
	SearchAfterQuirk  bool
}

// Stats count what an organisation (or the server) was served.
type Stats struct {
	Requests, Throttled, TokenRequests, HarvestRequests, AuditRequests, AuditPaged int64
}

func (a *Stats) add(b Stats) {
	a.Requests += b.Requests
	a.Throttled += b.Throttled
	a.TokenRequests += b.TokenRequests
	a.HarvestRequests += b.HarvestRequests
	a.AuditRequests += b.AuditRequests
	a.AuditPaged += b.AuditPaged
}

// AddOrg generates an organisation from spec.
func (s *Server) AddOrg(spec OrgSpec) (*Org, error) {
	if spec.Users < 1 || spec.Users > 50000 {
		return nil, fmt.Errorf("simulator: users %d outside 1..50000", spec.Users)
	}
	if spec.Events < 0 {
		return nil, errors.New("simulator: negative events")
	}
	if spec.Events == 0 {
		spec.Events = spec.Users * 40
	}
	if spec.Jobs <= 0 {
		spec.Jobs = max(5, spec.Users/10)
	}
	s.mu.Lock()
	base := s.nextID
	s.nextID += int64(spec.Users) * 10
	s.mu.Unlock()
	o := newOrg(s, spec, base)
	s.mu.Lock()
	s.orgs = append(s.orgs, o)
	s.byClient[o.cred.ClientID] = o
	s.mu.Unlock()
	return o, nil
}

// Orgs returns the organisations in creation order.
func (s *Server) Orgs() []*Org {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Org(nil), s.orgs...)
}

// Stats returns the totals over every organisation.
func (s *Server) Stats() Stats {
	var out Stats
	for _, o := range s.Orgs() {
		out.add(o.Stats())
	}
	return out
}

// user is a simulated Greenhouse user.
type user struct {
	ID                 int64
	First, Last, Email string
	Deactivated        bool
	SiteAdmin          bool
	Service            bool
	Removed            bool
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

func (u *user) name() string { return strings.TrimSpace(u.First + " " + u.Last) }

type perm struct {
	ID, UserID, JobID, RoleID int64
	Future                    bool
}

type event struct {
	At        time.Time
	Performer int64  // user id, or 0 for an API key
	Key       string // API key name when Performer is 0
	Type      string
	Target    string
	TargetID  int64
	Request   string
	RequestID string
}

// Org is one simulated organisation (one credential, one tenant).
type Org struct {
	srv  *Server
	spec OrgSpec
	cred Credentials
	rng  *mrand.Rand

	mu       sync.Mutex
	faults   Faults
	users    []*user // sorted by id ascending
	byID     map[int64]*user
	perms    []perm
	events   []event // sorted by time ascending
	nextUser int64
	nextPerm int64
	stats    Stats
	limits   map[string]*window
	pits     map[string]*pit
}

var (
	firstNames = []string{"Ada", "Bob", "Cy", "Dee", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea", "Mo", "Nia", "Oli", "Pia", "Quinn", "Rae", "Sol", "Tia"}
	lastNames  = []string{"Burke", "Chen", "Diaz", "Evans", "Fox", "Garcia", "Hill", "Ito", "Jones", "Khan", "Lopez", "Meyer", "Novak", "Okafor", "Patel", "Reyes", "Silva", "Tanaka"}
	targets    = []string{"Application", "Candidate", "Job", "Offer", "Scorecard", "User", "Interview", "Note"}
	actions    = []string{"Report Viewed", "Candidate Exported", "Job Board Published", "Global Email Added"}
	evTypes    = []string{"data_change_update", "data_change_update", "data_change_create", "action", "data_change_destroy"}
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newOrg(s *Server, spec OrgSpec, base int64) *Org {
	now := s.opts.Now().UTC()
	o := &Org{srv: s, spec: spec, rng: mrand.New(mrand.NewPCG(uint64(spec.Seed), 0x9e3779b97f4a7c15)),
		byID: map[int64]*user{}, limits: map[string]*window{}, pits: map[string]*pit{}}
	o.cred = Credentials{ClientID: randHex(12) + fmt.Sprintf("-%d", o.rng.IntN(9)+1), ClientSecret: randHex(24)}
	r := o.rng
	domain := strings.ToLower(strings.ReplaceAll(spec.Name, " ", "")) + ".example"
	if spec.Name == "" {
		domain = "org.example"
	}
	id := base
	for i := 0; i < spec.Users; i++ {
		id += int64(1 + r.IntN(3))
		u := &user{ID: id, First: firstNames[r.IntN(len(firstNames))], Last: lastNames[r.IntN(len(lastNames))]}
		u.Email = fmt.Sprintf("%s.%s.%d@%s", strings.ToLower(u.First), strings.ToLower(u.Last), id, domain)
		switch x := r.Float64(); {
		case i == 0 || x < 0.03:
			u.SiteAdmin = true
		}
		if i > 0 && r.Float64() < 0.02 {
			u.Service, u.SiteAdmin, u.Email, u.Last = true, false, "", "Integration"
		}
		if i > 0 && !u.Service && r.Float64() < 0.08 {
			u.Deactivated = true
		}
		if i > 0 && r.Float64() < 0.05 {
			u.CreatedAt = now.Add(-time.Duration(r.IntN(20*24)) * time.Hour)
		} else {
			u.CreatedAt = now.Add(-time.Duration(25*24+r.IntN(3*365*24)) * time.Hour)
		}
		u.CreatedAt = u.CreatedAt.Truncate(time.Millisecond)
		u.UpdatedAt = u.CreatedAt.Add(time.Duration(r.IntN(1000)) * time.Minute)
		if u.UpdatedAt.After(now) {
			u.UpdatedAt = now
		}
		o.users = append(o.users, u)
		o.byID[u.ID] = u
	}
	o.nextUser = id + 1
	o.cred.AdminUserID = o.users[0].ID
	// permissions: ~30% of non-admin users
	o.nextPerm = 1
	for _, u := range o.users {
		if u.SiteAdmin || u.Service || r.Float64() >= 0.30 {
			continue
		}
		n := 1 + r.IntN(5)
		for j := 0; j < n; j++ {
			o.perms = append(o.perms, perm{ID: o.nextPerm, UserID: u.ID, JobID: int64(1 + r.IntN(spec.Jobs)), RoleID: int64(1 + r.IntN(4)), Future: r.Float64() < 0.2})
			o.nextPerm++
		}
	}
	// activity: 25% of users dormant (no events in the window), others Poisson-ish
	weights := make([]float64, len(o.users))
	var total float64
	for i, u := range o.users {
		if u.Service || r.Float64() < 0.25 {
			continue
		}
		weights[i] = math.Exp(r.NormFloat64())
		total += weights[i]
	}
	// History starts an hour inside retention, so that none of it ages out during a test run.
	span := s.opts.Retention - time.Hour
	start := now.Add(-span)
	for i := 0; i < spec.Events; i++ {
		at := start.Add(time.Duration(r.Int64N(int64(span)))).Truncate(time.Millisecond)
		e := event{At: at, RequestID: randHexR(r, 8)}
		if r.Float64() < 0.10 || total == 0 {
			e.Key, e.Type, e.Target = "Harvest key "+fmt.Sprint(1+r.IntN(3)), "harvest_access", targets[r.IntN(2)]
			e.Request = fmt.Sprintf("/v3/%ss", strings.ToLower(e.Target))
		} else {
			x := r.Float64() * total
			k := 0
			for ; k < len(weights)-1; k++ {
				x -= weights[k]
				if x <= 0 && weights[k] > 0 {
					break
				}
			}
			for weights[k] == 0 {
				k = (k + 1) % len(weights)
			}
			u := o.users[k]
			if u.CreatedAt.After(at) {
				// A user acts only after being created: spread those events over their lifetime.
				life := now.Sub(u.CreatedAt)
				if life <= time.Second {
					continue
				}
				e.At = u.CreatedAt.Add(time.Duration(r.Int64N(int64(life)))).Truncate(time.Millisecond)
			}
			e.Performer = u.ID
			e.Type = evTypes[r.IntN(len(evTypes))]
			if e.Type == "action" {
				e.Target = actions[r.IntN(len(actions))]
			} else {
				e.Target = targets[r.IntN(len(targets))]
				e.TargetID = int64(1 + r.IntN(1_000_000))
			}
			e.Request = strings.ToLower(e.Target) + "s#update"
		}
		o.events = append(o.events, e)
	}
	sort.Slice(o.events, func(a, b int) bool { return o.events[a].At.Before(o.events[b].At) })
	return o
}

func randHexR(r *mrand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n*2)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

// Credentials returns the organisation's credential and admin user.
func (o *Org) Credentials() Credentials { return o.cred }

// SetFaults replaces the organisation's faults.
func (o *Org) SetFaults(f Faults) {
	o.mu.Lock()
	o.faults = f
	o.mu.Unlock()
}

// Faults returns the organisation's faults.
func (o *Org) Faults() Faults {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.faults
}

// Stats returns what the organisation was served.
func (o *Org) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// TruthUser is what a correct collector knows of one user.
type TruthUser struct {
	ID                        int64
	Name, Email               string
	Status                    string
	LicenseType               string
	SiteAdmin, ServiceAccount bool
	CreatedAt, UpdatedAt      time.Time
	LastActivityAt            *time.Time
}

// DailyActivity is one user's events on one UTC day.
type DailyActivity struct {
	UserID      int64
	Day         time.Time
	Events      int
	LastEventAt time.Time
}

// Truth is what a correct collector must end with.
type Truth struct {
	Users      []TruthUser
	Events     int
	UserEvents int
	Daily      []DailyActivity
}

// Truth computes the ground truth as of now.
func (o *Org) Truth() Truth {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.srv.opts.Now().UTC()
	cut := now.Add(-o.srv.opts.Retention)
	last := map[int64]time.Time{}
	type dk struct {
		id  int64
		day time.Time
	}
	daily := map[dk]*DailyActivity{}
	var t Truth
	for _, e := range o.events {
		if e.At.After(now) {
			continue
		}
		if e.Performer != 0 {
			if e.At.After(last[e.Performer]) {
				last[e.Performer] = e.At
			}
		}
		if e.At.Before(cut) {
			continue
		}
		t.Events++
		if e.Performer == 0 {
			continue
		}
		t.UserEvents++
		k := dk{e.Performer, e.At.UTC().Truncate(24 * time.Hour)}
		d := daily[k]
		if d == nil {
			d = &DailyActivity{UserID: e.Performer, Day: k.day}
			daily[k] = d
		}
		d.Events++
		if at := e.At.Truncate(time.Second); at.After(d.LastEventAt) {
			d.LastEventAt = at
		}
	}
	permUsers := map[int64]bool{}
	for _, p := range o.perms {
		permUsers[p.UserID] = true
	}
	for _, u := range o.users {
		tu := TruthUser{ID: u.ID, Name: u.name(), Email: u.Email, SiteAdmin: u.SiteAdmin, ServiceAccount: u.Service,
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, Status: "active"}
		switch {
		case u.Removed:
			tu.Status = "removed"
		case u.Deactivated:
			tu.Status = "deactivated"
		}
		switch {
		case u.SiteAdmin:
			tu.LicenseType = "site_admin"
		case permUsers[u.ID]:
			tu.LicenseType = "job_admin"
		default:
			tu.LicenseType = "basic"
		}
		if at, ok := last[u.ID]; ok {
			v := at.Truncate(time.Second)
			tu.LastActivityAt = &v
		}
		t.Users = append(t.Users, tu)
	}
	for _, d := range daily {
		t.Daily = append(t.Daily, *d)
	}
	sort.Slice(t.Daily, func(a, b int) bool {
		if t.Daily[a].UserID != t.Daily[b].UserID {
			return t.Daily[a].UserID < t.Daily[b].UserID
		}
		return t.Daily[a].Day.Before(t.Daily[b].Day)
	})
	return t
}

func (o *Org) touch(u *user) {
	u.UpdatedAt = o.srv.opts.Now().UTC().Truncate(time.Millisecond)
}

// DeactivateUser deactivates a user.
func (o *Org) DeactivateUser(id int64) error {
	return o.mutate(id, func(u *user) { u.Deactivated = true })
}

// ActivateUser reactivates a user.
func (o *Org) ActivateUser(id int64) error {
	return o.mutate(id, func(u *user) { u.Deactivated = false })
}

// RemoveUser hard-deletes a user: gone from listings, removed in the truth.
func (o *Org) RemoveUser(id int64) error {
	return o.mutate(id, func(u *user) { u.Removed = true })
}

func (o *Org) mutate(id int64, fn func(*user)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.byID[id]
	if !ok || u.Removed {
		return fmt.Errorf("simulator: no user %d", id)
	}
	fn(u)
	o.touch(u)
	return nil
}

// NewUser describes a user to add.
type NewUser struct {
	Name, Email               string
	SiteAdmin, ServiceAccount bool
	CreatedAt                 time.Time
}

// AddUser adds a user with an id above every existing one and returns it.
func (o *Org) AddUser(nu NewUser) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	first, last, _ := strings.Cut(nu.Name, " ")
	u := &user{ID: o.nextUser, First: first, Last: last, Email: nu.Email, SiteAdmin: nu.SiteAdmin, Service: nu.ServiceAccount, CreatedAt: nu.CreatedAt.UTC()}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = o.srv.opts.Now().UTC().Truncate(time.Millisecond)
	}
	if u.Service {
		u.Email = ""
	}
	o.touch(u)
	o.nextUser++
	o.users = append(o.users, u)
	o.byID[u.ID] = u
	return u.ID
}

// GrantJobPermission gives a user a job permission with a job_admin role.
func (o *Org) GrantJobPermission(userID, jobID int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.byID[userID]
	if !ok {
		return fmt.Errorf("simulator: no user %d", userID)
	}
	o.perms = append(o.perms, perm{ID: o.nextPerm, UserID: userID, JobID: jobID, RoleID: 1})
	o.nextPerm++
	o.touch(u)
	return nil
}

// AddUserEvent records an event performed by a user.
func (o *Org) AddUserEvent(userID int64, at time.Time, eventType string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.byID[userID]; !ok {
		return fmt.Errorf("simulator: no user %d", userID)
	}
	o.insertEvent(event{At: at.UTC().Truncate(time.Millisecond), Performer: userID, Type: eventType, Target: "Report Viewed", Request: "reports#show", RequestID: randHex(8)})
	return nil
}

// AddEvents adds n random events by active users between from and to.
func (o *Org) AddEvents(n int, from, to time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var active []int64
	for _, u := range o.users {
		if !u.Removed && !u.Deactivated && !u.Service {
			active = append(active, u.ID)
		}
	}
	span := to.Sub(from)
	for i := 0; i < n && len(active) > 0 && span > 0; i++ {
		at := from.Add(time.Duration(o.rng.Int64N(int64(span)))).UTC().Truncate(time.Millisecond)
		o.insertEvent(event{At: at, Performer: active[o.rng.IntN(len(active))], Type: evTypes[o.rng.IntN(len(evTypes))],
			Target: targets[o.rng.IntN(len(targets))], TargetID: int64(1 + o.rng.IntN(1000)), Request: "jobs#update", RequestID: randHexR(o.rng, 8)})
	}
}

func (o *Org) insertEvent(e event) {
	i := sort.Search(len(o.events), func(i int) bool { return o.events[i].At.After(e.At) })
	o.events = append(o.events, event{})
	copy(o.events[i+1:], o.events[i:])
	o.events[i] = e
}
