package servertest

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Task queue prefixes whose requests the frontend fails, as a server in
// trouble would.
const (
	deniedPrefix      = "denied-"      // PermissionDenied, echoing the request's authorization header
	unavailablePrefix = "unavailable-" // Unavailable
	slowPrefix        = "slow-"        // no answer before the caller's deadline
)

// request is one metric request the frontend received.
type request struct {
	method    string // DescribeTaskQueue or CountWorkflowExecutions
	namespace string
	subject   string // the task queue, or the query
	auth      string // the authorization header
	at        time.Time
}

// server is a real Temporal server with a frontend interceptor that
// records the metric requests and injects the faults above.
type server struct {
	*temporaltest.TestServer
	runnerOnce sync.Once
	mu         sync.Mutex
	requests   []request
}

func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{}
	s.TestServer = temporaltest.NewServer(temporaltest.WithT(t),
		temporaltest.WithBaseServerOptions(temporal.WithChainedFrontendGrpcInterceptors(s.intercept)))
	return s
}

func (s *server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	r := request{method: path.Base(info.FullMethod), at: time.Now()}
	switch req := req.(type) {
	case *workflowservice.DescribeTaskQueueRequest:
		r.namespace, r.subject = req.GetNamespace(), req.GetTaskQueue().GetName()
	case *workflowservice.CountWorkflowExecutionsRequest:
		r.namespace, r.subject = req.GetNamespace(), req.GetQuery()
	default:
		return handler(ctx, req)
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		r.auth = strings.Join(md.Get("authorization"), ",")
	}
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
	switch {
	case strings.Contains(r.subject, deniedPrefix):
		return nil, status.Errorf(codes.PermissionDenied, "request with authorization %q is not allowed here", r.auth)
	case strings.Contains(r.subject, unavailablePrefix):
		return nil, status.Error(codes.Unavailable, "frontend is shutting down")
	case strings.Contains(r.subject, slowPrefix):
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return handler(ctx, req)
}

// metricRequests returns the recorded requests whose subject contains sub.
func (s *server) metricRequests(sub string) []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []request
	for _, r := range s.requests {
		if strings.Contains(r.subject, sub) {
			out = append(out, r)
		}
	}
	return out
}

// startJobs starts n workflows on queue with no worker polling it: each
// one's first workflow task stays in the queue's backlog, and each counts as
// running.
func (s *server) startJobs(t *testing.T, queue string, n int) {
	t.Helper()
	c := s.GetDefaultClient()
	for i := range n {
		_, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
			ID: fmt.Sprintf("%s-job-%d", queue, i), TaskQueue: queue,
		}, "Job")
		if err != nil {
			t.Fatalf("start workflow on %s: %v", queue, err)
		}
	}
}

// runnerQueue is where the worker that schedules activities runs.
const runnerQueue = "runner"

// scheduleActivities is a workflow that schedules n activities on queue,
// where no worker polls, and waits for them forever: they stay in the
// activity backlog of queue.
func scheduleActivities(ctx workflow.Context, queue string, n int) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: queue, StartToCloseTimeout: time.Hour})
	var futures []workflow.Future
	for range n {
		futures = append(futures, workflow.ExecuteActivity(ctx, "Work"))
	}
	for _, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// startActivities puts n activity tasks into queue's activity backlog,
// through a workflow that runs on runnerQueue.
func (s *server) startActivities(t *testing.T, queue string, n int) {
	t.Helper()
	s.runnerOnce.Do(func() {
		s.NewWorkerWithOptions(runnerQueue, func(r worker.Registry) {
			r.RegisterWorkflowWithOptions(scheduleActivities, workflow.RegisterOptions{Name: "ScheduleActivities"})
		}, worker.Options{})
	})
	_, err := s.GetDefaultClient().ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: "schedule-" + queue, TaskQueue: runnerQueue,
	}, "ScheduleActivities", queue, n)
	if err != nil {
		t.Fatalf("start activity scheduler for %s: %v", queue, err)
	}
}

// eventually calls check until it returns nil, at most 60 times over about
// 30s: the backlog statistics and the visibility store catch up with a
// start asynchronously.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	var err error
	for range 60 {
		if err = check(); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// maxPerWindow returns the most requests that fall in any window of
// length w.
func maxPerWindow(rs []request, w time.Duration) int {
	times := make([]time.Time, len(rs))
	for i, r := range rs {
		times[i] = r.at
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}
