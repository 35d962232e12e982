package flyapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	fly "github.com/superfly/fly-go"
	"github.com/superfly/fly-go/flaps"
	"github.com/superfly/fly-go/tokens"

	"github.com/superfly/fly-autoscaler/scale"
)

// flyGoFlaps returns fly-go's flaps client for the Machines API at base,
// sending through rt: the client this package's Machines client is
// compared with. fly-go reads its base from FLY_FLAPS_BASE_URL.
func flyGoFlaps(t testing.TB, base, token, ua string, rt http.RoundTripper) *flaps.Client {
	t.Helper()
	t.Setenv("FLY_FLAPS_BASE_URL", base)
	t.Setenv("FLY_FORCE_INSTANCE_ID", "")
	fc, err := flaps.NewWithOptions(t.Context(), flaps.NewClientOpts{Tokens: tokens.Parse(token), UserAgent: ua, Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	return fc
}

// flyGoError is the status and message of an error of fly-go's flaps
// client, as this package's Machines client words an answer's error.
func flyGoError(err error) string {
	var fe *flaps.FlapsError
	if !errors.As(err, &fe) {
		return "not a FlapsError: " + fmt.Sprint(err)
	}
	return fmt.Sprintf("%d: %s", fe.ResponseStatusCode, fe.Error())
}

// wireRequest notes everything of a request the API sees: method, path,
// raw query, every header but those of the connection, and the body.
func wireRequest(r *http.Request) string {
	body, _ := io.ReadAll(r.Body)
	var hs []string
	for k, v := range r.Header {
		if k == "Connection" {
			continue
		}
		hs = append(hs, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(hs)
	return fmt.Sprintf("%s %s ?%s\n    %s\n    body %s", r.Method, r.URL.Path, r.URL.RawQuery, strings.Join(hs, " "), bytes.TrimSpace(body))
}

// TestMachinesAsFlyGo: every Machines API call the product makes sends,
// through this package's client, exactly the request fly-go's flaps client
// sends for it (method, path, query, headers, FlyV1 and user tokens'
// Authorization, User-Agent, the nonce header, the JSON body), and
// decodes the same answer into the same value.
func TestMachinesAsFlyGo(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	answers := map[string]string{
		"list":   `[{"id":"m1","state":"started","config":{"image":"img"}}]`,
		"start":  `{"previous_state":"stopped","migrated":false,"new_host":""}`,
		"lease":  `{"status":"success","data":{"nonce":"abc","expires_at":1700000000,"owner":"o","description":"d"}}`,
		"launch": `{"id":"m9","state":"created","region":"ord","config":{"image":"img"}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, wireRequest(r))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.Contains(r.URL.Path, "/gone"):
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"machine not found"}`)
		case strings.Contains(r.URL.Path, "/settled"):
			w.WriteHeader(http.StatusPreconditionFailed)
			io.WriteString(w, `{"error":"failed_precondition","message":"unable to stop machine from current state: 'stopped'"}`)
		case r.Method == http.MethodGet:
			io.WriteString(w, answers["list"])
		case strings.HasSuffix(r.URL.Path, "/start"):
			io.WriteString(w, answers["start"])
		case strings.HasSuffix(r.URL.Path, "/lease") && r.Method == http.MethodPost:
			io.WriteString(w, answers["lease"])
		case strings.HasSuffix(r.URL.Path, "/machines") && r.Method == http.MethodPost:
			io.WriteString(w, answers["launch"])
		default:
			io.WriteString(w, `{"ok":true}`)
		}
	}))
	t.Cleanup(srv.Close)
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}
	ttl := 30
	launch := fly.LaunchMachineInput{Region: "ord", Name: "n", Config: &fly.MachineConfig{Image: "img", Metadata: map[string]string{"k": "v"}}}
	for _, tok := range []string{benchToken, "FlyV1 " + benchToken[len("FlyV1 "):] + ",fm2_lJPEEEE=", "fo1_usertoken"} {
		for _, ua := range []string{"fly-autoscaler/test", ""} {
			_, m, err := NewClients(t.Context(), Options{Token: tok, APIBaseURL: srv.URL, MachinesBaseURL: srv.URL, UserAgent: ua})
			if err != nil {
				t.Fatal(err)
			}
			ours := m.(*machines)
			fc := flyGoFlaps(t, srv.URL, tok, ua, nil)
			calls := []struct {
				name        string
				ours, flyGo func() (any, error)
			}{
				{"list", func() (any, error) { return ours.List(t.Context(), "app-1", "") },
					func() (any, error) { return fc.List(t.Context(), "app-1", "") }},
				{"list started", func() (any, error) { return ours.List(t.Context(), "app-1", "state=started") },
					func() (any, error) { return fc.List(t.Context(), "app-1", "state=started") }},
				{"start", func() (any, error) { return ours.Start(t.Context(), "app-1", "m1", "") },
					func() (any, error) { return fc.Start(t.Context(), "app-1", "m1", "") }},
				{"start leased", func() (any, error) { return ours.Start(t.Context(), "app-1", "m1", "n1") },
					func() (any, error) { return fc.Start(t.Context(), "app-1", "m1", "n1") }},
				{"stop", func() (any, error) {
					return nil, ours.Stop(t.Context(), "app-1", fly.StopMachineInput{ID: "m1", Signal: "SIGINT"}, "n1")
				}, func() (any, error) {
					return nil, fc.Stop(t.Context(), "app-1", fly.StopMachineInput{ID: "m1", Signal: "SIGINT"}, "n1")
				}},
				{"suspend", func() (any, error) { return nil, ours.Suspend(t.Context(), "app-1", "m1", "n1") },
					func() (any, error) { return nil, fc.Suspend(t.Context(), "app-1", "m1", "n1") }},
				{"launch", func() (any, error) { return ours.Launch(t.Context(), "app-1", launch) },
					func() (any, error) { return fc.Launch(t.Context(), "app-1", launch) }},
				{"destroy", func() (any, error) {
					return nil, ours.Destroy(t.Context(), "app-1", fly.RemoveMachineInput{ID: "m1", Kill: true}, "n1")
				}, func() (any, error) {
					return nil, fc.Destroy(t.Context(), "app-1", fly.RemoveMachineInput{ID: "m1", Kill: true}, "n1")
				}},
				{"destroy unleased", func() (any, error) {
					return nil, ours.Destroy(t.Context(), "app-1", fly.RemoveMachineInput{ID: "m1"}, "")
				}, func() (any, error) {
					return nil, fc.Destroy(t.Context(), "app-1", fly.RemoveMachineInput{ID: "m1"}, "")
				}},
				{"acquire lease", func() (any, error) { return ours.AcquireLease(t.Context(), "app-1", "m1", &ttl) },
					func() (any, error) { return fc.AcquireLease(t.Context(), "app-1", "m1", &ttl) }},
				{"refresh lease", func() (any, error) { return ours.RefreshLease(t.Context(), "app-1", "m1", &ttl, "n1") },
					func() (any, error) { return fc.RefreshLease(t.Context(), "app-1", "m1", &ttl, "n1") }},
				{"release lease", func() (any, error) { return nil, ours.ReleaseLease(t.Context(), "app-1", "m1", "n1") },
					func() (any, error) { return nil, fc.ReleaseLease(t.Context(), "app-1", "m1", "n1") }},
				{"set metadata", func() (any, error) {
					return nil, ours.SetMetadata(t.Context(), "app-1", "m1", "fly-autoscaler-paused", "2026-12-05T22:00:00Z")
				}, func() (any, error) {
					return nil, fc.SetMetadata(t.Context(), "app-1", "m1", "fly-autoscaler-paused", "2026-12-05T22:00:00Z")
				}},
				{"delete metadata", func() (any, error) {
					return nil, ours.DeleteMetadata(t.Context(), "app-1", "m1", "fly-autoscaler-paused")
				}, func() (any, error) {
					return nil, fc.DeleteMetadata(t.Context(), "app-1", "m1", "fly-autoscaler-paused")
				}},
			}
			// Errors: the same status and message as fly-go reads them.
			for _, c := range []struct {
				name        string
				id          string
				want        error
				ours, flyGo func(id string) error
			}{
				{"start", "gone", scale.ErrNotFound, func(id string) error { _, err := ours.Start(t.Context(), "app-1", id, ""); return err },
					func(id string) error { _, err := fc.Start(t.Context(), "app-1", id, ""); return err }},
				{"stop", "settled", scale.ErrAlreadyStopped, func(id string) error { return ours.Stop(t.Context(), "app-1", fly.StopMachineInput{ID: id}, "") },
					func(id string) error { return fc.Stop(t.Context(), "app-1", fly.StopMachineInput{ID: id}, "") }},
				{"suspend", "settled", scale.ErrAlreadyStopped, func(id string) error { return ours.Suspend(t.Context(), "app-1", id, "") },
					func(id string) error { return fc.Suspend(t.Context(), "app-1", id, "") }},
				{"destroy", "gone", scale.ErrNotFound, func(id string) error { return ours.Destroy(t.Context(), "app-1", fly.RemoveMachineInput{ID: id}, "") },
					func(id string) error { return fc.Destroy(t.Context(), "app-1", fly.RemoveMachineInput{ID: id}, "") }},
				{"release lease", "gone", scale.ErrNotFound, func(id string) error { return ours.ReleaseLease(t.Context(), "app-1", id, "n1") },
					func(id string) error { return fc.ReleaseLease(t.Context(), "app-1", id, "n1") }},
				{"set metadata", "gone", scale.ErrNotFound, func(id string) error { return ours.SetMetadata(t.Context(), "app-1", id, "k", "v") },
					func(id string) error { return fc.SetMetadata(t.Context(), "app-1", id, "k", "v") }},
			} {
				err, ferr := c.ours(c.id), c.flyGo(c.id)
				if want := flyGoError(ferr); err == nil || err.Error() != want || !errors.Is(err, c.want) {
					t.Errorf("%s of a machine %s: %v, want %q matching %v", c.name, c.id, err, want, c.want)
				}
			}
			take()
			for _, c := range calls {
				what := fmt.Sprintf("%s (token %.12s..., user agent %q)", c.name, tok, ua)
				take()
				got, err := c.ours()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				o := take()
				want, err := c.flyGo()
				if err != nil {
					t.Fatalf("fly-go %s: %v", what, err)
				}
				f := take()
				if len(o) != 1 || len(f) != 1 {
					t.Fatalf("%s: %d requests, fly-go %d; want one each", what, len(o), len(f))
				}
				if o[0] != f[0] {
					t.Errorf("%s sent\n  %s\nfly-go sends\n  %s", what, o[0], f[0])
				}
				if jsonOf(got) != jsonOf(want) {
					t.Errorf("%s answered\n%s\nfly-go\n%s", what, jsonOf(got), jsonOf(want))
				}
			}
		}
	}
}
