package simulator

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. Zero values take the defaults of docs/greenhouse-wire.md.
type Options struct {
	// Now is the clock of every limit, token expiry, retention and point-in-time lifetime;
	// default time.Now.
	Now func() time.Time
	// HarvestLimit is the Harvest requests per HarvestWindow per credential (default 75).
	HarvestLimit int
	// HarvestWindow is the fixed Harvest window (default 30 s); X-RateLimit-Reset is its end.
	HarvestWindow time.Duration
	// AuditLimit is the Audit Log requests per AuditWindow per credential (default 50).
	AuditLimit int
	// AuditWindow is the fixed Audit Log window (default 10 s).
	AuditWindow time.Duration
	// AuditPagedLimit is the paginated Audit Log requests (paging=true or Pit-Id) per
	// AuditPagedWindow (default 3).
	AuditPagedLimit int
	// AuditPagedWindow is the fixed window of paginated Audit Log requests (default 30 s).
	AuditPagedWindow time.Duration
	// TokenLimit is the token requests per TokenWindow per client (default 30).
	TokenLimit int
	// TokenWindow is the fixed token window (default 60 s).
	TokenWindow time.Duration
	// TokenTTL is the lifetime of an access token (default 1 h).
	TokenTTL time.Duration
	// PITLifetime is the lifetime of an Audit Log point in time (default 5 min).
	PITLifetime time.Duration
	// Retention is how far back the Audit Log serves events (default 30 days).
	Retention time.Duration
	// Profile selects how closely the simulator follows Greenhouse's published documentation:
	// ProfileDocumented (the default, "") or ProfileGenerous (every header on every answer, as
	// before). New panics on any other value.
	//
	// The documented profile differs from the generous one in this only:
	//   - rate-limit headers: X-RateLimit-Limit and X-RateLimit-Remaining on every Harvest and
	//     Audit Log answer that is not a 429, never X-RateLimit-Reset; a Harvest 429 carries
	//     Limit, Remaining 0, X-RateLimit-Reset and Retry-After, an Audit Log 429 Retry-After
	//     alone; the token endpoint, whose limit no doc shows, only Retry-After on a 429;
	//   - tokens: no expires_in, and expires_at rotates, one form per issued token, through
	//     "2006-01-02T15:04:05.000Z", "2006-01-02T15:04:05Z", "2006-01-02T15:04:05.000-0500"
	//     (the same instant at a -05:00 offset) and epoch seconds as a JSON number; each is
	//     the token's expiry rounded down to the form's precision;
	//   - next_search_after rotates, one form per page, through "<seq>" (one part: the event's
	//     creation number), "<epoch ms>,<seq>" and "<epoch ms>,<seq>,<16-hex request id>";
	//     Search-After takes any of them back, three parts trimmed to two included, and
	//     Faults.SearchAfterQuirk has no effect;
	//   - an expired or unknown point in time answers {"message":"The Pit_Id has expired"},
	//     400 and 404 alternately;
	//   - Faults.AuditLogDisabled answers 403 {"message":"You do not have access to that
	//     record."};
	//   - every Harvest list answered 200 to a token minted with a sub records a harvest_access
	//     event performed by that user (see SeatUse).
	Profile string
}

// Profiles of Options.Profile.
const (
	ProfileDocumented = "documented"
	ProfileGenerous   = "generous"
)

// profileEnv names the environment variable ProfileFromEnv reads.
const profileEnv = "GREENHOUSE_SIM_PROFILE"

// ProfileFromEnv returns the profile named by the environment variable GREENHOUSE_SIM_PROFILE:
// ProfileDocumented when unset or empty, an error for an unknown name.
func ProfileFromEnv() (string, error) {
	switch v := os.Getenv(profileEnv); v {
	case "":
		return ProfileDocumented, nil
	case ProfileDocumented, ProfileGenerous:
		return v, nil
	default:
		return "", fmt.Errorf("%s=%q: unknown simulator profile (want %q or %q)", profileEnv, v, ProfileDocumented, ProfileGenerous)
	}
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
	if o.Profile == "" {
		o.Profile = ProfileDocumented
	}
	return o
}

// documented tells whether the server follows the documented profile.
func (s *Server) documented() bool { return s.opts.Profile == ProfileDocumented }

// Server is the simulated Greenhouse (auth, Harvest v3 and Audit Log hosts in one); it
// implements http.Handler. It is safe for concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux

	mu       sync.Mutex
	orgs     []*Org
	byClient map[string]*Org
	tokens   map[string]tokenInfo
	issued   int
	stray    Stats // requests no organisation can be charged with (no or unknown credential)
}

type tokenInfo struct {
	org     *Org
	sub     int64
	expires time.Time
}

