// Package servertest tests fly-autoscaler's Temporal source, and a whole
// run that uses it, against a real Temporal server (go.temporal.io/server's
// temporaltest) started in the test process.
//
// It is a module of its own: the server is a very large dependency that
// must not enter the product's go.mod. Run its tests with go test ./... in
// this directory (CONTRIBUTING.md says what the first build costs).
package servertest
