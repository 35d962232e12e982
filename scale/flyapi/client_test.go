package flyapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/tokens"

	"github.com/superfly/fly-autoscaler/scale"
	"github.com/superfly/fly-autoscaler/scale/flytest"
)

func TestNewClientsRefusesARelativeBase(t *testing.T) {
	if _, _, err := NewClients(t.Context(), Options{Token: "x", MachinesBaseURL: "not a url"}); err == nil {
		t.Errorf("a relative Machines API base URL was accepted")
	}
}

// TestClassifyPinsTheMachinesAPITexts pins the texts of the Machines API's
// 412 answers this package reads a machine's state from, and the statuses
// it gives meanings to, so that an API or fly-go upgrade that changes them
// fails here.
func TestClassifyPinsTheMachinesAPITexts(t *testing.T) {
	for _, tc := range []struct {
		status int
		msg    string
		want   error
	}{
		{409, "machine ID x lease currently held by y", scale.ErrBusy},
		{404, "machine not found", scale.ErrNotFound},
		{412, "failed_precondition: unable to start machine from current state: 'started'", scale.ErrAlreadyStarted},
		{412, "failed_precondition: machine still active, refusing to start", scale.ErrAlreadyStarted},
		{412, "failed_precondition: unable to stop machine from current state: 'stopped'", scale.ErrAlreadyStopped},
		{412, "failed_precondition: unable to stop machine from current state: 'stopping'", scale.ErrAlreadyStopped},
		{412, "failed_precondition: unable to suspend machine from current state: 'suspended'", scale.ErrAlreadyStopped},
		{412, "failed_precondition: unable to suspend machine from current state: 'suspending'", scale.ErrAlreadyStopped},
		{412, "failed_precondition: unable to stop machine from current state: 'replacing'", nil},
		{500, "internal error", nil},
	} {
		body, _ := json.Marshal(map[string]string{"error": tc.msg})
		var err error = answerError(tc.status, body, false, "", "check the token")
		for _, k := range []error{scale.ErrBusy, scale.ErrNotFound, scale.ErrAlreadyStarted, scale.ErrAlreadyStopped} {
			if errors.Is(err, k) != (k == tc.want) {
				t.Errorf("%d %q: errors.Is(%v) = %v", tc.status, tc.msg, k, !(k == tc.want))
			}
		}
		if want := fmt.Sprintf("%d: %s", tc.status, tc.msg); err.Error() != want {
			t.Errorf("text %q, want %q", err.Error(), want)
		}
		var ae scale.APIError
		if !errors.As(err, &ae) || ae.Uncertain() {
			t.Errorf("%d: not an APIError with the verdict uncertain=false", tc.status)
		}
	}
	err := answerError(401, []byte(`{"error":"unauthorized"}`), false, "", "check the token")
	if err.Error() != "401 unauthorized: check the token" {
		t.Errorf("401: %q", err)
	}
}

