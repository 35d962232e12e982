package flytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/flaps"
	"github.com/superfly/fly-go/tokens"

	"github.com/superfly/fly-autoscaler/scale/flytest"
)

const testToken = "fo1_flytest-token"

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func loadOrg(t *testing.T, name string) *flytest.Org {
	t.Helper()
	org, err := flytest.LoadOrg("../../testdata/flytest/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return org
}

type env struct {
	srv   *flytest.Server
	api   *fly.Client
	flaps *flaps.Client
	clock *clock
	http  *http.Client // for raw requests
}

// newEnv starts a server on fixture with the test token and a fake clock,
// and the real fly-go clients pointed at it.
func newEnv(t *testing.T, fixture string, opts flytest.Options) *env {
	t.Helper()
	c := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.Token == "" {
		opts.Token = testToken
	}
	srv := flytest.New(loadOrg(t, fixture), opts)
	t.Cleanup(srv.Close)
	t.Setenv("FLY_FLAPS_BASE_URL", srv.URL)
	fc, err := flaps.NewWithOptions(context.Background(), flaps.NewClientOpts{Tokens: tokens.Parse(opts.Token)})
	if err != nil {
		t.Fatal(err)
	}
	api := fly.NewClientFromOptions(fly.ClientOptions{BaseURL: srv.URL, AccessToken: opts.Token})
	return &env{srv: srv, api: api, flaps: fc, clock: c, http: http.DefaultClient}
}

// newMemEnv is newEnv with the server in memory (flytest.NewInMemory), for
// tests under testing/synctest: the rate limits run on the bubble's clock.
// Call it inside the bubble.
func newMemEnv(t *testing.T, fixture string, opts flytest.Options) *env {
	t.Helper()
	c := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	if opts.Token == "" {
		opts.Token = testToken
	}
	srv := flytest.NewInMemory(loadOrg(t, fixture), opts)
	// The in-memory transport serves every origin: flaps may keep its own.
	fc, err := flaps.NewWithOptions(context.Background(), flaps.NewClientOpts{Tokens: tokens.Parse(opts.Token), Transport: srv.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	api := fly.NewClientFromOptions(fly.ClientOptions{BaseURL: srv.URL, AccessToken: opts.Token,
		Transport: &fly.Transport{UnderlyingTransport: srv.Transport()}})
	return &env{srv: srv, api: api, flaps: fc, clock: c, http: &http.Client{Transport: srv.Transport()}}
}

// do sends a raw request with the flaps authorization header.
func (e *env) do(t *testing.T, method, path string, body any, header map[string]string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", tokens.Parse(testToken).FlapsHeader())
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(data)
}

// graphql posts a raw GraphQL request and decodes the response.
func (e *env) graphql(t *testing.T, query string, vars map[string]any) (status int, out struct {
	Data   map[string]json.RawMessage
	Errors []struct {
		Message    string
		Path       []string
		Extensions struct{ Code string }
	}
}) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Authorization", tokens.Parse(testToken).GraphQLHeader())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && resp.StatusCode == http.StatusOK {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// flapsErr asserts err is a *flaps.FlapsError with status and a message
// containing msg.
func flapsErr(t *testing.T, err error, status int, msg string) {
	t.Helper()
	var fe *flaps.FlapsError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *flaps.FlapsError", err, err)
	}
	if fe.ResponseStatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", fe.ResponseStatusCode, status, fe.ResponseBody)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not contain %q", err, msg)
	}
}

func ops(calls []flytest.Call) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.Op
	}
	return out
}

