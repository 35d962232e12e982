// Package query collects metric values for apps. It knows nothing of Fly
// machines: a value is a plain float64 named by its metric name.
package query
