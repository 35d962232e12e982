package graphql

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMakeRequest(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s with Content-Type %q, want a JSON POST", r.Method, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		got = nil
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("body %q: %v", b, err)
		}
		switch got["operationName"] {
		case "Ok":
			io.WriteString(w, `{"data": {"app": {"name": "a"}}}`)
		case "Refused":
			io.WriteString(w, `{"data": null, "errors": [{"message": "no such app", "path": ["app"]}]}`)
		default:
			http.Error(w, "down", http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL, srv.Client())

	var data struct{ App struct{ Name string } }
	err := c.MakeRequest(context.Background(), &Request{OpName: "Ok", Query: "query Ok { app { name } }", Variables: map[string]string{"n": "a"}}, &Response{Data: &data})
	if err != nil || data.App.Name != "a" {
		t.Fatalf("Ok: %v, data %+v", err, data)
	}
	if got["query"] != "query Ok { app { name } }" || got["variables"].(map[string]any)["n"] != "a" {
		t.Errorf("sent %v", got)
	}

	resp := &Response{Data: &data}
	err = c.MakeRequest(context.Background(), &Request{OpName: "Refused"}, resp)
	var list Errors
	if !errors.As(err, &list) || len(resp.Errors) != 1 || resp.Errors[0].Message != "no such app" {
		t.Errorf("Refused: %v, errors %+v", err, resp.Errors)
	}

	err = c.MakeRequest(context.Background(), &Request{OpName: "Down"}, &Response{Data: &data})
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadGateway {
		t.Errorf("Down: %v, want an HTTPError 502", err)
	}
}
