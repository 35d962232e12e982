package temporal

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The three calls of Temporal's gRPC WorkflowService (temporal.api.
// workflowservice.v1, the protos of go.temporal.io/api) that the source
// makes, with the few fields it sends and reads, encoded by hand: the
// generated types of go.temporal.io/api would link all of Temporal's API,
// some 5 MB of the binary, for three messages. wire_test.go
// checks each encoding against go.temporal.io/api's own types.
const (
	temporalService               = "/temporal.api.workflowservice.v1.WorkflowService/"
	methodGetSystemInfo           = temporalService + "GetSystemInfo"
	methodDescribeTaskQueue       = temporalService + "DescribeTaskQueue"
	methodCountWorkflowExecutions = temporalService + "CountWorkflowExecutions"
	taskQueueKindNormal           = 1 // temporal.api.enums.v1.TaskQueueKind
	fieldNamespace                = 1 // of DescribeTaskQueueRequest and CountWorkflowExecutionsRequest
	fieldDescribeTaskQueue        = 2 // DescribeTaskQueueRequest.task_queue (TaskQueue)
	fieldDescribeTaskQueueType    = 3 // DescribeTaskQueueRequest.task_queue_type
	fieldDescribeReportStats      = 8 // DescribeTaskQueueRequest.report_stats
	fieldTaskQueueName            = 1 // TaskQueue.name
	fieldTaskQueueKind            = 2 // TaskQueue.kind
	fieldCountQuery               = 2 // CountWorkflowExecutionsRequest.query
	fieldDescribeStats            = 5 // DescribeTaskQueueResponse.stats (TaskQueueStats)
	fieldStatsBacklog             = 1 // TaskQueueStats.approximate_backlog_count
	fieldCountCount               = 1 // CountWorkflowExecutionsResponse.count
	fieldSystemInfoServerVersion  = 1 // GetSystemInfoResponse.server_version
)

// wireMessage is a protobuf message as bytes, what wireCodec sends and
// receives.
type wireMessage struct{ b []byte }

// wireCodec passes wireMessages through. Its name makes the content type
// application/grpc+proto, what the frontend expects.
type wireCodec struct{}

func (wireCodec) Name() string { return "proto" }

func (wireCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(*wireMessage)
	if !ok {
		return nil, fmt.Errorf("wire codec: cannot marshal %T", v)
	}
	return m.b, nil
}

func (wireCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*wireMessage)
	if !ok {
		return fmt.Errorf("wire codec: cannot unmarshal into %T", v)
	}
	m.b = append(m.b[:0], data...)
	return nil
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, field protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// describeTaskQueueRequest encodes a DescribeTaskQueueRequest for the
// statistics of one type of a normal task queue.
func describeTaskQueueRequest(namespace, queue string, typ uint64) []byte {
	tq := appendString(nil, fieldTaskQueueName, queue)
	tq = appendVarint(tq, fieldTaskQueueKind, taskQueueKindNormal)
	b := appendString(nil, fieldNamespace, namespace)
	b = protowire.AppendTag(b, fieldDescribeTaskQueue, protowire.BytesType)
	b = protowire.AppendBytes(b, tq)
	b = appendVarint(b, fieldDescribeTaskQueueType, typ)
	return appendVarint(b, fieldDescribeReportStats, 1)
}

// countWorkflowExecutionsRequest encodes a CountWorkflowExecutionsRequest.
func countWorkflowExecutionsRequest(namespace, query string) []byte {
	return appendString(appendString(nil, fieldNamespace, namespace), fieldCountQuery, query)
}

// backlogCount decodes the approximate backlog count of a
// DescribeTaskQueueResponse; ok is false when it holds no statistics.
func backlogCount(resp []byte) (n int64, ok bool, err error) {
	stats, _, ok, err := wireField(resp, fieldDescribeStats, protowire.BytesType)
	if err != nil || !ok {
		return 0, false, err
	}
	_, v, _, err := wireField(stats, fieldStatsBacklog, protowire.VarintType)
	return int64(v), true, err
}

// workflowCount decodes the count of a CountWorkflowExecutionsResponse.
func workflowCount(resp []byte) (int64, error) {
	_, v, _, err := wireField(resp, fieldCountCount, protowire.VarintType)
	return int64(v), err
}

// serverVersion decodes the server version of a GetSystemInfoResponse.
func serverVersion(resp []byte) string {
	b, _, _, _ := wireField(resp, fieldSystemInfoServerVersion, protowire.BytesType)
	return string(b)
}

// wireField returns the last value of field num, of wire type typ, in the
// message msg: the bytes of a length-delimited field, or the number of a
// varint field. found is false when msg has none; an absent scalar is 0,
// as in proto3.
func wireField(msg []byte, num protowire.Number, typ protowire.Type) (b []byte, v uint64, found bool, err error) {
	for len(msg) > 0 {
		fnum, ftyp, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, 0, false, errors.New("malformed answer: " + protowire.ParseError(n).Error())
		}
		msg = msg[n:]
		switch {
		case fnum == num && ftyp == typ && typ == protowire.BytesType:
			b, n = protowire.ConsumeBytes(msg)
			found = true
		case fnum == num && ftyp == typ && typ == protowire.VarintType:
			v, n = protowire.ConsumeVarint(msg)
			found = true
		default:
			n = protowire.ConsumeFieldValue(fnum, ftyp, msg)
		}
		if n < 0 {
			return nil, 0, false, errors.New("malformed answer: " + protowire.ParseError(n).Error())
		}
		msg = msg[n:]
	}
	return b, v, found, nil
}
