package flyapi

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"

	fly "github.com/superfly/fly-go"
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
	// defaultMachinesBaseURL); the caller reads FLY_FLAPS_BASE_URL.
	MachinesBaseURL string
	// UserAgent is sent with every request (fly-go's default when empty).
	UserAgent string
	// Transport, when set, is the HTTP transport the clients send through:
	// a Transport from NewTransport for retries and rate limits.
	Transport http.RoundTripper
	// Unauthorized, when set, follows "401 unauthorized: " in the error of
	// a request either API refused for its token: what to check, in the
	// caller's words (this package names no flag or variable).
	Unauthorized string
}

// NewClients builds the GraphQL client and the one Machines API client
// that serve every app of a run. Their errors carry the meanings the
// domain decides from (scale.ErrBusy, scale.APIError, ...).
//
// With a Transport from NewTransport as o.Transport, both send through it:
// the Machines client through its attempts directly, fly-go's GraphQL client
// as through a RoundTripper. With any other transport (or none) the Machines
// client sends each request once, over that transport, and judges
// uncertainty by the same rule.
func NewClients(_ context.Context, o Options) (scale.Apps, scale.Machines, error) {
	base := cmp.Or(o.APIBaseURL, defaultAPIBaseURL)
	machinesBase := cmp.Or(o.MachinesBaseURL, defaultMachinesBaseURL)
	u, err := url.Parse(machinesBase)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, nil, fmt.Errorf("machines api base url %q: not an absolute URL", machinesBase)
	}
	t, ok := o.Transport.(*Transport)
	if !ok {
		t = NewTransport(o.Transport, TransportOptions{MaxAttempts: 1})
	}
	toks := tokens.Parse(o.Token)
	gqlTransport := &fly.Transport{Tokens: toks, UserAgent: o.UserAgent, UnderlyingTransport: o.Transport}
	gql := fly.NewClientFromOptions(fly.ClientOptions{
		Tokens:    toks,
		BaseURL:   base,
		Transport: gqlTransport,
	})
	return &apps{c: gql, unauthorized: o.Unauthorized}, &machines{
		t:            t,
		base:         u,
		auth:         toks.FlapsHeader(),
		ua:           cmp.Or(o.UserAgent, fly.DefaultUserAgent()),
		unauthorized: o.Unauthorized,
	}, nil
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
