// Package bench holds the fleet benchmark that make bench runs: the built
// command against scale/flytest with latency added to every Fly call, at
// several fleet sizes and worker counts, printed as one table (see
// fleet_test.go). It is no part of the command.
package bench
