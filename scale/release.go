package scale

import (
	"context"
	"strings"
	"sync"
	"time"

	fly "github.com/superfly/fly-go"
)

// ReleaseFreshness is the oldest a release status from the org listing
// may be when its app is observed, so that a deploy started during a long
// run is seen before the app is touched. The listing is read again every
// releaseRefresh while the run lasts (one call per 200 apps); an app whose
// status is older all the same (a refresh failed or is slow) has its
// release read on its own.
const ReleaseFreshness = 30 * time.Second

// releaseRefresh leaves a refresh of the listing 10 s to complete.
const releaseRefresh = 20 * time.Second

// releaseBook is the release status of the org's apps, from the listing
// that selected them and then from a refresh every releaseRefresh.
type releaseBook struct {
	orgID string
	now   func() time.Time

	mu     sync.Mutex
	status map[string]string
	at     time.Time // when the listing behind status started
}

func (b *releaseBook) update(list []ListedApp, at time.Time) {
	status := make(map[string]string, len(list))
	for _, a := range list {
		status[a.Name] = a.ReleaseStatus
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status, b.at = status, at
}

// lookup returns app's release status and whether it is fresh enough to
// act on (the app is in a listing at most ReleaseFreshness old).
func (b *releaseBook) lookup(app string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.status[app]
	return st, ok && b.now().Sub(b.at) <= ReleaseFreshness
}

// refresh reads the org listing again every releaseRefresh until the
// returned stop is called. A failed refresh leaves the book as it was:
// apps observed once it is too old read their release on their own.
func (b *releaseBook) refresh(ctx context.Context, c Apps) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(releaseRefresh)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			at := b.now()
			lctx, lcancel := context.WithTimeout(ctx, listTimeout)
			list, err := c.ListApps(lctx, b.orgID)
			lcancel()
			if err == nil {
				b.update(list, at)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func releaseStatus(r *fly.Release) string {
	if r == nil {
		return ""
	}
	return r.Status
}

// releaseInProgress reports whether a release with this status is being
// rolled out: scaling now would fight the deploy.
func releaseInProgress(status string) bool {
	switch strings.ToLower(status) {
	case "running", "pending":
		return true
	}
	return false
}