// New returns a simulator with no organisation. It panics when opts.Profile names no profile.
func New(opts Options) *Server {
	if p := opts.Profile; p != "" && p != ProfileDocumented && p != ProfileGenerous {
		panic(fmt.Sprintf("simulator: unknown profile %q (want %q or %q)", p, ProfileDocumented, ProfileGenerous))
	}
	s := &Server{opts: opts.withDefaults(), byClient: map[string]*Org{}, tokens: map[string]tokenInfo{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("GET /v3/users", s.harvest(scopeUsers, 0, listUsers))
	mux.HandleFunc("GET /v3/user_roles", s.harvest(scopeRoles, 1, listRoles))
	mux.HandleFunc("GET /v3/user_job_permissions", s.harvest(scopeJobPerms, 2, listJobPerms))
	mux.HandleFunc("GET /v3/future_job_permissions", s.harvest(scopeFuturePerms, 3, listFuturePerms))
	mux.HandleFunc("POST /v3/users/{id}/deactivate", s.setStatus(ScopeDeactivate, true))
	mux.HandleFunc("POST /v3/users/{id}/activate", s.setStatus(ScopeActivate, false))
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /events/", s.events)
	s.mux = mux
	return s
}

// ServeHTTP serves every simulated host.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Scopes a credential carries unless Faults.MissingScopes removes them.
const (
	scopeUsers       = "harvest:users:list"
	scopeRoles       = "harvest:user_roles:list"
	scopeJobPerms    = "harvest:user_job_permissions:list"
	scopeFuturePerms = "harvest:future_job_permissions:list"
	scopeAudit       = "audit_log:events:list"
	// ScopeDeactivate and ScopeActivate are the simulator's names of the permission to
	// deactivate and activate users; Greenhouse's reference text names none
	// (docs/greenhouse-wire.md, row 12). Remove them with Faults.MissingScopes for a
	// credential without the write permission.
	ScopeDeactivate = "harvest:users:deactivate"
	ScopeActivate   = "harvest:users:activate"
)

var allScopes = []string{scopeUsers, scopeRoles, scopeJobPerms, scopeFuturePerms, scopeAudit, ScopeDeactivate, ScopeActivate}

// OrgSpec describes an organisation to generate.
type OrgSpec struct {
	// Name names the organisation (and its e-mail domain).
	Name string
	// Seed makes the generation deterministic.
	Seed int64
	// Users is the number of users, 1..50000.
	Users int
	// Events is the number of audit events over the 30 days before Now (default Users*40).
	Events int
	// Jobs is the number of jobs (default max(5, Users/10)).
	Jobs int
}

// Credentials are an organisation's Harvest v3 credential and its Site Admin (the token's sub).
type Credentials struct {
	ClientID, ClientSecret string
	AdminUserID            int64
}

// String masks the secret.
func (c Credentials) String() string {
	return fmt.Sprintf("{ClientID:%s ClientSecret:*** AdminUserID:%d}", c.ClientID, c.AdminUserID)
}

// Faults make an organisation misbehave. The zero value is a healthy organisation.
type Faults struct {
	// AuditLogDisabled answers /events with 403 "The Audit Log add-on is not enabled …" (403
	// "You do not have access to that record." in the documented profile).
	AuditLogDisabled bool
	// AuditLogWrongHost answers /events with 404 {"message":"Resource not found"} before auth
	// and limits, as a host or region without the Audit Log would (counted as an Audit Log
	// request).
	AuditLogWrongHost bool
	// MissingScopes are removed from the credential (e.g. "harvest:user_job_permissions:list",
	// "audit_log:events:list"): the endpoint answers 403 "Missing required scope: …".
	MissingScopes []string
	// AdminNotSiteAdmin treats the token's sub as not a Site Admin: every list and /events
	// answer 403 "The user authorizing this request must be a Site Admin.".
	AdminNotSiteAdmin bool
	// InvalidClient answers the token endpoint with 401 {"error":"invalid_client"}.
	InvalidClient bool
	// ExpirePIT makes every point in time expire after its first continuation page: the second
	// continuation gets the expiry answer (400 "Pit_Id … has expired"; Options.Profile tells
	// the documented one). A paging=true request that carries Search-After without Pit-Id
	// opens a new point in time resuming there.
	ExpirePIT bool
	// Fail5xx answers the next N requests of the organisation with 503 (decrements).
	Fail5xx int
	// Latency is added to every response of the organisation (the request's context is
	// respected).
	Latency time.Duration
	// Malformed breaks successful Harvest list and /events answers: "truncated" (cut JSON),
	// "wrong_type" (ids as strings or objects), "html" (200 text/html), "hostile_link" (a Link
	// to another host, garbage, or javascript:), "absurd_retry_after" (429 with Retry-After:
	// 99999999999), "huge" (a body larger than 64 MiB).
	Malformed string
	// SearchAfterQuirk returns next_search_after with three parts or as a JSON list,
	// alternately (generous profile only).
	SearchAfterQuirk bool
	// SearchAfterTwoPartsOnly returns next_search_after with three parts and answers 400
	// {"message":"Search-After must be two comma-separated values"} to a Search-After that is
	// not exactly two parts: a client must trim.
	SearchAfterTwoPartsOnly bool
	// ActiveOnWrite are users who become active between an action's request and its
	// execution: at the organisation's first accepted deactivate or activate, each of them
	// performs a seat-use event ("action") at that moment, once.
	ActiveOnWrite []int64
	// FailWrites answers deactivate and activate of these user ids with 422.
	FailWrites []int64
	// WriteAnswerDelay delays the answer of an accepted write after the write is done: a
	// client that gives up (or dies) meanwhile leaves the write done but unanswered.
	WriteAnswerDelay time.Duration
}

// Stats count what an organisation (or the server) was served. Every request counts in
// Requests and every 429 in Throttled.
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

// AddOrg generates an organisation from spec. It returns an error when Users is outside
// 1..50000 or Events or Jobs is negative.
func (s *Server) AddOrg(spec OrgSpec) (*Org, error) {
	if spec.Users < 1 || spec.Users > 50000 {
		return nil, fmt.Errorf("add org %q: users %d outside 1..50000", spec.Name, spec.Users)
	}
	if spec.Events < 0 || spec.Jobs < 0 {
		return nil, fmt.Errorf("add org %q: negative events or jobs", spec.Name)
	}
	if spec.Events == 0 {
		spec.Events = spec.Users * 40
	}
	if spec.Jobs == 0 {
		spec.Jobs = max(5, spec.Users/10)
	}
	o, err := newOrg(s, spec)
	if err != nil {
		return nil, fmt.Errorf("add org %q: %w", spec.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orgs = append(s.orgs, o)
	s.byClient[o.cred.ClientID] = o
	return o, nil
}

// Orgs returns the organisations in creation order.
func (s *Server) Orgs() []*Org {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.orgs)
}

// Stats returns the totals over every organisation, plus the requests no organisation could
// be charged with (missing or unknown credentials).
func (s *Server) Stats() Stats {
	s.mu.Lock()
	out := s.stray
	orgs := slices.Clone(s.orgs)
	s.mu.Unlock()
	for _, o := range orgs {
		out.add(o.Stats())
	}
	return out
}

// user is a simulated Greenhouse user.
type user struct {
	ID          int64
	First, Last string
	Email       string
	Deactivated bool
	SiteAdmin   bool
	Service     bool
	Removed     bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (u *user) name() string { return strings.TrimSpace(u.First + " " + u.Last) }

// perm is a job permission or a future-job permission.
type perm struct {
	ID, UserID, JobID, RoleID int64 // JobID 0 on future permissions
	DepartmentID, OfficeID    int64 // future permissions; 0 is null
	Automated                 bool
	CreatedAt, UpdatedAt      time.Time
}

type role struct {
	ID         int64
	Name, Type string
}

// event is one audit event, kept compact (40 bytes): millions fit in memory.
type event struct {
	at     int64  // event time, Unix milliseconds
	perf   int64  // user id (> 0) or -n for API key n
	target int64  // target id, 0 for none; with ownReq the index of request.type in Org.requests
	rid    uint64 // request id
	seq    uint32 // creation order: the point-in-time snapshot and the Search-After tiebreak
	typ    uint8  // index in Org.types
	tgt    uint8  // index in targetTypes, actionNames or (a user's harvest_access) harvestTargets
	ownReq bool   // a user's API request: request.type is Org.requests[target], target_id null
}

func eventLess(a, b event) int {
	switch {
	case a.at != b.at:
		if a.at < b.at {
			return -1
		}
		return 1
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// Org is one simulated organisation: one credential, one tenant. It is safe for concurrent
// use.
type Org struct {
	srv   *Server
	spec  OrgSpec
	cred  Credentials
	orgID int64
	roles []role
	jobs  []int64

	mu          sync.Mutex
	rng         *mrand.Rand
	faults      Faults
	users       []*user // ascending id, removed ones included
	byID        map[int64]*user
	jobPerms    []perm // ascending id
	futurePerms []perm // ascending id
	nextUser    int64
	nextPerm    int64
	events      []event          // ascending (at, seq)
	types       []string         // event type names by index
	requests    []string         // request types of events with ownReq, by index
	requestIdx  map[string]int64 // index of each of requests
	nextSeq     uint32
	stats       Stats
	limits      map[string]*window
	pits        map[string]*pit
	quirk       int      // rotates the shape of alternating faults
	writes      []string // accepted user-status writes (writes.go)
}

var (
	firstNames = []string{"Juliet", "Ahmed", "Beatriz", "Chen", "Dmitri", "Elena", "Farah", "Gustavo", "Hannah", "Ikechukwu",
		"Jonas", "Keiko", "Liam", "Maya", "Nikolai", "Olivia", "Priya", "Quentin", "Rosa", "Samuel", "Tomasz", "Uma",
		"Victor", "Wen", "Ximena", "Yusuf", "Zoe", "Amara", "Ben", "Clara", "Diego", "Emma", "Felix", "Grace", "Hiro", "Isla"}
	lastNames = []string{"Burke", "Okafor", "Nguyen", "Schmidt", "Garcia", "Kowalski", "Tanaka", "Haddad", "Silva", "Johnson",
		"Patel", "Moreau", "Rossi", "Andersson", "Kim", "O'Brien", "Novak", "Fernandes", "Cohen", "Ivanova", "Mensah",
		"Lindqvist", "Costa", "Müller", "Reyes", "Chowdhury", "Walsh", "Yamamoto", "Dubois", "Hughes"}
	serviceNames = []string{"Okta SCIM", "Harvest Integration", "Workday Sync", "Slack Bot", "Checkr Integration", "BambooHR Sync"}
	targetTypes  = []string{"Application", "Candidate", "Job", "Offer", "Scorecard", "Interview", "Note", "JobPost", "Prospect", "User", "Approval"}
	actionNames  = []string{"Report Viewed", "Candidate Exported", "Job Board Published", "Bulk Email Sent", "Interview Kit Viewed", "Offer Approved"}
	changeFields = []string{"status", "stage", "title", "salary", "recruiter_id", "source"}
	apiKeyNames  = []string{"Harvest key for BI", "Harvest key for HRIS sync", "Harvest key for Slack"}
	// harvestTargets are the target types of a user's harvest_access events, one per listing.
	harvestTargets = []string{"User", "UserRole", "UserJobPermission", "FutureJobPermission"}
)

// Request types of generated events, computed once so that Truth reads them without
// allocating: by API key (per target type), by action, and by target type and verb.
var (
	apiKeyRequests = mapNames(targetTypes, func(tt string) string { return "GET /v3/" + strings.ToLower(tt) + "s" })
	actionRequests = mapNames(actionNames, func(an string) string { return strings.ToLower(strings.ReplaceAll(an, " ", "_")) + "#create" })
	changeRequests = [3][]string{
		mapNames(targetTypes, func(tt string) string { return strings.ToLower(tt) + "s#update" }),
		mapNames(targetTypes, func(tt string) string { return strings.ToLower(tt) + "s#create" }),
		mapNames(targetTypes, func(tt string) string { return strings.ToLower(tt) + "s#destroy" }),
	}
)

func mapNames(names []string, fn func(string) string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fn(n)
	}
	return out
}

const (
	typeUpdate = iota
	typeCreate
	typeDestroy
	typeAction
	typeHarvest
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func seedHash(seed int64, name string) uint64 {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%d/%s", seed, name)
	return h.Sum64()
}

// newOrg generates an organisation from its spec: the seed decides everything but the
// credentials, in this order: users, permissions, events.
func newOrg(s *Server, spec OrgSpec) (*Org, error) {
	now := s.opts.Now().UTC().Truncate(time.Millisecond)
	hs := seedHash(spec.Seed, spec.Name)
	r := mrand.New(mrand.NewPCG(uint64(spec.Seed), 0x9e3779b97f4a7c15))
	o := &Org{srv: s, spec: spec, rng: r, byID: make(map[int64]*user, spec.Users),
		limits: map[string]*window{}, pits: map[string]*pit{},
		types: []string{"data_change_update", "data_change_create", "data_change_destroy", "action", "harvest_access"}}
	// Client ids are random, not seeded: two organisations with one seed stay distinct.
	o.cred = Credentials{ClientID: fmt.Sprintf("%s-%d", randHex(12), 1+r.IntN(9)), ClientSecret: randHex(24)}
	o.orgID = 1000 + int64(hs%900_000)
	roleBase := 100 + int64(hs%7)*10
	o.roles = []role{
		{roleBase + 1, "Standard", "job_admin"},
		{roleBase + 2, "Private", "job_admin"},
		{roleBase + 3, "Interviewer", "deprecated_interviewer"},
		{roleBase + 4, "Site Admin", "site_admin"},
		{roleBase + 5, "Hiring Manager (custom)", "job_admin"},
	}
	jobBase := 200_000 + int64(hs%1000)*1000
	for i := range spec.Jobs {
		o.jobs = append(o.jobs, jobBase+int64(i)*3+1)
	}
	admin := o.seedUsers(hs, orgDomain(spec.Name), now)
	o.seedPermissions(hs, now)
	o.seedEvents(admin, now)
	return o, nil
}

// orgDomain is the e-mail domain of an organisation's users.
func orgDomain(name string) string {
	domain := strings.ToLower(strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			return c
		}
		return -1
	}, name))
	if domain == "" {
		domain = "org"
	}
	return domain + ".example"
}

// seedUsers generates the users: one Site Admin among the first ten (the credentials' admin
// user, whose index it returns), about 3 % more Site Admins, 2 % service accounts, 8 %
// deactivated, 5 % created in the last 20 days.
func (o *Org) seedUsers(hs uint64, domain string, now time.Time) (admin int) {
	r, spec := o.rng, o.spec
	id := 4_000_000 + int64(hs%5_000_000)
	admin = r.IntN(min(spec.Users, 10))
	threeYears := 3 * 365 * 24 * time.Hour
	o.users = make([]*user, 0, spec.Users)
	for i := range spec.Users {
		id += int64(1 + r.IntN(3))
		u := &user{ID: id, First: firstNames[r.IntN(len(firstNames))], Last: lastNames[r.IntN(len(lastNames))]}
		u.Email = fmt.Sprintf("%s.%s%d@%s", emailPart(u.First), emailPart(u.Last), id%10000, domain)
		if i == admin {
			u.SiteAdmin = true
		} else {
			u.SiteAdmin = r.Float64() < 0.03
			if r.Float64() < 0.02 {
				u.Service, u.SiteAdmin, u.Email = true, false, ""
				u.First, u.Last = serviceNames[r.IntN(len(serviceNames))], "Service Account"
			}
			u.Deactivated = r.Float64() < 0.08
		}
		if i != admin && r.Float64() < 0.05 {
			u.CreatedAt = now.Add(-time.Duration(r.Int64N(int64(20 * 24 * time.Hour))))
		} else {
			u.CreatedAt = now.Add(-20*24*time.Hour - time.Duration(r.Int64N(int64(threeYears-20*24*time.Hour))))
		}
		u.CreatedAt = u.CreatedAt.Truncate(time.Millisecond)
		u.UpdatedAt = u.CreatedAt.Add(time.Duration(r.Int64N(int64(now.Sub(u.CreatedAt)) + 1))).Truncate(time.Millisecond)
		o.users = append(o.users, u)
		o.byID[u.ID] = u
	}
	o.nextUser = id + 1
	o.cred.AdminUserID = o.users[admin].ID
	return admin
}

// seedPermissions makes about 30 % of the users but Site Admins and service accounts job
// admins: job permissions, future ones, or both.
func (o *Org) seedPermissions(hs uint64, now time.Time) {
	r := o.rng
	o.nextPerm = 7_000_000 + int64(hs%1_000_000)
	for _, u := range o.users {
		if u.SiteAdmin || u.Service || r.Float64() >= 0.30 {
			continue
		}
		kind := r.Float64()
		if kind >= 0.15 { // job permissions, possibly also future ones
			for range 1 + r.IntN(5) {
				o.jobPerms = append(o.jobPerms, o.newPerm(u, o.jobs[r.IntN(len(o.jobs))], o.pickRole(), r.Float64() < 0.2, now))
			}
		}
		if kind < 0.35 { // future permissions: alone for a sixth or so of job admins
			for range 1 + r.IntN(2) {
				p := o.newPerm(u, 0, o.pickRole(), false, now)
				if r.Float64() < 0.5 {
					p.DepartmentID = 50_000 + int64(r.IntN(20))
				}
				if r.Float64() < 0.3 {
					p.OfficeID = 60_000 + int64(r.IntN(10))
				}
				o.futurePerms = append(o.futurePerms, p)
			}
		}
	}
	sortPerms(o.jobPerms)
	sortPerms(o.futurePerms)
}

// seedEvents generates the Audit Log: 10 % API-key events, the rest by users in proportion
// to a weight each (about a quarter of the active users has none, service accounts never
// act), within retention and after each user's creation.
func (o *Org) seedEvents(admin int, now time.Time) {
	r := o.rng
	o.events = make([]event, 0, o.spec.Events)
	cum := make([]float64, len(o.users))
	var total float64
	for i, u := range o.users {
		var w float64
		switch {
		case u.Service:
		case u.Deactivated:
			if r.Float64() < 0.3 {
				w = 0.2 * math.Exp(r.NormFloat64())
			}
		case i == admin || r.Float64() >= 0.25:
			w = math.Exp(r.NormFloat64())
		}
		total += w
		cum[i] = total
	}
	// History starts an hour inside retention, so that none of it ages out during a test run.
	span := o.srv.opts.Retention - time.Hour
	start := now.Add(-span)
	for range o.spec.Events {
		at := start.Add(time.Duration(r.Int64N(int64(span))))
		if total == 0 || r.Float64() < 0.10 {
			o.events = append(o.events, o.apiKeyEvent(at))
			continue
		}
		k := sort.SearchFloat64s(cum, r.Float64()*total)
		k = min(k, len(o.users)-1)
		for cum[k] == 0 || (k > 0 && cum[k] == cum[k-1]) { // zero-weight users never act
			k = (k + 1) % len(o.users)
		}
		u := o.users[k]
		if u.CreatedAt.After(at) {
			// A user acts only after being created: spread those events over their lifetime.
			at = u.CreatedAt.Add(time.Duration(r.Int64N(int64(max(now.Sub(u.CreatedAt), time.Millisecond)))))
		}
		o.events = append(o.events, o.userEvent(u.ID, at, -1))
	}
	slices.SortFunc(o.events, eventLess)
}

func emailPart(s string) string {
	return strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z':
			return c
		case c >= 'A' && c <= 'Z':
			return c + 'a' - 'A'
		}
		return -1
	}, s)
}

