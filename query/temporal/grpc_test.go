package temporal

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"path"
	"strings"
	"sync"
	"testing"

	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/superfly/fly-autoscaler/query/promtest"
	"github.com/superfly/fly-autoscaler/query/redact"
)

// wireServer is a gRPC server on loopback that answers the three
// WorkflowService calls of the source from go.temporal.io/api's types,
// over TLS, and records what it received. The real server's tests are in
// query/temporal/servertest, a module of its own; this one runs in
// milliseconds and sees the bytes and headers.
type wireServer struct {
	addr, caPEM string
	noInfo      bool // answer GetSystemInfo Unimplemented, as a server too old to know it

	mu       sync.Mutex
	received []wireCall
}

type wireCall struct {
	method, namespace, auth, contentType string
	req                                  []byte
}

func startWireServer(t *testing.T, noInfo bool) *wireServer {
	t.Helper()
	pki := promtest.NewPKI(t)
	certPEM, keyPEM := pki.Issue(t, "temporal.test")
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &wireServer{addr: ln.Addr().String(), caPEM: pki.CAPEM, noInfo: noInfo}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})),
		grpc.ForceServerCodec(wireCodec{}), grpc.UnknownServiceHandler(s.handle))
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return s
}

func (s *wireServer) handle(_ any, stream grpc.ServerStream) error {
	var req wireMessage
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	method, _ := grpc.MethodFromServerStream(stream)
	md, _ := metadata.FromIncomingContext(stream.Context())
	first := func(k string) string { return strings.Join(md.Get(k), ",") }
	s.mu.Lock()
	s.received = append(s.received, wireCall{method, first("temporal-namespace"), first("authorization"), first("content-type"), req.b})
	s.mu.Unlock()

	var resp proto.Message
	switch path.Base(method) {
	case "GetSystemInfo":
		if s.noInfo {
			return status.Error(codes.Unimplemented, "unknown method GetSystemInfo")
		}
		resp = &workflowservice.GetSystemInfoResponse{ServerVersion: "9.8.7"}
	case "DescribeTaskQueue":
		var r workflowservice.DescribeTaskQueueRequest
		if err := proto.Unmarshal(req.b, &r); err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if strings.HasPrefix(r.GetTaskQueue().GetName(), "denied-") {
			return status.Errorf(codes.PermissionDenied, "request with authorization %q is not allowed here", first("authorization"))
		}
		// 10 tasks per type number: workflow 10, activity 20.
		resp = &workflowservice.DescribeTaskQueueResponse{Stats: &taskqueuepb.TaskQueueStats{ApproximateBacklogCount: 10 * int64(r.GetTaskQueueType())}}
	case "CountWorkflowExecutions":
		resp = &workflowservice.CountWorkflowExecutionsResponse{Count: 5}
	default:
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	return stream.SendMsg(&wireMessage{b: b})
}

func (s *wireServer) calls() []wireCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wireCall(nil), s.received...)
}

// TestTemporalOverGRPC: the source's requests as a gRPC server receives
// them (method, headers, bytes), its reading of the answers, the log line
// of the connection, and a failure's kind and redaction.
func TestTemporalOverGRPC(t *testing.T) {
	const apiKey = "tmprl-grpc-test-api-key"
	s := startWireServer(t, false)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{Name: "jobs", Address: s.addr, Namespace: "my-ns.a1b2c", TaskQueue: "jobs-$APP_NAME",
		APIKey: apiKey, TLSCA: s.caPEM, TLSServerName: "temporal.test"}
	backlog, err := New(cfg, WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer backlog.Close()
	if v, err := backlog.Collect(context.Background(), "app-a"); err != nil || v != 30 {
		t.Fatalf("backlog %v, %v; want 10 workflow + 20 activity tasks", v, err)
	}
	cfg.TaskQueue, cfg.Query = "", `TaskQueue = "jobs-$APP_NAME"`
	running, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()
	if v, err := running.Collect(context.Background(), "app-a"); err != nil || v != 5 {
		t.Fatalf("running %v, %v; want 5", v, err)
	}

	calls := s.calls()
	var methods []string
	for _, c := range calls {
		methods = append(methods, path.Base(c.method))
		if c.auth != "Bearer "+apiKey || !strings.HasPrefix(c.contentType, "application/grpc") {
			t.Errorf("%s: authorization %q, content type %q", c.method, c.auth, c.contentType)
		}
		wantNS := "my-ns.a1b2c"
		if strings.HasSuffix(c.method, "/GetSystemInfo") {
			wantNS = ""
		}
		if c.namespace != wantNS {
			t.Errorf("%s: temporal-namespace %q, want %q", c.method, c.namespace, wantNS)
		}
	}
	if got, want := strings.Join(methods, " "), "GetSystemInfo DescribeTaskQueue DescribeTaskQueue GetSystemInfo CountWorkflowExecutions"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	var count workflowservice.CountWorkflowExecutionsRequest
	if err := proto.Unmarshal(calls[len(calls)-1].req, &count); err != nil || count.GetQuery() != `ExecutionStatus="Running" AND (TaskQueue = "jobs-app-a")` {
		t.Errorf("count request %v, %v", &count, err)
	}
	if !strings.Contains(logs.String(), "temporal server reached") || !strings.Contains(logs.String(), "server_version=9.8.7") {
		t.Errorf("log %q, want the server reached and its version", logs.String())
	}

	// A refusal that echoes the API key: the kind first, the key redacted.
	cfg.TaskQueue, cfg.Query = "denied-$APP_NAME", ""
	denied, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer denied.Close()
	_, err = denied.Collect(context.Background(), "app-a")
	want := `describe task queue "denied-app-a" (workflow): permission denied (check api-key or the client certificate): request with authorization "Bearer ` + redact.Redacted + `" is not allowed here`
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("error's code %v, want PermissionDenied", status.Code(err))
	}
}

// TestTemporalOldServer: a server that does not know GetSystemInfo
// counts as reached, as with Temporal's SDK.
func TestTemporalOldServer(t *testing.T) {
	s := startWireServer(t, true)
	src, err := New(Config{Name: "jobs", Address: s.addr, Namespace: "default", Query: "true",
		TLSCA: s.caPEM, TLSServerName: "temporal.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if v, err := src.Collect(context.Background(), "app-a"); err != nil || v != 5 {
		t.Errorf("%v, %v; want 5", v, err)
	}
}