// TestListAppsAsksOnlyForWhatARunReads: the org listing asks for each
// app's name and release status and nothing more (fly-go's
// GetAppsForOrganization asks for whole app records, which a run over
// 10,000 apps would decode at once), and lists the same apps with the same
// statuses as fly-go's, every page of 200.
func TestListAppsAsksOnlyForWhatARunReads(t *testing.T) {
	org := &flytest.Org{Slug: "list-org", Apps: []flytest.AppSpec{
		{Name: "web-%03d", Count: 420},
		{Name: "deploying", ReleaseStatus: "running"},
		{Name: "never-deployed", ReleaseStatus: "none"},
	}}
	srv := flytest.New(org, flytest.Options{Token: trToken})
	t.Cleanup(srv.Close)
	rec := &recorder{base: http.DefaultTransport, note: graphQLQuery}
	a, _, err := NewClients(t.Context(), Options{Token: trToken, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	o, err := a.GetOrganizationBySlug(t.Context(), "list-org")
	if err != nil {
		t.Fatal(err)
	}
	rec.reset()
	got, err := a.ListApps(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}

	queries := rec.all()
	if len(queries) != 3 {
		t.Fatalf("%d GraphQL requests for 422 apps, want 3 pages", len(queries))
	}
	for _, q := range queries {
		if sel := selectionOf(q, "nodes"); sel != "name currentRelease { status }" {
			t.Errorf("the listing asks for nodes { %s }, want only the name and the release status", sel)
		}
	}

	full, err := fly.NewClientFromOptions(fly.ClientOptions{Tokens: tokens.Parse(trToken), BaseURL: srv.URL}).GetAppsForOrganization(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]scale.ListedApp, len(full))
	for i, fa := range full {
		want[i].Name = fa.Name
		if fa.CurrentRelease != nil {
			want[i].ReleaseStatus = fa.CurrentRelease.Status
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %d apps, fly-go %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	statuses := map[string]string{}
	for _, la := range got {
		statuses[la.Name] = la.ReleaseStatus
	}
	if statuses["deploying"] != "running" || statuses["never-deployed"] != "" || statuses["web-001"] != "complete" {
		t.Errorf("release statuses %q, %q, %q", statuses["deploying"], statuses["never-deployed"], statuses["web-001"])
	}
}

func firstDiff(a, b []scale.ListedApp) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// graphQLQuery notes the query of a GraphQL request, and nothing of
// others (a recorder's note).
func graphQLQuery(req *http.Request) (string, error) {
	if !strings.HasSuffix(req.URL.Path, "/graphql") || req.Body == nil {
		return "", nil
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return "", err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	var b struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return "", err
	}
	return b.Query, nil
}

var spaces = regexp.MustCompile(`\s+`)

// selectionOf returns the selection set of the first field named field in
// query, its whitespace normalised: "name currentRelease { status }".
func selectionOf(query, field string) string {
	i := regexp.MustCompile(`\b` + field + `\s*\{`).FindStringIndex(query)
	if i == nil {
		return ""
	}
	depth := 0
	for j := i[1] - 1; j < len(query); j++ {
		switch query[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return strings.TrimSpace(spaces.ReplaceAllString(query[i[1]:j], " "))
			}
		}
	}
	return ""
}

// TestListAppsStopsOnACursorThatDoesNotMove: a server that answers every
// page with the same cursor ends the listing with an error, not a loop.
func TestListAppsStopsOnACursorThatDoesNotMove(t *testing.T) {
	var pages atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pages.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":{"apps":{"pageInfo":{"hasNextPage":true,"endCursor":"MjAw"},"nodes":[{"name":"a"}]}}}`)
	}))
	t.Cleanup(srv.Close)
	a, _, err := NewClients(t.Context(), Options{Token: trToken, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ListApps(t.Context(), "org"); err == nil || !strings.Contains(err.Error(), "no further cursor") {
		t.Errorf("err %v, want the listing stopped", err)
	}
	if n := pages.Load(); n != 2 {
		t.Errorf("%d pages asked for, want 2", n)
	}
}

// TestListAsFlyGoLists: List, which sends its request itself rather than
// through fly-go's flaps client, sends the same request fly-go's List sends
// (path, raw query, Authorization and User-Agent), answers the same records
// (configs, events, incomplete configs, other groups), reads its errors'
// status and message as fly-go reads them, and reads every answer to its
// end, so that a run's lists share one connection.
func TestListAsFlyGoLists(t *testing.T) {
	org := &flytest.Org{Slug: "list-org", Apps: []flytest.AppSpec{{Name: "mixed", ReleaseVersion: 3, Machines: []flytest.MachineSpec{
		{State: "started", Count: 2},
		{State: "stopped"},
		{State: "suspended", ReleaseVersion: 2},
		{State: "created"},
		{State: "started", Group: "worker"},
		{State: "stopped", HostStatus: "unreachable"},
		{State: "destroyed"},
	}}}}
	srv := flytest.New(org, flytest.Options{Token: trToken})
	t.Cleanup(srv.Close)
	const ua = "fly-autoscaler/test"
	ours := &recorder{base: http.DefaultTransport, note: requestLine}
	_, m, err := NewClients(t.Context(), Options{Token: trToken, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, UserAgent: ua, Transport: ours})
	if err != nil {
		t.Fatal(err)
	}
	theirs := &recorder{base: http.DefaultTransport, note: requestLine}
	fc := flyGoFlaps(t, srv.URL, trToken, ua, theirs)

	for _, query := range []string{"", "state=started"} {
		ours.reset()
		theirs.reset()
		got, err := m.List(t.Context(), "mixed", query)
		if err != nil {
			t.Fatalf("List(%q): %v", query, err)
		}
		want, err := fc.List(t.Context(), "mixed", query)
		if err != nil {
			t.Fatalf("fly-go List(%q): %v", query, err)
		}
		if len(want) == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("List(%q) answered %d machines unlike fly-go's %d:\n%s\nwant\n%s", query, len(got), len(want), jsonOf(got), jsonOf(want))
		}
		o, f := ours.all(), theirs.all()
		if len(o) != 1 || len(f) != 1 {
			t.Fatalf("List(%q): %d requests, fly-go %d; want one each", query, len(o), len(f))
		}
		if o[0] != f[0] {
			t.Errorf("List(%q) sent\n  %s\nfly-go sends\n  %s", query, o[0], f[0])
		}
	}
	if n := len(slices.DeleteFunc(mustList(t, m, "state=started"), func(x *fly.Machine) bool { return x.State == "started" })); n != 0 {
		t.Errorf("List(state=started) answered %d machines not started", n)
	}

	// Errors: an unknown app, and a token the API refuses.
	_, err = m.List(t.Context(), "no-such-app", "")
	_, ferr := fc.List(t.Context(), "no-such-app", "")
	if want := flyGoError(ferr); !errors.Is(err, scale.ErrNotFound) || err.Error() != want {
		t.Errorf("unknown app: %v (ErrNotFound %v), want %v as ErrNotFound", err, errors.Is(err, scale.ErrNotFound), want)
	}
	_, bad, err := NewClients(t.Context(), Options{Token: "FlyV1 fm2_wrong", APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, Unauthorized: "check the token"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.List(t.Context(), "mixed", ""); err == nil || err.Error() != "401 unauthorized: check the token" {
		t.Errorf("refused token: %v", err)
	}

	// Every answer is read to its end: twenty lists, one after another,
	// share one connection.
	conns := srv.Connections()
	for range 20 {
		mustList(t, m, "")
	}
	if n := srv.Connections() - conns; n > 1 {
		t.Errorf("20 lists opened %d connections, want at most one", n)
	}
}

func mustList(t *testing.T, m scale.Machines, query string) []*fly.Machine {
	t.Helper()
	list, err := m.List(t.Context(), "mixed", query)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func jsonOf(v any) string {
	b, _ := json.MarshalIndent(v, "  ", " ")
	return string(b)
}

// requestLine notes a request's method, path, raw query and its
// Authorization and User-Agent headers (a recorder's note).
func requestLine(req *http.Request) (string, error) {
	return fmt.Sprintf("%s %s?%s Authorization=%q User-Agent=%q",
		req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Get("Authorization"), req.Header.Get("User-Agent")), nil
}

// recorder passes requests on to base and keeps what note says of each
// ("" keeps nothing).
type recorder struct {
	base  http.RoundTripper
	note  func(*http.Request) (string, error)
	mu    sync.Mutex
	lines []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	line, err := r.note(req)
	if err != nil {
		return nil, err
	}
	if line != "" {
		r.mu.Lock()
		r.lines = append(r.lines, line)
		r.mu.Unlock()
	}
	return r.base.RoundTrip(req)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = nil
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}