// pickRole returns the role of a permission: mostly job_admin roles, some Interviewer.
func (o *Org) pickRole() int64 {
	x := o.rng.Float64()
	switch {
	case x < 0.45:
		return o.roles[0].ID
	case x < 0.65:
		return o.roles[1].ID
	case x < 0.85:
		return o.roles[4].ID
	}
	return o.roles[2].ID
}

func (o *Org) newPerm(u *user, job, roleID int64, automated bool, now time.Time) perm {
	created := u.CreatedAt.Add(time.Duration(o.rng.Int64N(int64(now.Sub(u.CreatedAt)) + 1))).Truncate(time.Millisecond)
	o.nextPerm += int64(1 + o.rng.IntN(4))
	return perm{ID: o.nextPerm, UserID: u.ID, JobID: job, RoleID: roleID, Automated: automated, CreatedAt: created, UpdatedAt: created}
}

func sortPerms(ps []perm) {
	slices.SortFunc(ps, func(a, b perm) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}

func (o *Org) nextEventSeq() uint32 {
	s := o.nextSeq
	o.nextSeq++
	return s
}

// userEvent makes an event by a user; typ < 0 picks a realistic type.
func (o *Org) userEvent(userID int64, at time.Time, typ int) event {
	r := o.rng
	if typ < 0 {
		switch x := r.Float64(); {
		case x < 0.50:
			typ = typeUpdate
		case x < 0.72:
			typ = typeCreate
		case x < 0.78:
			typ = typeDestroy
		default:
			typ = typeAction
		}
	}
	e := event{at: at.UnixMilli(), perf: userID, rid: r.Uint64(), seq: o.nextEventSeq(), typ: uint8(typ)}
	if typ == typeAction {
		e.tgt = uint8(r.IntN(len(actionNames)))
	} else {
		e.tgt = uint8(r.IntN(len(targetTypes)))
		e.target = int64(10_000_000 + r.IntN(90_000_000))
	}
	return e
}

func (o *Org) apiKeyEvent(at time.Time) event {
	r := o.rng
	return event{at: at.UnixMilli(), perf: -int64(1 + r.IntN(len(apiKeyNames))), rid: r.Uint64(), seq: o.nextEventSeq(),
		typ: typeHarvest, tgt: uint8(r.IntN(4))}
}

// typeIndex returns the index of an event type name, adding it when new.
func (o *Org) typeIndex(name string) (uint8, error) {
	if i := slices.Index(o.types, name); i >= 0 {
		return uint8(i), nil
	}
	if len(o.types) >= 255 {
		return 0, errors.New("too many event types")
	}
	o.types = append(o.types, name)
	return uint8(len(o.types) - 1), nil
}

// Credentials returns the organisation's credential and admin user (an active, non-service
// Site Admin).
func (o *Org) Credentials() Credentials { return o.cred }

// Name returns the organisation's name.
func (o *Org) Name() string { return o.spec.Name }

// SetFaults replaces the organisation's faults.
func (o *Org) SetFaults(f Faults) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f.MissingScopes = slices.Clone(f.MissingScopes)
	o.faults = f
}

