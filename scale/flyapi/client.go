package flyapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/flaps"
	"github.com/superfly/fly-go/tokens"

	"github.com/superfly/fly-autoscaler/scale"
)

// Default Fly API endpoints.
const (
	defaultAPIBaseURL      = "https://api.fly.io"
	defaultMachinesBaseURL = "https://api.machines.dev"
)

// Options configure the real Fly clients.
type Options struct {
	// Token is the Fly API token (FlyV1 macaroons or a user token).
	Token string
	// APIBaseURL is the GraphQL API's base URL (default defaultAPIBaseURL).
	APIBaseURL string
	// MachinesBaseURL is the Machines API's base URL (default
	// defaultMachinesBaseURL). Every Machines API request goes to its
	// scheme and host, whatever base fly-go's flaps client chose itself.
	MachinesBaseURL string
	// UserAgent is sent with every request.
	UserAgent string
	// Transport, when set, is the HTTP transport under fly-go's own.
	Transport http.RoundTripper
	// Unauthorized, when set, follows "401 unauthorized: " in the error of
	// a request either API refused for its token: what to check, in the
	// caller's words (this package names no flag or variable).
	Unauthorized string
}

// NewClients builds the GraphQL client and the one Machines API client
// that serves every app of a run. Their errors carry the meanings the
// domain decides from (scale.ErrBusy, scale.APIError, ...).
func NewClients(ctx context.Context, o Options) (scale.Apps, scale.Machines, error) {
	base := cmp.Or(o.APIBaseURL, defaultAPIBaseURL)
	machinesBase := cmp.Or(o.MachinesBaseURL, defaultMachinesBaseURL)
	u, err := url.Parse(machinesBase)
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("machines api base url %q: not an absolute URL", machinesBase)
	}
	rt := o.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	toks := tokens.Parse(o.Token)
	gqlTransport := &fly.Transport{Tokens: toks, UserAgent: o.UserAgent, UnderlyingTransport: o.Transport}
	gql := fly.NewClientFromOptions(fly.ClientOptions{
		Tokens:    toks,
		BaseURL:   base,
		Transport: gqlTransport,
	})
	fc, err := flaps.NewWithOptions(ctx, flaps.NewClientOpts{Tokens: toks, UserAgent: o.UserAgent, Transport: &rebase{base: rt, to: u}})
	if err != nil {
		return nil, nil, fmt.Errorf("machines api client: %w", err)
	}
	return &apps{c: gql, unauthorized: o.Unauthorized}, &machines{
		c:            fc,
		http:         &http.Client{Transport: rt},
		base:         u,
		auth:         toks.FlapsHeader(),
		ua:           o.UserAgent,
		unauthorized: o.Unauthorized,
	}, nil
}

// rebase sends every request to the scheme and host of to. fly-go's flaps
// client reads its base URL from the process environment and has no option
// for it; this keeps the Machines API's base one option, set by the caller.
type rebase struct {
	base http.RoundTripper
	to   *url.URL
}

func (t *rebase) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.EqualFold(req.URL.Scheme, t.to.Scheme) && strings.EqualFold(req.URL.Host, t.to.Host) {
		return t.base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.to.Scheme, t.to.Host, ""
	return t.base.RoundTrip(r)
}

// apps is fly-go's GraphQL client with errors cleaned of the query text.
type apps struct {
	c            *fly.Client
	unauthorized string
}

func (a *apps) GetOrganizationBySlug(ctx context.Context, slug string) (*fly.Organization, error) {
	org, err := a.c.GetOrganizationBySlug(ctx, slug)
	return org, graphQLError(err, a.unauthorized)
}

// appsPageQuery is the org listing's query: fly-go's GetAppsForOrganization
// (the same root field, arguments and pages of 200), asking only for what a
// run reads of an app. fly-go's asks for whole app records, which a run
// over 10,000 apps would decode and hold at once (about 1 KB an app in
// fly.App).
const appsPageQuery = `query($org: ID, $after: String) {
	apps(type: "container", first: 200, after: $after, organizationId: $org) {
		pageInfo { hasNextPage endCursor }
		nodes { name currentRelease { status } }
	}
}`

// ListApps lists the org's apps, every page, as name and release status.
func (a *apps) ListApps(ctx context.Context, orgID string) ([]scale.ListedApp, error) {
	var out []scale.ListedApp
	cursor := ""
	for {
		req := a.c.NewRequest(appsPageQuery)
		req.Var("org", orgID)
		req.Var("after", cursor)
		data, err := a.c.RunWithContext(ctx, req)
		if err != nil {
			return nil, graphQLError(err, a.unauthorized)
		}
		if out == nil {
			out = make([]scale.ListedApp, 0, len(data.Apps.Nodes))
		}
		for _, n := range data.Apps.Nodes {
			la := scale.ListedApp{Name: n.Name}
			if n.CurrentRelease != nil {
				la.ReleaseStatus = n.CurrentRelease.Status
			}
			out = append(out, la)
		}
		next := data.Apps.PageInfo
		if !next.HasNextPage {
			return out, nil
		}
		if next.EndCursor == "" || next.EndCursor == cursor {
			// A cursor that does not move would list the same page forever.
			return nil, fmt.Errorf("list apps: page after %q has no further cursor", cursor)
		}
		cursor = next.EndCursor
	}
}

func (a *apps) GetAppCurrentReleaseMachines(ctx context.Context, app string) (*fly.Release, error) {
	rel, err := a.c.GetAppCurrentReleaseMachines(ctx, app)
	return rel, graphQLError(err, a.unauthorized)
}

