// Package graphql is the part of genqlient's runtime package that fly-go
// v0.9.3 compiles against: a client that POSTs a GraphQL request as JSON
// and decodes the answer. See the module's README for why it stands in
// for the real one.
package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client makes GraphQL requests.
type Client interface {
	// MakeRequest sends req and decodes the answer into resp: its data
	// into resp.Data, its errors into resp.Errors (and the error
	// returned).
	MakeRequest(ctx context.Context, req *Request, resp *Response) error
}

// Doer sends HTTP requests: *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Request is a GraphQL request as it is sent.
type Request struct {
	Query     string `json:"query"`
	Variables any    `json:"variables,omitempty"`
	OpName    string `json:"operationName"`
}

// Response is a GraphQL answer. Data is decoded into the value it holds.
type Response struct {
	Data       any            `json:"data"`
	Extensions map[string]any `json:"extensions,omitempty"`
	Errors     Errors         `json:"errors,omitempty"`
}

// Error is one entry of an answer's errors.
type Error struct {
	Message string `json:"message"`
	Path    []any  `json:"path,omitempty"`
	Rule    string `json:"rule,omitempty"`
}

func (e *Error) Error() string { return "graphql: " + e.Message }

// Errors is an answer's list of errors.
type Errors []*Error

func (l Errors) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// HTTPError is an answer whose status is not 200.
type HTTPError struct {
	StatusCode int
	Body       string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("returned error %v: %s", e.StatusCode, e.Body)
}

type client struct {
	endpoint string
	doer     Doer
}

// NewClient returns a Client that POSTs to endpoint through doer
// (http.DefaultClient when nil).
func NewClient(endpoint string, doer Doer) Client {
	if doer == nil {
		doer = http.DefaultClient
	}
	return &client{endpoint: endpoint, doer: doer}
}

func (c *client) MakeRequest(ctx context.Context, req *Request, resp *Response) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.doer.Do(hreq)
	if err != nil {
		return err
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(hresp.Body, 64<<10))
		return &HTTPError{StatusCode: hresp.StatusCode, Body: string(b)}
	}
	if err := json.NewDecoder(hresp.Body).Decode(resp); err != nil {
		return fmt.Errorf("decode the answer: %w", err)
	}
	if len(resp.Errors) > 0 {
		return resp.Errors
	}
	return nil
}
