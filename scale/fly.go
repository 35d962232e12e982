package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

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
	fc, err := flaps.NewWithOptions(ctx, flaps.NewClientOpts{Tokens: toks, UserAgent: o.UserAgent, Transport: o.Transport})
	if err != nil {
		return nil, nil, fmt.Errorf("machines api client: %w", err)
	}
	flapsBase := os.Getenv("FLY_FLAPS_BASE_URL")
	if flapsBase == "" {
		flapsBase = DefaultFlapsBaseURL
	}
	u, err := url.Parse(flapsBase)
	if err != nil {
		return nil, nil, fmt.Errorf("FLY_FLAPS_BASE_URL: %w", err)
	}
	rt := o.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	return apps, &flyMachines{
		Client: fc,
		http:   &http.Client{Transport: rt},
		base:   u,
		auth:   toks.FlapsHeader(),
		ua:     o.UserAgent,
	}, nil
}

// flyMachines is fly-go's Machines API client with a lease acquisition that
// fails fast: fly-go's AcquireLease retries every error, a lease held by
// someone else included, for up to a minute, where a busy machine should
// simply be passed over.
type flyMachines struct {
	*flaps.Client
	http *http.Client
	base *url.URL
	auth string
	ua   string
}

// AcquireLease takes the machine's lease with one request (the same call
// fly-go makes: POST .../lease?ttl=N). A lease held by someone else is a
// *flaps.FlapsError with status 409.
func (c *flyMachines) AcquireLease(ctx context.Context, app, id string, ttl *int) (*fly.MachineLease, error) {
	u := c.base.JoinPath("v1", "apps", app, "machines", id, "lease")
	if ttl != nil {
		u.RawQuery = fmt.Sprintf("ttl=%d", *ttl)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", c.auth)
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, stripURL(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode > 299 {
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
		return nil, &flaps.FlapsError{OriginalError: errors.New(msg), ResponseStatusCode: resp.StatusCode, ResponseBody: body}
	}
	out := new(fly.MachineLease)
	if err := json.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("decode lease: %w", err)
	}
	return out, nil
}

// stripURL keeps the operation and cause of a transport error, not the URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// graphQLError drops the query text fly-go puts in front of a GraphQL error
// ("failed to run query(...) { ... }: <cause>") and the URL of a transport
// error, keeping the cause.
func graphQLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return stripURL(ue)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "failed to run ") {
		if i := strings.LastIndex(msg, "}: "); i >= 0 {
			msg = msg[i+3:]
		}
	}
	if strings.HasSuffix(msg, "non-200 status code: 401") {
		msg = unauthorized
	}
	if msg != err.Error() {
		return &opError{msg: msg, err: err}
	}
	return err
}

// unauthorized explains a 401 from either API.
const unauthorized = "401 unauthorized: check the Fly API token (FAS_API_TOKEN; create one with fly tokens create org)"