// Faults returns the organisation's current faults (Fail5xx counts down).
func (o *Org) Faults() Faults {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.faults
	f.MissingScopes = slices.Clone(f.MissingScopes)
	return f
}

// Stats returns what the organisation was served.
func (o *Org) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// TruthUser is what a correct collector knows of one user.
type TruthUser struct {
	ID          int64
	Name, Email string
	// Status is active, deactivated or removed.
	Status string
	// LicenseType is site_admin, job_admin (any job or future-job permission) or basic.
	LicenseType               string
	SiteAdmin, ServiceAccount bool
	CreatedAt, UpdatedAt      time.Time
	// LastActivityAt is the newest event time (whole seconds) of the user's seat use (SeatUse),
	// ever; nil if none.
	LastActivityAt *time.Time
}

// DailyActivity is one user's seat-use events (SeatUse) on one UTC day.
type DailyActivity struct {
	UserID      int64
	Day         time.Time // 00:00 UTC
	Events      int
	LastEventAt time.Time // whole seconds
}

// Truth is what a correct collector must end with, as of Now.
type Truth struct {
	Users         []TruthUser     // every user ever served, removed ones included, by id
	Events        int             // audit events retrievable now (within retention)
	UserEvents    int             // of which performer.type == "user"
	SeatUseEvents int             // of which SeatUse holds
	Daily         []DailyActivity // per user and UTC day of the SeatUse events; by user, day
}

