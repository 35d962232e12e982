// Package generate stands in for genqlient's code generator, which
// fly-go v0.9.3 imports only to pin the tool's version (a blank import in
// its client.go) and never calls. The real one links golang.org/x/tools,
// go/types and the standard library's testing package into every program
// that imports fly-go: about 1.5 MB of fly-autoscaler's binary, and
// testing. See the module's README.
package generate
