package flyapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/superfly/fly-go/flaps"

	"github.com/superfly/fly-autoscaler/scale"
)

// TestRebase: every request goes to the base's scheme and host, with its
// path kept, whatever origin fly-go addressed it to.
func TestRebase(t *testing.T) {
	var got []string
	to := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, r.URL.Path) }))
	defer to.Close()
	u, err := url.Parse(to.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &rebase{base: http.DefaultTransport, to: u}, Timeout: 5 * time.Second}
	for _, addr := range []string{"https://api.machines.dev/v1/apps/x/machines", to.URL + "/v1/apps/y/machines"} {
		resp, err := c.Get(addr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(got) != 2 || got[0] != "/v1/apps/x/machines" || got[1] != "/v1/apps/y/machines" {
		t.Errorf("paths served %q", got)
	}
}

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
		err := classify(fmt.Errorf("failed to stop VM x: %w", &flaps.FlapsError{OriginalError: errors.New(tc.msg), ResponseStatusCode: tc.status}), "check the token")
		for _, k := range []error{scale.ErrBusy, scale.ErrNotFound, scale.ErrAlreadyStarted, scale.ErrAlreadyStopped} {
			if errors.Is(err, k) != (k == tc.want) {
				t.Errorf("%d %q: errors.Is(%v) = %v", tc.status, tc.msg, k, !(k == tc.want))
			}
		}
		if want := fmt.Sprintf("%d: %s", tc.status, tc.msg); err.Error() != want {
			t.Errorf("text %q, want %q", err.Error(), want)
		}
		var ae scale.APIError
		if !errors.As(err, &ae) || ae.Uncertain() != (tc.status >= 500) {
			t.Errorf("%d: not an APIError with the verdict uncertain=%v", tc.status, tc.status >= 500)
		}
	}
	err := classify(&flaps.FlapsError{OriginalError: errors.New("unauthorized"), ResponseStatusCode: 401}, "check the token")
	if err.Error() != "401 unauthorized: check the token" {
		t.Errorf("401: %q", err)
	}
}