// SeatUse is the rule that tells whether an audit event counts as a person's use of a seat:
// performer.type is "user", event.type is not "harvest_access", and request.type is not an API
// request. An API request's type starts with "/" or "http", or is an HTTP method (one or more
// ASCII capital letters) followed by a space and then "/" or "http". A user's own API traffic
// (a token minted with the user as sub) is recorded as performed by that user, yet is no one's
// use of a seat.
func SeatUse(performerType, eventType, requestType string) bool {
	return performerType == "user" && eventType != "harvest_access" && !apiRequest(requestType)
}

// apiRequest tells whether a request.type names an API request (see SeatUse).
func apiRequest(rt string) bool {
	if method, rest, ok := strings.Cut(rt, " "); ok && method != "" && strings.Trim(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
		rt = rest
	}
	return strings.HasPrefix(rt, "/") || strings.HasPrefix(rt, "http")
}

// Truth computes the ground truth as of Now.
func (o *Org) Truth() Truth {
	o.mu.Lock()
	defer o.mu.Unlock()
	var t Truth
	last := o.truthEvents(&t)
	o.truthUsers(&t, last)
	return t
}

// truthEvents counts the events within retention, the seat-use events by user and day, and
// returns each user's last seat use (retention aside: the collector keeps what it stored).
// Called with o.mu held.
func (o *Org) truthEvents(t *Truth) (last map[int64]int64) {
	now := o.srv.opts.Now().UnixMilli()
	cut := now - o.srv.opts.Retention.Milliseconds()
	last = map[int64]int64{}
	type dk struct{ id, day int64 }
	daily := map[dk]*DailyActivity{}
	for _, e := range o.events {
		if e.at > now {
			break
		}
		use := e.perf > 0 && SeatUse("user", o.types[e.typ], o.requestType(e))
		if use && e.at > last[e.perf] {
			last[e.perf] = e.at
		}
		if e.at < cut {
			continue
		}
		t.Events++
		if e.perf <= 0 {
			continue
		}
		t.UserEvents++
		if !use {
			continue
		}
		t.SeatUseEvents++
		k := dk{e.perf, e.at - mod(e.at, 86_400_000)}
		d := daily[k]
		if d == nil {
			d = &DailyActivity{UserID: e.perf, Day: time.UnixMilli(k.day).UTC()}
			daily[k] = d
		}
		d.Events++
		if at := time.UnixMilli(e.at - mod(e.at, 1000)).UTC(); at.After(d.LastEventAt) {
			d.LastEventAt = at
		}
	}
	for _, d := range daily {
		t.Daily = append(t.Daily, *d)
	}
	slices.SortFunc(t.Daily, func(a, b DailyActivity) int {
		if a.UserID != b.UserID {
			if a.UserID < b.UserID {
				return -1
			}
			return 1
		}
		return a.Day.Compare(b.Day)
	})
	return last
}

