package promfake

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// get sends one request to srv and decodes the answer.
func get(t *testing.T, method, u string, form url.Values, auth string) (status int, body map[string]any) {
	t.Helper()
	var r io.Reader
	if form != nil {
		r = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, u, ct)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%s %s: %v: %s", method, u, err, b)
		}
	}
	return resp.StatusCode, body
}

func start(t *testing.T, h *Handler) *Server {
	t.Helper()
	srv, err := Start(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Errorf("URL %s, want 127.0.0.1", srv.URL)
	}
	return srv
}

func TestValues(t *testing.T) {
	h := &Handler{Values: map[string]float64{"b": 20, "a": 1.5}}
	srv := start(t, h)
	q := func(query string) string {
		return srv.URL + Path + "?" + url.Values{"query": {query}, "time": {"1700000000.5"}}.Encode()
	}
	for _, tc := range []struct {
		name, query string
		want        []any
	}{
		{"one app", `sum(depth{app="b"})`, []any{
			map[string]any{"metric": map[string]any{}, "value": []any{1700000000.5, "20"}}}},
		{"every app, sorted", `sum by (app) (depth)`, []any{
			map[string]any{"metric": map[string]any{"app": "a"}, "value": []any{1700000000.5, "1.5"}},
			map[string]any{"metric": map[string]any{"app": "b"}, "value": []any{1700000000.5, "20"}}}},
		{"an app without a value", `sum(depth{app = "c"})`, []any{}},
	} {
		status, body := get(t, http.MethodGet, q(tc.query), nil, "")
		want := map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": tc.want}}
		if status != http.StatusOK || !reflect.DeepEqual(body, want) {
			t.Errorf("%s: %d %v, want 200 %v", tc.name, status, body, want)
		}
	}
	// POST form, and a time in RFC 3339.
	status, body := get(t, http.MethodPost, srv.URL+Path, url.Values{"query": {`x{app="a"}`}, "time": {"2023-11-14T22:13:20.25Z"}}, "Bearer t")
	res := body["data"].(map[string]any)["result"].([]any)
	if status != http.StatusOK || len(res) != 1 || !reflect.DeepEqual(res[0].(map[string]any)["value"], []any{1700000000.25, "1.5"}) {
		t.Errorf("POST: %d %v", status, body)
	}
	want := []Request{
		{Method: "GET", Path: Path, Query: `sum(depth{app="b"})`, Time: "1700000000.5"},
		{Method: "GET", Path: Path, Query: `sum by (app) (depth)`, Time: "1700000000.5"},
		{Method: "GET", Path: Path, Query: `sum(depth{app = "c"})`, Time: "1700000000.5"},
		{Method: "POST", Path: Path, Query: `x{app="a"}`, Time: "2023-11-14T22:13:20.25Z", Authorization: "Bearer t"},
	}
	if got := h.Requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("requests\n%+v\nwant\n%+v", got, want)
	}
}

func TestRefused(t *testing.T) {
	var answered atomic.Int32
	h := &Handler{RejectPost: true, Answer: func(context.Context, Request) Reply { answered.Add(1); return Reply{Body: "{}"} }}
	srv := start(t, h)
	for _, tc := range []struct {
		method, path string
		form         url.Values
		status       int
		errType      string
	}{
		{http.MethodGet, "/api/v1/query_range?query=up", nil, http.StatusNotFound, "not_found"},
		{http.MethodDelete, Path + "?query=up", nil, http.StatusMethodNotAllowed, "bad_data"},
		{http.MethodGet, Path, nil, http.StatusBadRequest, "bad_data"},
		{http.MethodGet, Path + "?query=up&time=noon", nil, http.StatusBadRequest, "bad_data"},
		{http.MethodPost, Path, url.Values{"query": {"up"}}, http.StatusMethodNotAllowed, ""},
	} {
		status, body := get(t, tc.method, srv.URL+tc.path, tc.form, "")
		if status != tc.status || (tc.errType != "" && (body["status"] != "error" || body["errorType"] != tc.errType)) {
			t.Errorf("%s %s: %d %v, want %d %s", tc.method, tc.path, status, body, tc.status, tc.errType)
		}
	}
	if n := answered.Load(); n != 0 {
		t.Errorf("Answer called %d times for refused requests", n)
	}
	if n := len(h.Requests()); n != 5 {
		t.Errorf("%d requests recorded, want 5", n)
	}
}

func TestAnswer(t *testing.T) {
	h := &Handler{Values: map[string]float64{"a": 1}, Answer: func(_ context.Context, q Request) Reply {
		if q.Query == "bad" {
			return Error(http.StatusUnprocessableEntity, "execution", `no "bad"`)
		}
		return Reply{Body: `{"status":"success","data":{"resultType":"scalar","result":[1,"` + q.Authorization + `"]}}`}
	}}
	srv := start(t, h)
	status, body := get(t, http.MethodGet, srv.URL+Path+"?query=up", nil, "7")
	if status != http.StatusOK || !reflect.DeepEqual(body["data"], map[string]any{"resultType": "scalar", "result": []any{1.0, "7"}}) {
		t.Errorf("answer: %d %v", status, body)
	}
	status, body = get(t, http.MethodGet, srv.URL+Path+"?query=bad", nil, "")
	if want := map[string]any{"status": "error", "errorType": "execution", "error": `no "bad"`}; status != http.StatusUnprocessableEntity || !reflect.DeepEqual(body, want) {
		t.Errorf("error: %d %v, want 422 %v", status, body, want)
	}
}
