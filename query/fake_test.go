package query_test

import (
	"path/filepath"
	"testing"

	"github.com/superfly/fly-autoscaler/query/promtest"
)

// The fake Prometheus of these tests is promtest's, answering from the
// fixtures under testdata/query.
type (
	reply    = promtest.Reply
	fakeProm = promtest.Fake
)

func newFakeProm(t *testing.T, replies map[string]reply) *fakeProm {
	t.Helper()
	return promtest.NewFake(t, filepath.Join("..", "testdata", "query"), replies)
}

// newLocal starts an httptest.Server on 127.0.0.1, closed when the test ends.
var newLocal = promtest.NewLocal

// closedAddr returns an http address on 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string { return "http://" + promtest.ClosedAddr(t) }

const perAppQuery = `sum(queue_depth{app="$APP_NAME"})`
