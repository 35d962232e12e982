package flytest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The GraphQL side parses the (anonymous) query into its selection tree,
// resolves the root fields it knows (organization, apps, app) into plain
// JSON objects and projects them onto the selection, so aliases such as
// fly-go's "currentRelease: currentReleaseUnprocessed" are answered under
// the key the client reads. Fields the fake does not know answer null.

const maxAppsPage = 200

type gqlRequest struct {
	fields []*gqlField
	err    error // parse error, answered as a GraphQL error
}

type gqlField struct {
	alias, name string
	args        map[string]any
	sel         []*gqlField
}

func (f *gqlField) key() string {
	if f.alias != "" {
		return f.alias
	}
	return f.name
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []string       `json:"path,omitempty"`
	Extensions *gqlExtensions `json:"extensions,omitempty"`
}

type gqlExtensions struct {
	Code string `json:"code,omitempty"`
}

func notFound(path, msg string) gqlError {
	return gqlError{Message: msg, Path: []string{path}, Extensions: &gqlExtensions{Code: "NOT_FOUND"}}
}

func writeGraphQLErrors(w http.ResponseWriter, status int, errs ...gqlError) {
	writeJSON(w, status, map[string]any{"errors": errs})
}

// routeGraphQL reads and parses the request body and classifies the query
// by its root fields.
func (s *Server) routeGraphQL(r *http.Request) route {
	rt := route{op: OpGraphQL}
	if r.Method != http.MethodPost {
		rt.badMethod = true
		return rt
	}
	req := &gqlRequest{}
	rt.graphql = req
	var body struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(data, &body)
	}
	if err != nil {
		req.err = fmt.Errorf("invalid request body: %w", err)
		return rt
	}
	req.fields, req.err = parseQuery(body.Query, body.Variables)
	if req.err != nil || len(req.fields) == 0 {
		return rt
	}
	root := req.fields[0]
	switch root.name {
	case "organization":
		rt.op = OpGraphQLOrg
	case "apps":
		rt.op = OpGraphQLApps
	case "app":
		rt.op = OpGraphQLApp
		rt.app, _ = root.args["name"].(string)
		for _, f := range root.sel {
			if strings.HasPrefix(f.name, "currentRelease") || strings.HasPrefix(f.name, "releases") {
				rt.op = OpGraphQLRelease
			}
		}
	}
	return rt
}

func (s *Server) serveGraphQL(w http.ResponseWriter, r *http.Request, rt route) {
	if rt.badMethod {
		writeGraphQLErrors(w, http.StatusMethodNotAllowed, gqlError{Message: "GraphQL requests must be POSTed"})
		return
	}
	req := rt.graphql
	if req.err != nil {
		writeGraphQLErrors(w, http.StatusOK, gqlError{Message: req.err.Error()})
		return
	}
	data := map[string]any{}
	var errs []gqlError
	for _, f := range req.fields {
		v, err := s.resolveRoot(f)
		if err != nil {
			errs = append(errs, *err)
		}
		data[f.key()] = v
	}
	resp := map[string]any{"data": data}
	if len(errs) > 0 {
		resp["errors"] = errs
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) resolveRoot(f *gqlField) (any, *gqlError) {
	switch f.name {
	case "__typename":
		return "Query", nil
	case "organization":
		slug, _ := f.args["slug"].(string)
		if slug != s.org.slug {
			e := notFound(f.key(), fmt.Sprintf("Could not find Organization %q", slug))
			return nil, &e
		}
		return project(s.orgObject(), f.sel), nil
	case "app":
		name, _ := f.args["name"].(string)
		a := s.apps[name]
		if a == nil {
			e := notFound(f.key(), fmt.Sprintf("Could not find App %q", name))
			return nil, &e
		}
		return project(s.appObject(a), f.sel), nil
	case "apps":
		page, err := s.appsPage(f)
		if err != nil {
			return nil, err
		}
		return project(page, f.sel), nil
	}
	return nil, &gqlError{Message: fmt.Sprintf("Field '%s' doesn't exist on type 'Query'", f.name), Path: []string{f.key()}}
}

// appsPage answers apps(type, first, after, organizationId): the org's apps
// sorted by name, at most 200 a page. Cursors are the base64 (no padding)
// of a node's 1-based position; after "" or null starts at the beginning.
func (s *Server) appsPage(f *gqlField) (map[string]any, *gqlError) {
	fail := func(msg string) (map[string]any, *gqlError) {
		return nil, &gqlError{Message: msg, Path: []string{f.key()}}
	}
	if org, ok := f.args["organizationId"].(string); ok && org != "" && org != s.org.id && org != s.org.slug {
		e := notFound(f.key(), fmt.Sprintf("Could not find Organization %q", org))
		return nil, &e
	}
	names := s.names
	if t, ok := f.args["type"].(string); ok && t != "" && t != "container" {
		names = nil
	}
	first := maxAppsPage
	if v, ok := f.args["first"]; ok && v != nil {
		n, ok := v.(int64)
		if !ok || n < 0 {
			return fail(fmt.Sprintf("Argument 'first' must be a non-negative integer, got %v", v))
		}
		first = int(min(n, maxAppsPage))
	}
	start := 0
	if after, _ := f.args["after"].(string); after != "" {
		raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(after, "="))
		n, perr := strconv.Atoi(string(raw))
		if err != nil || perr != nil || n < 0 || n > len(names) {
			return fail(fmt.Sprintf("Invalid cursor: %q", after))
		}
		start = n
	}
	end := min(start+first, len(names))
	nodes := make([]map[string]any, 0, end-start)
	for _, name := range names[start:end] {
		nodes = append(nodes, s.appObject(s.apps[name]))
	}
	var endCursor, startCursor any
	if end > start {
		endCursor = base64.RawStdEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		startCursor = base64.RawStdEncoding.EncodeToString([]byte(strconv.Itoa(start + 1)))
	}
	edges := make([]map[string]any, len(nodes))
	for i, n := range nodes {
		edges[i] = map[string]any{"cursor": base64.RawStdEncoding.EncodeToString([]byte(strconv.Itoa(start + i + 1))), "node": n}
	}
	return map[string]any{
		"__typename": "AppConnection",
		"totalCount": len(names),
		"pageInfo": map[string]any{
			"hasNextPage":     end < len(names),
			"hasPreviousPage": start > 0,
			"endCursor":       endCursor,
			"startCursor":     startCursor,
		},
		"nodes": nodes,
		"edges": edges,
	}, nil
}

