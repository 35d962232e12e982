package query

// SetNames gives the external tests the metric names of a Set, in order.
var SetNames = (*Set).names
