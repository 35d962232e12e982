// Package generate stands in for genqlient's code generator, which
// fly-go v0.9.3 imports only to pin the tool's version (a blank import in
// its client.go) and never calls. The real one links golang.org/x/tools,
// go/types and the standard library's testing package into every program
// that imports fly-go: about 1.5 MB of fly-autoscaler's binary, and
// testing. This module is genqlient v0.8.1 with its runtime package,
// graphql, unchanged and this package empty; the root go.mod's replace
// directive puts it in place of v0.8.1 only, so a fly-go that needs
// another genqlient brings the real one back and make check-deps says so.
package generate