func (s *Server) orgObject() map[string]any {
	return map[string]any{
		"__typename":          "Organization",
		"id":                  s.org.id,
		"internalNumericId":   s.org.numID, // a string (BigInt) here, an int32 on App
		"slug":                s.org.slug,
		"rawSlug":             s.org.slug,
		"name":                s.org.name,
		"type":                "SHARED",
		"billable":            true,
		"paidPlan":            true,
		"viewerRole":          "admin",
		"limitedAccessTokens": map[string]any{"nodes": []map[string]any{}},
	}
}

func (s *Server) appObject(a *app) map[string]any {
	a.mu.RLock()
	var rel any // stays an untyped nil when the app never deployed
	version := 0
	if a.release != nil {
		rel = a.release.object()
		version = a.release.version
	}
	a.mu.RUnlock()
	status := "pending"
	if rel != nil {
		status = "deployed"
	}
	return map[string]any{
		"__typename":                "App",
		"id":                        a.name,
		"internalNumericId":         a.numID,
		"name":                      a.name,
		"state":                     status,
		"status":                    status,
		"deployed":                  rel != nil,
		"hostname":                  a.name + ".fly.dev",
		"appUrl":                    "https://" + a.name + ".fly.dev",
		"version":                   version,
		"platformVersion":           "machines",
		"organization":              s.orgObject(),
		"currentRelease":            rel,
		"currentReleaseUnprocessed": rel,
	}
}

func (r *release) object() map[string]any {
	return map[string]any{
		"__typename":         "Release",
		"id":                 r.id,
		"version":            r.version,
		"description":        "Release v" + strconv.Itoa(r.version),
		"reason":             "deploy",
		"status":             r.status,
		"inProgress":         r.status == "running" || r.status == "pending",
		"stable":             r.status == "complete",
		"imageRef":           r.imageRef,
		"deploymentStrategy": "rolling",
		"evaluationId":       "",
		"metadata":           nil,
		"user":               map[string]any{"id": "user-flytest", "email": "deployer@example.com", "name": "Deployer"},
		"createdAt":          r.createdAt.UTC().Format(time.RFC3339),
	}
}

// project keeps the selected fields of obj under their response keys.
func project(obj map[string]any, sel []*gqlField) map[string]any {
	if obj == nil {
		return nil
	}
	out := make(map[string]any, len(sel))
	for _, f := range sel {
		out[f.key()] = projectValue(obj[f.name], f.sel)
	}
	return out
}

func projectValue(v any, sel []*gqlField) any {
	if len(sel) == 0 {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		return project(x, sel)
	case []map[string]any:
		out := make([]any, len(x))
		for i, o := range x {
			out[i] = project(o, sel)
		}
		return out
	}
	return v
}
