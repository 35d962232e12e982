package temporal

import (
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/proto"
)

// The hand-encoded messages of wire.go against the generated
// types of go.temporal.io/api, which the tests may link and the binary
// does not.

func TestTemporalWireMethodsAndQueueTypes(t *testing.T) {
	for got, want := range map[string]string{
		methodGetSystemInfo:           workflowservice.WorkflowService_GetSystemInfo_FullMethodName,
		methodDescribeTaskQueue:       workflowservice.WorkflowService_DescribeTaskQueue_FullMethodName,
		methodCountWorkflowExecutions: workflowservice.WorkflowService_CountWorkflowExecutions_FullMethodName,
	} {
		if got != want {
			t.Errorf("method %q, want %q", got, want)
		}
	}
	for name, want := range map[string]enumspb.TaskQueueType{
		QueueWorkflow: enumspb.TASK_QUEUE_TYPE_WORKFLOW,
		QueueActivity: enumspb.TASK_QUEUE_TYPE_ACTIVITY,
		QueueNexus:    enumspb.TASK_QUEUE_TYPE_NEXUS,
	} {
		if got := queueTypes[name]; got != uint64(want) {
			t.Errorf("queue type %s: %d, want %d (%s)", name, got, want, want)
		}
	}
	if len(queueTypes) != 3 {
		t.Errorf("%d queue types, want 3", len(queueTypes))
	}
}

func TestTemporalWireRequests(t *testing.T) {
	for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY, enumspb.TASK_QUEUE_TYPE_NEXUS} {
		var req workflowservice.DescribeTaskQueueRequest
		if err := proto.Unmarshal(describeTaskQueueRequest("my-ns.a1b2c", "jobs-my-app-é", uint64(typ)), &req); err != nil {
			t.Fatal(err)
		}
		want := &workflowservice.DescribeTaskQueueRequest{
			Namespace:     "my-ns.a1b2c",
			TaskQueue:     &taskqueuepb.TaskQueue{Name: "jobs-my-app-é", Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
			TaskQueueType: typ,
			ReportStats:   true,
		}
		if !proto.Equal(&req, want) {
			t.Errorf("describe task queue request %v, want %v", &req, want)
		}
	}

	q := `ExecutionStatus="Running" AND (TaskQueue = "jobs-a" OR WorkflowType = "x")`
	var count workflowservice.CountWorkflowExecutionsRequest
	if err := proto.Unmarshal(countWorkflowExecutionsRequest("default", q), &count); err != nil {
		t.Fatal(err)
	}
	if want := (&workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: q}); !proto.Equal(&count, want) {
		t.Errorf("count request %v, want %v", &count, want)
	}
}

func TestTemporalWireAnswers(t *testing.T) {
	marshal := func(m proto.Message) []byte {
		t.Helper()
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		resp     *workflowservice.DescribeTaskQueueResponse
		n        int64
		hasStats bool
	}{
		{"backlog among other fields", &workflowservice.DescribeTaskQueueResponse{
			Pollers: []*taskqueuepb.PollerInfo{{Identity: "worker-1"}, {Identity: "worker-2"}},
			Stats:   &taskqueuepb.TaskQueueStats{ApproximateBacklogCount: 1 << 40, TasksAddRate: 2.5, RateLimitingActive: true},
			Config:  &taskqueuepb.TaskQueueConfig{},
		}, 1 << 40, true},
		{"empty backlog", &workflowservice.DescribeTaskQueueResponse{Stats: &taskqueuepb.TaskQueueStats{}}, 0, true},
		{"no statistics", &workflowservice.DescribeTaskQueueResponse{Pollers: []*taskqueuepb.PollerInfo{{Identity: "w"}}}, 0, false},
	} {
		n, ok, err := backlogCount(marshal(tc.resp))
		if err != nil || n != tc.n || ok != tc.hasStats {
			t.Errorf("%s: %d, %v, %v; want %d, %v", tc.name, n, ok, err, tc.n, tc.hasStats)
		}
	}

	n, err := workflowCount(marshal(&workflowservice.CountWorkflowExecutionsResponse{
		Count:  123456,
		Groups: []*workflowservice.CountWorkflowExecutionsResponse_AggregationGroup{{Count: 7}},
	}))
	if err != nil || n != 123456 {
		t.Errorf("count %d, %v; want 123456", n, err)
	}
	if n, err := workflowCount(nil); err != nil || n != 0 {
		t.Errorf("empty count answer: %d, %v; want 0", n, err)
	}

	v := serverVersion(marshal(&workflowservice.GetSystemInfoResponse{
		ServerVersion: "1.32.0",
		Capabilities:  &workflowservice.GetSystemInfoResponse_Capabilities{SignalAndQueryHeader: true},
	}))
	if v != "1.32.0" {
		t.Errorf("server version %q", v)
	}

	// A truncated answer is an error, not a value.
	full := marshal(&workflowservice.DescribeTaskQueueResponse{Stats: &taskqueuepb.TaskQueueStats{ApproximateBacklogCount: 300}})
	if _, _, err := backlogCount(full[:len(full)-1]); err == nil || !strings.Contains(err.Error(), "malformed answer") {
		t.Errorf("truncated answer: %v, want malformed", err)
	}
}
