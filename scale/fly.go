package scale

import (
	"context"
	"fmt"
	"net/http"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/flaps"
	"github.com/superfly/fly-go/tokens"
)

// Default Fly API endpoints.
const (
	DefaultAPIBaseURL   = "https://api.fly.io"
	DefaultFlapsBaseURL = "https://api.machines.dev"
)

// ClientOptions configure the real Fly clients.
type ClientOptions struct {
	// Token is the Fly API token (FlyV1 macaroons or a user token).
	Token string
	// APIBaseURL is the GraphQL API's base URL (default DefaultAPIBaseURL).
	// The Machines API's base comes from FLY_FLAPS_BASE_URL, read by fly-go.
	APIBaseURL string
	// UserAgent is sent with every request.
	UserAgent string
	// Transport, when set, is the HTTP transport under fly-go's own.
	Transport http.RoundTripper
}

// NewFlyClients builds the GraphQL client and the one Machines API client
// that serves every app of a run.
func NewFlyClients(ctx context.Context, o ClientOptions) (Apps, Machines, error) {
	base := o.APIBaseURL
	if base == "" {
		base = DefaultAPIBaseURL
	}
	toks := tokens.Parse(o.Token)
	gqlTransport := &fly.Transport{Tokens: toks, UserAgent: o.UserAgent, UnderlyingTransport: o.Transport}
	apps := fly.NewClientFromOptions(fly.ClientOptions{
		Tokens:    toks,
		BaseURL:   base,
		Transport: gqlTransport,
	})
	m, err := flaps.NewWithOptions(ctx, flaps.NewClientOpts{Tokens: toks, UserAgent: o.UserAgent, Transport: o.Transport})
	if err != nil {
		return nil, nil, fmt.Errorf("machines api client: %w", err)
	}
	return apps, m, nil
}