// truthUsers derives every user's status, license type and last activity. Called with o.mu
// held.
func (o *Org) truthUsers(t *Truth, last map[int64]int64) {
	permUsers := map[int64]bool{}
	for _, p := range o.jobPerms {
		permUsers[p.UserID] = true
	}
	for _, p := range o.futurePerms {
		permUsers[p.UserID] = true
	}
	t.Users = make([]TruthUser, 0, len(o.users))
	for _, u := range o.users {
		tu := TruthUser{ID: u.ID, Name: u.name(), Email: u.Email, SiteAdmin: u.SiteAdmin, ServiceAccount: u.Service,
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, Status: "active", LicenseType: "basic"}
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
		}
		if at, ok := last[u.ID]; ok {
			v := time.UnixMilli(at - mod(at, 1000)).UTC()
			tu.LastActivityAt = &v
		}
		t.Users = append(t.Users, tu)
	}
}

// mod is the non-negative remainder.
func mod(a, b int64) int64 { return ((a % b) + b) % b }

func (o *Org) now() time.Time { return o.srv.opts.Now().UTC().Truncate(time.Millisecond) }

// DeactivateUser deactivates a user and bumps its updated_at. It returns an error for an
// unknown or removed user.
func (o *Org) DeactivateUser(id int64) error {
	return o.mutate("deactivate", id, func(u *user) { u.Deactivated = true })
}

