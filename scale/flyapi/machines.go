package flyapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	fly "github.com/superfly/fly-go"
)

// nonceHeader carries a lease's nonce, as fly-go's flaps.NonceHeader names
// it (and sends it: in lower case, not canonicalised).
const nonceHeader = "fly-machine-lease-nonce"

// machines is the Machines API client behind scale.Machines: every call
// the product makes, sent as fly-go's flaps client sends it (the same
// method, path, query, body, Authorization, User-Agent and nonce headers;
// TestMachinesAsFlyGo compares them) and decoded into fly-go's types, but
// through one Transport's attempts, whose outcome it reads directly: no
// second retry loop, no rewritten answers, and the verdict on uncertainty
// from the attempts themselves. Its errors carry the meanings the domain
// decides from (see answerError).
type machines struct {
	t            *Transport
	base         *url.URL
	auth         string // the Authorization header
	ua           string
	unauthorized string
}

// List lists the app's machines (GET /v1/apps/{app}/machines, with state
// as the raw query string, "state=started" say, as fly-go sends it).
func (m *machines) List(ctx context.Context, app, state string) ([]*fly.Machine, error) {
	list := make([]*fly.Machine, 0)
	if err := m.call(ctx, http.MethodGet, app, "", state, nil, nil, &list); err != nil {
		return nil, err
	}
	for _, fm := range list {
		if fm != nil {
			fm.RemoveCompatChecks() // as fly-go's List does
		}
	}
	return list, nil
}

func (m *machines) Start(ctx context.Context, app, id, nonce string) (*fly.MachineStartResponse, error) {
	out := new(fly.MachineStartResponse)
	if err := m.call(ctx, http.MethodPost, app, "/"+id+"/start", "", optNonce(nonce), nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *machines) Stop(ctx context.Context, app string, in fly.StopMachineInput, nonce string) error {
	return m.call(ctx, http.MethodPost, app, "/"+in.ID+"/stop", "", optNonce(nonce), in, nil)
}

func (m *machines) Suspend(ctx context.Context, app, id, nonce string) error {
	return m.call(ctx, http.MethodPost, app, "/"+id+"/suspend", "", optNonce(nonce), nil, nil)
}

// Launch creates a machine (POST .../machines): sent once, unless it
// certainly never left (see the package documentation).
func (m *machines) Launch(ctx context.Context, app string, in fly.LaunchMachineInput) (*fly.Machine, error) {
	out := new(fly.Machine)
	if err := m.call(ctx, http.MethodPost, app, "", "", nil, in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *machines) Destroy(ctx context.Context, app string, in fly.RemoveMachineInput, nonce string) error {
	return m.call(ctx, http.MethodDelete, app, "/"+in.ID, "kill="+strconv.FormatBool(in.Kill), optNonce(nonce), nil, nil)
}

// AcquireLease takes the machine's lease with one request (POST
// .../lease?ttl=N), retried as the transport retries it. A lease held by
// someone else is scale.ErrBusy at once: fly-go's AcquireLease would retry
// it for up to a minute, where a busy machine should simply be passed over.
func (m *machines) AcquireLease(ctx context.Context, app, id string, ttl *int) (*fly.MachineLease, error) {
	out := new(fly.MachineLease)
	if err := m.call(ctx, http.MethodPost, app, "/"+id+"/lease", ttlQuery(ttl), nil, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *machines) RefreshLease(ctx context.Context, app, id string, ttl *int, nonce string) (*fly.MachineLease, error) {
	out := new(fly.MachineLease)
	// fly-go sends the nonce header with a refresh even when empty.
	if err := m.call(ctx, http.MethodPost, app, "/"+id+"/lease", ttlQuery(ttl), &nonce, nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (m *machines) ReleaseLease(ctx context.Context, app, id, nonce string) error {
	return m.call(ctx, http.MethodDelete, app, "/"+id+"/lease", "", optNonce(nonce), nil, nil)
}

// SetMetadata sets one key of the machine's metadata through the metadata
// endpoint (POST .../metadata/{key}): no update, no restart.
func (m *machines) SetMetadata(ctx context.Context, app, id, key, value string) error {
	return m.call(ctx, http.MethodPost, app, "/"+id+"/metadata/"+key, "", nil, map[string]any{"value": value}, nil)
}

// DeleteMetadata deletes one key of the machine's metadata (DELETE
// .../metadata/{key}).
func (m *machines) DeleteMetadata(ctx context.Context, app, id, key string) error {
	return m.call(ctx, http.MethodDelete, app, "/"+id+"/metadata/"+key, "", nil, nil, nil)
}

func optNonce(nonce string) *string {
	if nonce == "" {
		return nil
	}
	return &nonce
}

func ttlQuery(ttl *int) string {
	if ttl == nil {
		return ""
	}
	return "ttl=" + strconv.Itoa(*ttl)
}

// call makes one Machines API call: method on /v1/apps/{app}/machines{sub}
// with the raw query, the nonce header when nonce is set, in as a JSON body
// when set, and a successful answer's JSON decoded into out when set. It
// builds the request as fly-go's flaps client does (the path and query
// parsed and resolved against the base, so that the same URL goes out).
func (m *machines) call(ctx context.Context, method, app, sub, query string, nonce *string, in, out any) error {
	ref, err := url.Parse("/v1/apps/" + app + "/machines" + sub)
	if err != nil {
		return fmt.Errorf("machines api path: %w", err)
	}
	ref.RawQuery = query
	u := m.base.ResolveReference(&url.URL{Path: ref.Path, RawQuery: ref.RawQuery})
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return err
	}
	if nonce != nil {
		req.Header[nonceHeader] = []string{*nonce}
	}
	if body != nil {
		req.Header["Content-Type"] = []string{"application/json"}
	}
	req.Header.Set("Authorization", m.auth)
	req.Header.Set("User-Agent", m.ua)

	ep := rtClassify(method, req.URL.Path, body)
	x := m.t.exchange(req, body, ep)
	uncertain := x.ambiguous && !ep.read
	if x.err != nil {
		return networkError(x, uncertain)
	}
	resp := x.resp
	defer resp.Body.Close()
	switch s := resp.StatusCode; {
	case s < 300:
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
		}
	case s == http.StatusNotFound && x.ambiguous && ep.goneOK:
		// A destroy or a lease release that finds its object gone after
		// an earlier attempt failed: what was asked for holds, whether
		// that attempt did it or not.
	default:
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			data = nil
		}
		return answerError(s, data, uncertain, x.gaveUp, m.unauthorized)
	}
	// Read to the end, so that the connection is kept for the next request.
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