func machineByID(t *testing.T, e *env, app, id string) *fly.Machine {
	t.Helper()
	m, err := e.flaps.Get(context.Background(), app, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseOrg(t *testing.T) {
	org, err := flytest.ParseOrg([]byte(`{"slug":"o","apps":[
		{"name":"a-%02d","count":3,"first":8,"machines":[{"state":"stopped","count":2},{}]},
		{"name":"solo","release_status":"none"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	srv := flytest.New(org, flytest.Options{})
	defer srv.Close()
	if got, want := strings.Join(srv.Apps(), ","), "a-08,a-09,a-10,solo"; got != want {
		t.Errorf("apps = %s, want %s", got, want)
	}
	if n := srv.Count("a-09", "stopped"); n != 2 {
		t.Errorf("a-09 stopped = %d, want 2", n)
	}
	if n := srv.Count("a-09", "started"); n != 1 {
		t.Errorf("a-09 started (the default state) = %d, want 1", n)
	}
	hex14 := regexp.MustCompile(`^[0-9a-f]{14}$`)
	ms := srv.Machines("a-10")
	for _, m := range ms {
		if !hex14.MatchString(m.ID) {
			t.Errorf("machine id %q is not 14 hex characters", m.ID)
		}
		if m.Config.ProcessGroup() != "app" || m.Region != "ord" || m.HostStatus != fly.HostStatusOk {
			t.Errorf("machine %s: group %q region %q host %q, want app/ord/ok", m.ID, m.Config.ProcessGroup(), m.Region, m.HostStatus)
		}
	}
	// IDs are deterministic.
	again := flytest.New(org, flytest.Options{})
	defer again.Close()
	if a, b := ms[0].ID, again.Machines("a-10")[0].ID; a != b {
		t.Errorf("ids differ between servers: %s, %s", a, b)
	}

	for name, bad := range map[string]string{
		"unknown field":       `{"slug":"o","apps":[{"name":"a","machnes":[]}]}`,
		"duplicate app":       `{"slug":"o","apps":[{"name":"a"},{"name":"a"}]}`,
		"template, no count":  `{"slug":"o","apps":[{"name":"a-%d"}]}`,
		"count, no template":  `{"slug":"o","apps":[{"name":"a","count":2}]}`,
		"unknown state":       `{"slug":"o","apps":[{"name":"a","machines":[{"state":"runing"}]}]}`,
		"duplicate id":        `{"slug":"o","apps":[{"name":"a","machines":[{"id":"1"},{"id":"1"}]}]}`,
		"id with count":       `{"slug":"o","apps":[{"name":"a","machines":[{"id":"1","count":2}]}]}`,
		"missing slug":        `{"apps":[]}`,
		"unknown host status": `{"slug":"o","apps":[{"name":"a","machines":[{"host_status":"down"}]}]}`,
	} {
		if _, err := flytest.ParseOrg([]byte(bad)); err == nil {
			t.Errorf("%s: ParseOrg succeeded", name)
		}
	}
}

func TestFixtures(t *testing.T) {
	small := flytest.New(loadOrg(t, "small.json"), flytest.Options{})
	defer small.Close()
	if got := len(small.Apps()); got != 5 {
		t.Errorf("small.json: %d apps, want 5", got)
	}
	fleet := flytest.New(loadOrg(t, "fleet-250.json"), flytest.Options{})
	defer fleet.Close()
	apps := fleet.Apps()
	if len(apps) != 250 || apps[0] != "my-app-001" || apps[199] != "my-app-200" || apps[249] != "other-app-050" {
		t.Errorf("fleet-250.json apps: %d, first %s, last %s", len(apps), apps[0], apps[len(apps)-1])
	}
	if fleet.Count("my-app-050", "stopped") != 3 || fleet.Count("my-app-150", "started") != 4 {
		t.Error("fleet-250.json machine mix is not as written")
	}
}

func TestOrganizationBySlug(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()

	org, err := e.api.GetOrganizationBySlug(ctx, "my-org")
	if err != nil {
		t.Fatal(err)
	}
	if org.ID != "org-small" || org.Slug != "my-org" || org.Name != "My Org" || org.RawSlug != "my-org" || org.InternalNumericID == "" {
		t.Errorf("org = %+v", org)
	}

	if _, err := e.api.GetOrganizationBySlug(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "Could not find Organization") {
		t.Errorf("unknown slug: err = %v", err)
	}
	status, out := e.graphql(t, `query($slug: String!) { organization(slug: $slug) { id } }`, map[string]any{"slug": "nope"})
	if status != http.StatusOK || string(out.Data["organization"]) != "null" || len(out.Errors) != 1 ||
		out.Errors[0].Extensions.Code != "NOT_FOUND" || out.Errors[0].Path[0] != "organization" {
		t.Errorf("unknown slug raw answer: %d %+v", status, out)
	}
	if got := ops(e.srv.Calls()); strings.Join(got, ",") != "graphql_org,graphql_org,graphql_org" {
		t.Errorf("calls = %v", got)
	}
}

func TestAppsForOrganizationPaginates(t *testing.T) {
	e := newEnv(t, "fleet-250.json", flytest.Options{})
	ctx := context.Background()
	org, err := e.api.GetOrganizationBySlug(ctx, "my-org")
	if err != nil {
		t.Fatal(err)
	}
	e.srv.ResetCalls()

	apps, err := e.api.GetAppsForOrganization(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 250 {
		t.Fatalf("got %d apps, want 250", len(apps))
	}
	if got := ops(e.srv.Calls()); strings.Join(got, ",") != "graphql_apps,graphql_apps" {
		t.Errorf("calls = %v, want two graphql_apps pages", got)
	}
	seen := map[string]bool{}
	for _, a := range apps {
		if seen[a.Name] {
			t.Errorf("app %s listed twice", a.Name)
		}
		seen[a.Name] = true
		if a.CurrentRelease == nil || a.CurrentRelease.Status != "complete" || a.CurrentRelease.CreatedAt.IsZero() {
			t.Errorf("app %s: current release %+v", a.Name, a.CurrentRelease)
		}
		if !a.Deployed || a.Organization.Slug != "my-org" || a.Hostname != a.Name+".fly.dev" || a.ID != a.Name {
			t.Errorf("app %+v", a)
		}
	}
	if apps[0].Name != "my-app-001" || apps[249].Name != "other-app-050" {
		t.Errorf("order: first %s, last %s", apps[0].Name, apps[249].Name)
	}

	// Cursors: base64 without padding of the 1-based position.
	q := `query($org: ID, $after: String) { apps(type: "container", first: 2, after: $after, organizationId: $org) {
		pageInfo { hasNextPage endCursor } nodes { name } } }`
	_, out := e.graphql(t, q, map[string]any{"org": org.ID, "after": ""})
	var page struct {
		PageInfo struct {
			HasNextPage bool
			EndCursor   string
		}
		Nodes []struct{ Name string }
	}
	if err := json.Unmarshal(out.Data["apps"], &page); err != nil {
		t.Fatal(err)
	}
	if page.PageInfo.EndCursor != "Mg" || !page.PageInfo.HasNextPage || len(page.Nodes) != 2 {
		t.Errorf("first page %+v", page)
	}
	_, out = e.graphql(t, q, map[string]any{"org": org.ID, "after": "MjQ5"}) // after 249
	if err := json.Unmarshal(out.Data["apps"], &page); err != nil {
		t.Fatal(err)
	}
	if page.PageInfo.HasNextPage || len(page.Nodes) != 1 || page.Nodes[0].Name != "other-app-050" || page.PageInfo.EndCursor != "MjUw" {
		t.Errorf("last page %+v", page)
	}
	_, out = e.graphql(t, q, map[string]any{"org": org.ID, "after": "!!"})
	if len(out.Errors) == 0 || !strings.Contains(out.Errors[0].Message, "cursor") {
		t.Errorf("invalid cursor: %+v", out)
	}
}

func TestReleaseStatus(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()

	apps, err := e.api.GetAppsForOrganization(ctx, "org-small")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]fly.App{}
	for _, a := range apps {
		byName[a.Name] = a
	}
	if r := byName["deploying"].CurrentRelease; r == nil || r.Status != "running" {
		t.Errorf("deploying: release %+v, want running", r)
	}
	if a := byName["fresh"]; a.CurrentRelease != nil || a.Deployed {
		t.Errorf("fresh: deployed %v release %+v, want none", a.Deployed, a.CurrentRelease)
	}

	rel, err := e.api.GetAppCurrentReleaseMachines(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if rel == nil || rel.Version != 5 || rel.Status != "complete" || !rel.Stable || rel.CreatedAt.IsZero() {
		t.Errorf("web release = %+v", rel)
	}
	rel, err = e.api.GetAppCurrentReleaseMachines(ctx, "fresh")
	if err != nil || rel != nil {
		t.Errorf("never-deployed app: release %+v, err %v; want nil, nil", rel, err)
	}
	if _, err := e.api.GetAppCurrentReleaseMachines(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "Could not find App") {
		t.Errorf("unknown app: err = %v", err)
	}

	e.srv.SetReleaseStatus("web", "running")
	if rel, err := e.api.GetAppCurrentReleaseMachines(ctx, "web"); err != nil || rel.Status != "running" {
		t.Errorf("after SetReleaseStatus: %+v, %v", rel, err)
	}
	for _, c := range e.srv.Calls()[1:] {
		if c.Op != flytest.OpGraphQLRelease {
			t.Errorf("call %+v, want graphql_release", c)
		}
	}
	if c := e.srv.Calls()[1]; c.App != "web" {
		t.Errorf("graphql_release call app = %q, want web", c.App)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()

	ms, err := e.flaps.List(ctx, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 10 {
		t.Errorf("listed %d machines, want 10 (destroyed excluded)", len(ms))
	}
	for _, m := range ms {
		switch {
		case m.State == fly.MachineStateDestroyed:
			t.Errorf("destroyed machine %s listed", m.ID)
		case m.ID == "e1000000000009":
			if m.HostStatus != fly.HostStatusUnreachable || m.Config != nil || m.IncompleteConfig == nil || m.ProcessGroup() != "app" {
				t.Errorf("unreachable machine: host %q config %v incomplete %v", m.HostStatus, m.Config, m.IncompleteConfig)
			}
		default:
			if m.HostStatus != fly.HostStatusOk || m.Config == nil || m.Config.Image == "" {
				t.Errorf("machine %s: host %q config %v", m.ID, m.HostStatus, m.Config)
			}
		}
	}
	m := machineByID(t, e, "web", "e1000000000001")
	if ev := m.GetLatestEventOfType("start"); ev == nil || !ev.Time().Equal(time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("started_at event = %+v", ev)
	}
	if m.ImageRef.Registry != "registry.fly.io" || m.ImageRef.Repository != "web" || m.ImageRef.Tag != "deployment-05" || !strings.HasPrefix(m.ImageRef.Digest, "sha256:") {
		t.Errorf("image_ref = %+v", m.ImageRef)
	}
	if m.Config.Metadata["fly_release_version"] != "5" || m.Config.Metadata["fly_platform_version"] != "v2" {
		t.Errorf("metadata = %v", m.Config.Metadata)
	}
	if w := machineByID(t, e, "web", "e1000000000007"); w.ProcessGroup() != "worker" || w.Config.Guest.CPUKind != "performance" {
		t.Errorf("worker machine: group %q guest %+v", w.ProcessGroup(), w.Config.Guest)
	}
	if s := machineByID(t, e, "web", "e1000000000003"); s.Events[0].Status != "stopped" {
		t.Errorf("stopped machine's newest event = %+v", s.Events[0])
	}

	for _, tc := range []struct {
		query string
		want  int
	}{
		{"started", 10}, // fly-go sends List's argument verbatim: tolerated
		{"include_deleted=true", 11},
		{"region=iad", 1},
		{"state=stopped", 5},
		{"state=started,suspended", 4},
		{"metadata.fly_process_group=worker", 2},
	} {
		ms, err := e.flaps.List(ctx, "web", tc.query)
		if err != nil {
			t.Errorf("List(%q): %v", tc.query, err)
			continue
		}
		if len(ms) != tc.want {
			t.Errorf("List(%q) = %d machines, want %d", tc.query, len(ms), tc.want)
		}
	}

	if ms, err := e.flaps.List(ctx, "empty", ""); err != nil || len(ms) != 0 {
		t.Errorf("empty app: %d machines, %v", len(ms), err)
	}
	_, err = e.flaps.List(ctx, "nope", "")
	flapsErr(t, err, http.StatusNotFound, "app not found")
	if !errors.Is(err, flaps.ErrFlapsNotFound) {
		t.Errorf("errors.Is(%v, ErrFlapsNotFound) = false", err)
	}
	if got := len(e.srv.Mutations()); got != 0 {
		t.Errorf("reads recorded %d mutations", got)
	}
}

func TestStartStopSuspend(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()
	now := e.clock.Now()

	res, err := e.flaps.Start(ctx, "web", "e1000000000003", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.PreviousState != "stopped" {
		t.Errorf("previous_state = %q", res.PreviousState)
	}
	m := machineByID(t, e, "web", "e1000000000003")
	if m.State != "started" {
		t.Errorf("state = %q after start", m.State)
	}
	if ev := m.Events[0]; ev.Type != "start" || ev.Status != "started" || ev.Source != "flyd" || !ev.Time().Equal(now) {
		t.Errorf("newest event = %+v, want a start at %v", ev, now)
	}

	_, err = e.flaps.Start(ctx, "web", "e1000000000003", "")
	flapsErr(t, err, http.StatusPreconditionFailed, "failed_precondition: machine still active, refusing to start")

	e.clock.Advance(time.Minute)
	if err := e.flaps.Suspend(ctx, "web", "e1000000000003", ""); err != nil {
		t.Fatal(err)
	}
	m = machineByID(t, e, "web", "e1000000000003")
	if m.State != "suspended" || m.Events[0].Type != "suspend" || !m.Events[0].Time().Equal(now.Add(time.Minute)) {
		t.Errorf("after suspend: state %q events[0] %+v", m.State, m.Events[0])
	}
	err = e.flaps.Suspend(ctx, "web", "e1000000000003", "")
	flapsErr(t, err, http.StatusPreconditionFailed, "unable to suspend machine from current state: 'suspended'")
	err = e.flaps.Stop(ctx, "web", fly.StopMachineInput{ID: "e1000000000003"}, "")
	flapsErr(t, err, http.StatusPreconditionFailed, "failed_precondition: unable to stop machine from current state: 'suspended'")

	if res, err := e.flaps.Start(ctx, "web", "e1000000000003", ""); err != nil || res.PreviousState != "suspended" {
		t.Errorf("start from suspended: %+v, %v", res, err)
	}
	if res, err := e.flaps.Start(ctx, "web", "e1000000000006", ""); err != nil || res.PreviousState != "created" {
		t.Errorf("start from created: %+v, %v", res, err)
	}
	if err := e.flaps.Stop(ctx, "web", fly.StopMachineInput{ID: "e1000000000001", Signal: "SIGINT", Timeout: fly.Duration{Duration: 5 * time.Second}}, ""); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Count("web", "stopped"); n != 5 {
		t.Errorf("stopped count = %d, want 5", n)
	}

	_, err = e.flaps.Start(ctx, "web", "e100000000000a", "")
	flapsErr(t, err, http.StatusPreconditionFailed, "unable to start machine from current state: 'destroyed'")
	_, err = e.flaps.Start(ctx, "web", "00000000000000", "")
	flapsErr(t, err, http.StatusNotFound, "machine not found")
	_, err = e.flaps.Start(ctx, "nope", "e1000000000003", "")
	flapsErr(t, err, http.StatusNotFound, "app not found")
	_, err = e.flaps.Start(ctx, "web", "e1000000000009", "")
	flapsErr(t, err, http.StatusInternalServerError, "could not reach host")

	want := "start,start,suspend,suspend,stop,start,start,stop,start,start,start,start"
	if got := strings.Join(ops(e.srv.Mutations()), ","); got != want {
		t.Errorf("mutations = %s\nwant        %s", got, want)
	}
	var rejected int
	for _, c := range e.srv.Mutations() {
		if c.Status >= 300 {
			rejected++
		}
	}
	if rejected != 7 {
		t.Errorf("%d rejected attempts recorded, want 7", rejected)
	}
}

func TestLaunch(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()
	src := machineByID(t, e, "web", "e1000000000002")
	cfg := src.Config
	cfg.Image = "registry.fly.io/my-app:deployment-01@sha256:abc123"
	cfg.Metadata["custom"] = "yes"

	m, err := e.flaps.Launch(ctx, "web", fly.LaunchMachineInput{Config: cfg, Region: "syd"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{14}$`).MatchString(m.ID) {
		t.Errorf("new id %q", m.ID)
	}
	want := fly.MachineImageRef{Registry: "registry.fly.io", Repository: "my-app", Tag: "deployment-01", Digest: "sha256:abc123"}
	if m.State != "started" || m.Region != "syd" || m.ImageRef.Registry != want.Registry || m.ImageRef.Repository != want.Repository ||
		m.ImageRef.Tag != want.Tag || m.ImageRef.Digest != want.Digest || m.FullImageRef() != cfg.Image {
		t.Errorf("launched %+v", m)
	}
	if m.Config.Metadata["custom"] != "yes" || m.ProcessGroup() != "app" || m.InstanceID == "" || m.CreatedAt != "2025-03-01T12:00:00Z" {
		t.Errorf("launched config/metadata %+v instance %q created %q", m.Config.Metadata, m.InstanceID, m.CreatedAt)
	}
	if m.Events[0].Type != "start" || m.LeaseNonce != "" {
		t.Errorf("events %+v nonce %q", m.Events[0], m.LeaseNonce)
	}

	created, err := e.flaps.Launch(ctx, "web", fly.LaunchMachineInput{Config: cfg, Region: "ord", SkipLaunch: true, LeaseTTL: 60})
	if err != nil {
		t.Fatal(err)
	}
	if created.State != "created" || created.ID == m.ID || created.LeaseNonce == "" {
		t.Errorf("skip_launch machine: %+v", created)
	}
	if got := machineByID(t, e, "web", created.ID); got.State != "created" {
		t.Errorf("stored state %q", got.State)
	}
	if n := len(e.srv.Machines("web")); n != 12 {
		t.Errorf("%d machines after two launches, want 12", n)
	}

	_, err = e.flaps.Launch(ctx, "web", fly.LaunchMachineInput{Region: "ord"})
	flapsErr(t, err, http.StatusBadRequest, "image is required")
	if got := strings.Join(ops(e.srv.Mutations()), ","); got != "launch,launch,launch" {
		t.Errorf("mutations = %s", got)
	}
}

func TestDestroy(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()

	err := e.flaps.Destroy(ctx, "web", fly.RemoveMachineInput{ID: "e1000000000002"}, "")
	flapsErr(t, err, http.StatusPreconditionFailed, "unable to destroy machine, not currently stopped, suspended, failed or created")
	if err := e.flaps.Destroy(ctx, "web", fly.RemoveMachineInput{ID: "e1000000000002", Kill: true}, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.flaps.Destroy(ctx, "web", fly.RemoveMachineInput{ID: "e1000000000004"}, ""); err != nil {
		t.Fatalf("destroying a stopped machine without kill: %v", err)
	}
	if m := machineByID(t, e, "web", "e1000000000002"); m.State != "destroyed" {
		t.Errorf("state after destroy = %q", m.State)
	}
	for _, m := range e.srv.Machines("web") {
		if m.ID == "e1000000000002" || m.ID == "e1000000000004" {
			t.Errorf("destroyed machine %s still listed", m.ID)
		}
	}
	if n := e.srv.Count("web", "destroyed"); n != 3 {
		t.Errorf("destroyed count = %d, want 3", n)
	}
	err = e.flaps.Destroy(ctx, "web", fly.RemoveMachineInput{ID: "e1000000000002", Kill: true}, "")
	flapsErr(t, err, http.StatusNotFound, "machine not found")
	if c := e.srv.Calls()[0]; c.RawQuery != "kill=false" || c.MachineID != "e1000000000002" || c.Status != 412 {
		t.Errorf("first call = %+v", c)
	}
}

// TestLeases runs over a socket and in memory: fly-go sets the nonce
// header under a key that is not canonical ("fly-machine-lease-nonce"),
// which a trip over the wire makes canonical and the in-memory transport
// must too.
func TestLeases(t *testing.T) {
	t.Run("socket", func(t *testing.T) { testLeases(t, newEnv(t, "small.json", flytest.Options{})) })
	t.Run("in memory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) { testLeases(t, newMemEnv(t, "small.json", flytest.Options{})) })
	})
}

func testLeases(t *testing.T, e *env) {
	ctx := context.Background()
	ttl := 30

	lease, err := e.flaps.AcquireLease(ctx, "web", "e1000000000003", &ttl)
	if err != nil {
		t.Fatal(err)
	}
	d := lease.Data
	if lease.Status != "success" || d == nil || len(d.Nonce) != 12 || d.ExpiresAt != e.clock.Now().Add(30*time.Second).Unix() || d.Owner == "" || d.Version == "" {
		t.Fatalf("lease = %+v %+v", lease, d)
	}
	found, err := e.flaps.FindLease(ctx, "web", "e1000000000003")
	if err != nil || found.Data.Nonce != d.Nonce {
		t.Errorf("FindLease = %+v, %v", found, err)
	}
	_, err = e.flaps.Start(ctx, "web", "e1000000000003", "")
	flapsErr(t, err, http.StatusConflict, "lease currently held by")
	if _, err := e.flaps.Start(ctx, "web", "e1000000000003", d.Nonce); err != nil {
		t.Errorf("start with the nonce: %v", err)
	}
	e.clock.Advance(20 * time.Second)
	ttl = 60
	refreshed, err := e.flaps.RefreshLease(ctx, "web", "e1000000000003", &ttl, d.Nonce)
	if err != nil || refreshed.Data.Nonce != d.Nonce || refreshed.Data.ExpiresAt != e.clock.Now().Add(time.Minute).Unix() {
		t.Errorf("RefreshLease = %+v, %v", refreshed, err)
	}
	err = e.flaps.ReleaseLease(ctx, "web", "e1000000000003", "wrongnonce00")
	flapsErr(t, err, http.StatusConflict, "lease currently held by")
	if err := e.flaps.ReleaseLease(ctx, "web", "e1000000000003", d.Nonce); err != nil {
		t.Fatal(err)
	}
	_, err = e.flaps.FindLease(ctx, "web", "e1000000000003")
	flapsErr(t, err, http.StatusNotFound, "lease not found")

	// Someone else (a deploy) holds the lease.
	nonce := e.srv.HoldLease("web", "e1000000000004", "deployer@example.com", time.Minute)
	_, err = e.flaps.Start(ctx, "web", "e1000000000004", "")
	flapsErr(t, err, http.StatusConflict, "machine ID e1000000000004 lease currently held by deployer@example.com")
	err = e.flaps.Destroy(ctx, "web", fly.RemoveMachineInput{ID: "e1000000000004", Kill: true}, "")
	flapsErr(t, err, http.StatusConflict, "lease currently held by")
	resp, body := e.do(t, http.MethodPost, "/v1/apps/web/machines/e1000000000004/lease?ttl=10", nil, nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, `"error":"machine ID e1000000000004 lease currently held by deployer@example.com`) {
		t.Errorf("acquire held lease: %d %s", resp.StatusCode, body)
	}
	if e.srv.Count("web", "stopped") != 4 {
		t.Error("a refused start changed state")
	}
	if _, err := e.flaps.Start(ctx, "web", "e1000000000004", nonce); err != nil {
		t.Errorf("start with the holder's nonce: %v", err)
	}
	// An expired lease no longer blocks.
	e.srv.HoldLease("web", "e1000000000008", "deployer@example.com", time.Minute)
	e.clock.Advance(61 * time.Second)
	if _, err := e.flaps.Start(ctx, "web", "e1000000000008", ""); err != nil {
		t.Errorf("start after the lease expired: %v", err)
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()
	md, err := e.flaps.GetMetadata(ctx, "web", "e1000000000007")
	if err != nil || md["fly_process_group"] != "worker" {
		t.Fatalf("GetMetadata = %v, %v", md, err)
	}
	if err := e.flaps.SetMetadata(ctx, "web", "e1000000000007", "autoscaler", "on"); err != nil {
		t.Fatal(err)
	}
	if m := machineByID(t, e, "web", "e1000000000007"); m.Config.Metadata["autoscaler"] != "on" {
		t.Errorf("metadata after set = %v", m.Config.Metadata)
	}
	if err := e.flaps.DeleteMetadata(ctx, "web", "e1000000000007", "autoscaler"); err != nil {
		t.Fatal(err)
	}
	md, _ = e.flaps.GetMetadata(ctx, "web", "e1000000000007")
	if _, ok := md["autoscaler"]; ok {
		t.Errorf("metadata after delete = %v", md)
	}
	for _, c := range e.srv.Calls() {
		if c.Op == flytest.OpMetadataSet || c.Op == flytest.OpMetadataDelete {
			if c.Status != http.StatusNoContent {
				t.Errorf("%s answered %d, want 204", c.Op, c.Status)
			}
		}
	}
	if got := strings.Join(ops(e.srv.Mutations()), ","); got != "metadata_set,metadata_delete" {
		t.Errorf("mutations = %s", got)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()

	bad := fly.NewClientFromOptions(fly.ClientOptions{BaseURL: e.srv.URL, AccessToken: "fo1_wrong"})
	if _, err := bad.GetOrganizationBySlug(ctx, "my-org"); err == nil || !strings.Contains(err.Error(), "non-200 status code: 401") {
		t.Errorf("graphql with a wrong token: %v", err)
	}
	fc, err := flaps.NewWithOptions(ctx, flaps.NewClientOpts{Tokens: tokens.Parse("fo1_wrong")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = fc.List(ctx, "web", "")
	flapsErr(t, err, http.StatusUnauthorized, "unauthorized")
	_, err = fc.Start(ctx, "web", "e1000000000003", "")
	flapsErr(t, err, http.StatusUnauthorized, "unauthorized")
	if e.srv.Count("web", "started") != 3 {
		t.Error("an unauthorized start changed state")
	}
	if n := len(e.srv.Mutations()); n != 1 {
		t.Errorf("mutations = %d, want the refused start counted", n)
	}

	// A macaroon token: GraphQL gets every token, flaps only the macaroon.
	const mixed = "FlyV1 fm2_abc,fo1_user"
	srv := flytest.New(loadOrg(t, "small.json"), flytest.Options{Token: mixed})
	defer srv.Close()
	t.Setenv("FLY_FLAPS_BASE_URL", srv.URL)
	fc, err = flaps.NewWithOptions(ctx, flaps.NewClientOpts{Tokens: tokens.Parse(mixed)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fc.List(ctx, "web", ""); err != nil {
		t.Errorf("flaps with a macaroon: %v", err)
	}
	api := fly.NewClientFromOptions(fly.ClientOptions{BaseURL: srv.URL, AccessToken: mixed})
	if _, err := api.GetOrganizationBySlug(ctx, "my-org"); err != nil {
		t.Errorf("graphql with a macaroon: %v", err)
	}
}

func TestInjectedFaults(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	ctx := context.Background()

	e.srv.Inject(flytest.Fault{Op: flytest.OpList, App: "web", Status: http.StatusTooManyRequests, Body: `{"error":"rate limit exceeded"}`, RetryAfter: 1500 * time.Millisecond, Times: 1})
	resp, body := e.do(t, http.MethodGet, "/v1/apps/idle/machines", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("other app hit by the fault: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, http.MethodGet, "/v1/apps/web/machines", nil, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || body != `{"error":"rate limit exceeded"}` {
		t.Errorf("injected 429: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if _, err := e.flaps.List(ctx, "web", ""); err != nil {
		t.Errorf("fault with Times 1 fired twice: %v", err)
	}

	e.srv.Inject(flytest.Fault{Op: flytest.OpStart, Status: http.StatusInternalServerError})
	_, err := e.flaps.Start(ctx, "web", "e1000000000003", "")
	flapsErr(t, err, http.StatusInternalServerError, "Internal Server Error")
	if e.srv.Count("web", "started") != 3 {
		t.Error("a failed start changed state")
	}
	e.srv.Inject(flytest.Fault{Op: flytest.OpGraphQLApps, Status: http.StatusInternalServerError, Times: 1})
	if _, err := e.api.GetAppsForOrganization(ctx, "org-small"); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("graphql fault: %v", err)
	}
	e.srv.ClearFaults()
	if _, err := e.flaps.Start(ctx, "web", "e1000000000003", ""); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}

	// Latency only.
	e.srv.Inject(flytest.Fault{Op: flytest.OpGet, Latency: 150 * time.Millisecond, Times: 1})
	start := time.Now()
	if _, err := e.flaps.Get(ctx, "web", "e1000000000003"); err != nil || time.Since(start) < 150*time.Millisecond {
		t.Errorf("slow get: %v after %v", err, time.Since(start))
	}
}

func TestFaultProbabilityIsSeeded(t *testing.T) {
	run := func() string {
		srv := flytest.New(loadOrg(t, "small.json"), flytest.Options{Seed: 42})
		defer srv.Close()
		srv.Inject(flytest.Fault{Op: flytest.OpGet, Status: http.StatusServiceUnavailable, Probability: 0.5})
		var b strings.Builder
		for range 32 {
			resp, err := http.Get(srv.URL + "/v1/apps/web/machines/e1000000000001")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				b.WriteByte('.')
			} else {
				b.WriteByte('x')
			}
		}
		return b.String()
	}
	a, b := run(), run()
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Errorf("probability 0.5 gave %s", a)
	}
}

// TestRateLimit runs on the bubble's clock: Fly's limits refill in real
// time, which a loaded machine would let pass between requests.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newMemEnv(t, "small.json", flytest.Options{RateLimit: true})
		for i := 1; i <= 4; i++ {
			resp, body := e.do(t, http.MethodGet, "/v1/apps/web/machines", nil, nil)
			want := http.StatusOK
			if i == 4 {
				want = http.StatusTooManyRequests
			}
			if resp.StatusCode != want {
				t.Fatalf("list %d: %d %s, want %d", i, resp.StatusCode, body, want)
			}
			if i == 4 && (body != `{"error":"rate limit exceeded"}` || resp.Header.Get("Retry-After") != "1") {
				t.Errorf("429 body %s Retry-After %q", body, resp.Header.Get("Retry-After"))
			}
		}
		// Lists are app-scoped: another app has its own budget.
		if resp, _ := e.do(t, http.MethodGet, "/v1/apps/idle/machines", nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("list of another app: %d", resp.StatusCode)
		}
		_, err := e.flaps.List(context.Background(), "web", "")
		flapsErr(t, err, http.StatusTooManyRequests, "rate limit exceeded")

		// Get allows a burst of 10 per machine; starts are machine-scoped.
		for i := 1; i <= 11; i++ {
			resp, _ := e.do(t, http.MethodGet, "/v1/apps/web/machines/e1000000000001", nil, nil)
			if (resp.StatusCode == http.StatusOK) != (i <= 10) {
				t.Errorf("get %d: %d", i, resp.StatusCode)
			}
		}
		for _, id := range []string{"e1000000000003", "e1000000000004", "e1000000000005", "e1000000000006"} {
			if _, err := e.flaps.Start(context.Background(), "web", id, ""); err != nil {
				t.Errorf("start %s: %v", id, err)
			}
		}
	})
}

func TestLatencyHonoursCancellation(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{Latency: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.flaps.Start(ctx, "web", "e1000000000003", "")
	// fly-go's retrying transport reports "request canceled" rather than
	// wrapping the context's error.
	if err == nil || ctx.Err() == nil {
		t.Errorf("err = %v, ctx.Err() = %v; want both set", err, ctx.Err())
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("cancelled request took %v", el)
	}
	// The abandoned request is recorded (499) and had no effect.
	deadline := time.Now().Add(2 * time.Second)
	for len(e.srv.Calls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	calls := e.srv.Calls()
	if len(calls) != 1 || calls[0].Status != 499 || calls[0].Op != flytest.OpStart {
		t.Errorf("calls = %+v", calls)
	}
	if e.srv.Count("web", "started") != 3 {
		t.Error("a cancelled start changed state")
	}
}

// TestPeakInFlight: the server records, per app, the most Machines API
// requests outstanding at once, latency included.
func TestPeakInFlight(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{Latency: time.Second})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := e.flaps.List(ctx, "web", ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := e.flaps.List(ctx, "web", ""); err != nil {
		t.Fatal(err)
	}
	if got := e.srv.PeakInFlight("web"); got != 5 {
		t.Errorf("peak in flight for web = %d, want 5 (five lists sent at once, one after)", got)
	}
	if got := e.srv.PeakInFlight("other"); got != 0 {
		t.Errorf("peak in flight for an app never called = %d", got)
	}
	e.srv.ResetCalls()
	if got := e.srv.PeakInFlight("web"); got != 0 {
		t.Errorf("peak after ResetCalls = %d, want 0", got)
	}
}

func TestConcurrency(t *testing.T) {
	e := newEnv(t, "fleet-250.json", flytest.Options{})
	ctx := context.Background()
	apps := e.srv.Apps()

	var wg sync.WaitGroup
	errs := make(chan error, len(apps)*2)
	for _, name := range apps {
		wg.Go(func() {
			ms, err := e.flaps.List(ctx, name, "")
			if err != nil {
				errs <- err
				return
			}
			for _, m := range ms {
				if m.State == "stopped" {
					if _, err := e.flaps.Start(ctx, name, m.ID, ""); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.srv.Count("my-app-001", "stopped"); n != 0 {
		t.Errorf("my-app-001 still has %d stopped", n)
	}

	// Racing starts of one machine: exactly one wins.
	id := e.srv.Machines("my-app-150")[0].ID
	if err := e.flaps.Stop(ctx, "my-app-150", fly.StopMachineInput{ID: id}, ""); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	won := 0
	for range 10 {
		wg.Go(func() {
			if _, err := e.flaps.Start(ctx, "my-app-150", id, ""); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d concurrent starts succeeded, want 1", won)
	}
}

func TestFaultAfterTheEffect(t *testing.T) {
	e := newEnv(t, "small.json", flytest.Options{})
	launch := map[string]any{"config": map[string]any{"image": "registry.fly.io/idle:deployment-02"}}
	// Raw requests: fly-go itself would resend after a 503 or a drop.
	raw := func(method, path string, body any) (int, error) {
		data, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(data))
		req.Header.Set("Authorization", tokens.Parse(testToken).FlapsHeader())
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	// A create answered 503 after the machine was made.
	e.srv.Inject(flytest.Fault{Op: flytest.OpLaunch, App: "idle", Status: http.StatusServiceUnavailable, After: true, Times: 1})
	if st, err := raw(http.MethodPost, "/v1/apps/idle/machines", launch); st != http.StatusServiceUnavailable {
		t.Errorf("create: %d %v, want 503", st, err)
	}
	if n := e.srv.Count("idle", ""); n != 4 {
		t.Errorf("%d machines after a create whose answer was lost, want 4: it took effect", n)
	}

	// A create whose connection drops after the machine was made.
	e.srv.Inject(flytest.Fault{Op: flytest.OpLaunch, App: "idle", Drop: true, After: true, Times: 1})
	if st, err := raw(http.MethodPost, "/v1/apps/idle/machines", launch); err == nil {
		t.Errorf("create answered %d, want the connection dropped", st)
	}
	if n := e.srv.Count("idle", ""); n != 5 {
		t.Errorf("%d machines after a dropped create, want 5: it took effect", n)
	}

	// A destroy answered 500 after the machine is gone.
	e.srv.Inject(flytest.Fault{Op: flytest.OpDestroy, App: "web", Status: http.StatusInternalServerError, After: true, Times: 1})
	if st, err := raw(http.MethodDelete, "/v1/apps/web/machines/e1000000000003?kill=true", nil); st != http.StatusInternalServerError {
		t.Errorf("destroy: %d %v, want 500", st, err)
	}
	for _, m := range e.srv.Machines("web") {
		if m.ID == "e1000000000003" {
			t.Errorf("machine %s is %s, want it destroyed: the destroy took effect", m.ID, m.State)
		}
	}

	// A drop before the effect changes nothing.
	e.srv.Inject(flytest.Fault{Op: flytest.OpLaunch, App: "idle", Drop: true, Times: 1})
	if st, err := raw(http.MethodPost, "/v1/apps/idle/machines", launch); err == nil {
		t.Errorf("create answered %d, want the connection dropped", st)
	}
	if n := e.srv.Count("idle", ""); n != 5 {
		t.Errorf("%d machines after a create dropped before it was handled, want 5", n)
	}

	// A call is logged once its handler returns, which may be just after
	// the client saw its connection dropped, so a dropped call can be
	// logged after the call that followed it: compare per operation.
	var got map[string][]int
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got = map[string][]int{}
		n := 0
		for _, c := range e.srv.Calls() {
			got[c.Op] = append(got[c.Op], c.Status)
			n++
		}
		if n >= 4 || time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(got[flytest.OpLaunch])
	if want := []int{0, 0, 503}; !slices.Equal(got[flytest.OpLaunch], want) {
		t.Errorf("creates logged with statuses %v, want %v: a drop is logged as 0", got[flytest.OpLaunch], want)
	}
	if want := []int{500}; !slices.Equal(got[flytest.OpDestroy], want) {
		t.Errorf("destroys logged with statuses %v, want %v", got[flytest.OpDestroy], want)
	}
}