// ActivateUser reactivates a user and bumps its updated_at. It returns an error for an unknown
// or removed user.
func (o *Org) ActivateUser(id int64) error {
	return o.mutate("activate", id, func(u *user) { u.Deactivated = false })
}

// RemoveUser hard-deletes a user: gone from every listing (its permissions too); the truth
// says removed. It returns an error for an unknown or already removed user.
func (o *Org) RemoveUser(id int64) error {
	return o.mutate("remove", id, func(u *user) { u.Removed = true })
}

func (o *Org) mutate(op string, id int64, fn func(*user)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.byID[id]
	if !ok || u.Removed {
		return fmt.Errorf("%s user %d: no such user", op, id)
	}
	fn(u)
	u.UpdatedAt = o.now()
	return nil
}

// NewUser describes a user to add.
type NewUser struct {
	Name, Email               string
	SiteAdmin, ServiceAccount bool
	CreatedAt                 time.Time // zero: Now
}

// AddUser adds an active user with an id above every existing one and returns the id. A
// service account's primary e-mail is always "".
func (o *Org) AddUser(nu NewUser) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	first, last, _ := strings.Cut(strings.TrimSpace(nu.Name), " ")
	now := o.now()
	u := &user{ID: o.nextUser, First: first, Last: last, Email: nu.Email, SiteAdmin: nu.SiteAdmin, Service: nu.ServiceAccount,
		CreatedAt: nu.CreatedAt.UTC().Truncate(time.Millisecond), UpdatedAt: now}
	if nu.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.Service {
		u.Email = ""
	}
	o.nextUser += int64(1 + o.rng.IntN(3))
	o.users = append(o.users, u)
	o.byID[u.ID] = u
	return u.ID
}

