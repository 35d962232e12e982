package flyapi

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
)

// rtEndpoint is what a request addresses, as far as retries and rate limits
// care.
type rtEndpoint struct {
	action       string // "list", "create", "get", "start", ...; "" if not a Machines API machine path
	app, machine string
	read         bool // changes nothing
	retry        bool // safe to send again after a 5xx or a network error
	goneOK       bool // a 404 after an ambiguous attempt means done
	graphql      bool // the GraphQL API
}

func rtClassify(method, path string, body []byte) rtEndpoint {
	read := method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
	if strings.HasSuffix(path, "/graphql") {
		read = read || method == http.MethodPost && !rtGraphQLChanges(body)
		return rtEndpoint{read: read, retry: read, graphql: true}
	}
	ep := rtEndpoint{read: read, retry: read}
	i := strings.Index(path, "/v1/apps/")
	if i < 0 {
		return ep
	}
	parts := strings.Split(strings.Trim(path[i+len("/v1/apps/"):], "/"), "/")
	if len(parts) < 2 || parts[0] == "" || parts[1] != "machines" {
		return ep
	}
	ep.app = parts[0]
	if len(parts) == 2 {
		switch method {
		case http.MethodGet:
			ep.action = "list"
		case http.MethodPost:
			ep.action = "create"
		default:
			ep.action = "apps " + method
		}
		return ep
	}
	ep.machine = parts[2]
	sub := "machine"
	if len(parts) > 3 {
		sub = parts[3]
	}
	switch {
	case sub == "machine" && method == http.MethodGet:
		ep.action = "get"
	case sub == "machine" && method == http.MethodPost:
		ep.action = "update"
	case sub == "machine" && method == http.MethodDelete:
		ep.action = "destroy"
		ep.retry, ep.goneOK = true, true
	case (sub == "start" || sub == "stop" || sub == "suspend") && method == http.MethodPost:
		ep.action = sub
		ep.retry = true
	case sub == "lease" && method == http.MethodPost:
		ep.action = "lease" // acquire and refresh share one limit
		// A lease is exclusive: a second acquire after one that took
		// effect is refused (409), it cannot do anything twice.
		ep.retry = true
	case sub == "lease" && method == http.MethodDelete:
		ep.action = "lease release"
		ep.retry, ep.goneOK = true, true
	default:
		ep.action = sub + " " + method
	}
	return ep
}

// rtGraphQLWord finds the keywords of GraphQL operations that change
// something.
var rtGraphQLWord = regexp.MustCompile(`(^|[^_0-9A-Za-z])(mutation|subscription)([^_0-9A-Za-z]|$)`)

// rtGraphQLChanges reports whether a GraphQL request body may change
// something: it holds a mutation (or a subscription), or cannot be read.
// The word anywhere in the document counts, which errs on the side of not
// retrying.
func rtGraphQLChanges(body []byte) bool {
	var b struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(body, &b) != nil || b.Query == "" {
		return true
	}
	return rtGraphQLWord.MatchString(b.Query)
}