// machines is fly-go's Machines API client with its errors classified (see
// classify) and a lease acquisition that fails fast: fly-go's AcquireLease
// retries every error, a lease held by someone else included, for up to a
// minute, where a busy machine should simply be passed over.
type machines struct {
	c            *flaps.Client
	http         *http.Client
	base         *url.URL
	auth         string
	ua           string
	unauthorized string
}

// List lists the app's machines with one request (the same call fly-go's
// List makes: GET /v1/apps/{app}/machines, with state as the raw query
// string, "state=started" say, as fly-go sends it) and decodes the same
// records. It is a run's one call per app, and fly-go's client spends more
// CPU on each of its requests than on the request itself: a tracing span,
// the token's macaroon parsed for the span's caveat names, HTTP metric
// attributes, and a retry loop of its own over this package's transport,
// which already retries a read (see the package documentation). Sent
// directly, a steady run takes some 10% less CPU per app, fake server
// included (BenchmarkRunPerApp), and the command itself 11 to 17% less
// (make bench); a real token's macaroon, which fly-go parses on every
// request, would make the difference larger.
func (m *machines) List(ctx context.Context, app, state string) ([]*fly.Machine, error) {
	u := m.base.JoinPath("v1", "apps", app, "machines")
	u.RawQuery = state
	list := make([]*fly.Machine, 0)
	if err := m.send(ctx, http.MethodGet, u, &list); err != nil {
		return nil, classify(err, m.unauthorized)
	}
	for _, fm := range list {
		if fm == nil {
			continue
		}
		fm.RemoveCompatChecks() // as fly-go's List does
	}
	return list, nil
}

func (m *machines) Start(ctx context.Context, app, id, nonce string) (*fly.MachineStartResponse, error) {
	r, err := m.c.Start(ctx, app, id, nonce)
	return r, classify(err, m.unauthorized)
}

func (m *machines) Stop(ctx context.Context, app string, in fly.StopMachineInput, nonce string) error {
	return classify(m.c.Stop(ctx, app, in, nonce), m.unauthorized)
}

func (m *machines) Suspend(ctx context.Context, app, id, nonce string) error {
	return classify(m.c.Suspend(ctx, app, id, nonce), m.unauthorized)
}

func (m *machines) Launch(ctx context.Context, app string, in fly.LaunchMachineInput) (*fly.Machine, error) {
	nm, err := m.c.Launch(ctx, app, in)
	return nm, classify(err, m.unauthorized)
}

func (m *machines) Destroy(ctx context.Context, app string, in fly.RemoveMachineInput, nonce string) error {
	return classify(m.c.Destroy(ctx, app, in, nonce), m.unauthorized)
}

func (m *machines) RefreshLease(ctx context.Context, app, id string, ttl *int, nonce string) (*fly.MachineLease, error) {
	l, err := m.c.RefreshLease(ctx, app, id, ttl, nonce)
	return l, classify(err, m.unauthorized)
}

func (m *machines) ReleaseLease(ctx context.Context, app, id, nonce string) error {
	return classify(m.c.ReleaseLease(ctx, app, id, nonce), m.unauthorized)
}

// SetMetadata sets one key of the machine's metadata through the metadata
// endpoint (POST .../metadata/{key}): no update, no restart.
func (m *machines) SetMetadata(ctx context.Context, app, id, key, value string) error {
	return classify(m.c.SetMetadata(ctx, app, id, key, value), m.unauthorized)
}

// DeleteMetadata deletes one key of the machine's metadata (DELETE
// .../metadata/{key}).
func (m *machines) DeleteMetadata(ctx context.Context, app, id, key string) error {
	return classify(m.c.DeleteMetadata(ctx, app, id, key), m.unauthorized)
}

// AcquireLease takes the machine's lease with one request (the same call
// fly-go makes: POST .../lease?ttl=N). A lease held by someone else is
// scale.ErrBusy.
func (m *machines) AcquireLease(ctx context.Context, app, id string, ttl *int) (*fly.MachineLease, error) {
	l, err := m.acquireLease(ctx, app, id, ttl)
	return l, classify(err, m.unauthorized)
}

func (m *machines) acquireLease(ctx context.Context, app, id string, ttl *int) (*fly.MachineLease, error) {
	u := m.base.JoinPath("v1", "apps", app, "machines", id, "lease")
	if ttl != nil {
		u.RawQuery = fmt.Sprintf("ttl=%d", *ttl)
	}
	out := new(fly.MachineLease)
	if err := m.send(ctx, http.MethodPost, u, out); err != nil {
		return nil, err
	}
	return out, nil
}

// send makes one Machines API request without a body, as fly-go's flaps
// client would (its Authorization and User-Agent headers, its
// *flaps.FlapsError for an answer above 299, read by classify), and decodes
// a successful answer's JSON into out.
func (m *machines) send(ctx context.Context, method string, u *url.URL, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", m.auth)
	if m.ua != "" {
		req.Header.Set("User-Agent", m.ua)
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return stripURL(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode > 299 {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return err
		}
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil {
			msg = e.Error
			if e.Message != "" {
				msg = e.Message
			}
		}
		return &flaps.FlapsError{OriginalError: errors.New(msg), ResponseStatusCode: resp.StatusCode, ResponseBody: body}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	// Read to the end, so that the connection is kept for the next request.
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