// GrantJobPermission gives a user a permission on a job with the Standard (job_admin) role and
// bumps the user's updated_at. It returns an error for an unknown or removed user.
func (o *Org) GrantJobPermission(userID, jobID int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, ok := o.byID[userID]
	if !ok || u.Removed {
		return fmt.Errorf("grant job %d to user %d: no such user", jobID, userID)
	}
	now := o.now()
	o.nextPerm++
	o.jobPerms = append(o.jobPerms, perm{ID: o.nextPerm, UserID: userID, JobID: jobID, RoleID: o.roles[0].ID, CreatedAt: now, UpdatedAt: now})
	u.UpdatedAt = now
	return nil
}

// AddUserEvent records an event of the given type (e.g. "data_change_update", "action")
// performed by a user at a time. It returns an error for an unknown user.
func (o *Org) AddUserEvent(userID int64, at time.Time, eventType string) error {
	return o.addUserEvent("add event", userID, at, eventType, nil)
}

// AddAPIUserEvent records an event of the given type (e.g. "data_change_update") performed by
// a user through the API, with the given request.type (e.g. "/v3/users/123") and a null
// target_id. Truth counts it as seat use only when SeatUse says so. It returns an error for an
// unknown user.
func (o *Org) AddAPIUserEvent(userID int64, at time.Time, eventType, requestType string) error {
	return o.addUserEvent("add API event", userID, at, eventType, func(e *event) {
		e.ownReq, e.target = true, o.requestIndex(requestType)
	})
}

// addUserEvent records a user's event, which more (when set) alters first; op names the
// operation in errors.
func (o *Org) addUserEvent(op string, userID int64, at time.Time, eventType string, more func(*event)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.byID[userID]; !ok {
		return fmt.Errorf("%s of user %d: no such user", op, userID)
	}
	typ, err := o.typeIndex(eventType)
	if err != nil {
		return fmt.Errorf("%s of user %d: %w", op, userID, err)
	}
	e := o.userEvent(userID, at, int(typ))
	if more != nil {
		more(&e)
	}
	o.insertEvents([]event{e})
	return nil
}

// recordHarvestAccess records the harvest_access event of a Harvest list answered to a token
// minted with sub: the user's own API traffic shows in the Audit Log as performed by them
// (documented profile). target indexes harvestTargets. The caller holds o.mu.
func (o *Org) recordHarvestAccess(sub int64, at time.Time, target int, requestType string) {
	e := event{at: at.UnixMilli(), perf: sub, rid: o.rng.Uint64(), seq: o.nextEventSeq(), typ: typeHarvest,
		tgt: uint8(target), ownReq: true, target: o.requestIndex(requestType)}
	o.insertEvents([]event{e})
}

// requestIndex returns the index of a request type in o.requests, adding it when new; the
// caller holds o.mu. Repeated requests (the same listing, the same cursor) share one string.
func (o *Org) requestIndex(rt string) int64 {
	if i, ok := o.requestIdx[rt]; ok {
		return i
	}
	if o.requestIdx == nil {
		o.requestIdx = map[string]int64{}
	}
	i := int64(len(o.requests))
	o.requests = append(o.requests, rt)
	o.requestIdx[rt] = i
	return i
}

// AddEvents adds n random events in [from, to): activity by existing active users, and about
// one in ten harvest_access events by API keys.
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
	if n <= 0 || span <= 0 {
		return
	}
	evs := make([]event, 0, n)
	for range n {
		at := from.Add(time.Duration(o.rng.Int64N(int64(span))))
		if len(active) == 0 || o.rng.Float64() < 0.10 {
			evs = append(evs, o.apiKeyEvent(at))
			continue
		}
		evs = append(evs, o.userEvent(active[o.rng.IntN(len(active))], at, -1))
	}
	o.insertEvents(evs)
}

// insertEvents merges events into the sorted slice.
func (o *Org) insertEvents(evs []event) {
	if len(evs) == 1 {
		e := evs[0]
		i, _ := slices.BinarySearchFunc(o.events, e, eventLess)
		o.events = slices.Insert(o.events, i, e)
		return
	}
	o.events = append(o.events, evs...)
	slices.SortFunc(o.events, eventLess)
}
