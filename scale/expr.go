package scale

import (
	"errors"
	"fmt"
	"math"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
)

// Expr is a compiled target expression such as "ceil(queue_depth / 10)".
type Expr struct {
	src  string
	prog *vm.Program
	// label names the expression in errors, as the user set it (cmd
	// gives the option); "" means "min started machine count" and so on.
	label string
}

// Labeled returns e named label in the errors of its evaluation: the
// option the user set, such as --started-machine-count.
func (e *Expr) Labeled(label string) *Expr {
	c := *e
	c.label = label
	return &c
}

// CompileExpr compiles src with every name of vars (the metric names), the
// fleet variables and the time variables as float variables. An unknown
// variable or a result that is not a number is a compile error.
func CompileExpr(src string, vars []string) (*Expr, error) {
	env := make(map[string]any, len(vars)+len(FleetVars)+len(TimeVars))
	for _, v := range append(ReservedVars(), vars...) {
		env[v] = float64(0)
	}
	prog, err := expr.Compile(src, expr.Env(env), expr.AsFloat64(), expr.Patch(floatLiterals{}),
		fmodFunc, expr.Operator("%", "fmod"), intFunc)
	if err != nil {
		return nil, err
	}
	return &Expr{src: src, prog: prog}, nil
}

// floatLiterals makes every integer literal a float, so that arithmetic
// runs in float64 and cannot wrap: "9223372036854775807 + 1" is 9.2e18,
// too large a count, not a negative number clamped to 0 (which would stop
// every machine).
type floatLiterals struct{}

func (floatLiterals) Visit(node *ast.Node) {
	if n, ok := (*node).(*ast.IntegerNode); ok {
		ast.Patch(node, &ast.FloatNode{Value: float64(n.Value)})
	}
}

// fmodFunc keeps % working on the float literals: the remainder of a
// division, as math.Mod computes it.
var fmodFunc = expr.Function("fmod", func(params ...any) (any, error) {
	return math.Mod(params[0].(float64), params[1].(float64)), nil
}, new(func(float64, float64) float64))

// intFunc replaces the builtin int(), whose conversion of a float past the
// range of int is undefined (int(1e19) is negative), with truncation in
// float64: a result too large fails the app in Eval.
var intFunc = expr.Function("int", func(params ...any) (any, error) {
	switch v := params[0].(type) {
	case float64:
		return math.Trunc(v), nil
	case int:
		return float64(v), nil
	}
	return nil, fmt.Errorf("int(%v): not a number", params[0])
}, new(func(float64) float64), new(func(int) float64))

// String returns the expression's source.
func (e *Expr) String() string { return e.src }

// Eval evaluates the expression and rounds the result to the nearest
// integer. NaN and infinities are errors; a negative result is zero.
func (e *Expr) Eval(vars map[string]float64) (int, error) {
	env := make(map[string]any, len(vars))
	for k, v := range vars {
		env[k] = v
	}
	out, err := expr.Run(e.prog, env)
	if err != nil {
		return 0, err
	}
	f, ok := out.(float64)
	if !ok {
		return 0, fmt.Errorf("result %v is not a number", out)
	}
	switch {
	case math.IsNaN(f):
		return 0, errors.New("result is NaN")
	case math.IsInf(f, 0):
		return 0, errors.New("result is infinite")
	case f < 0:
		return 0, nil
	case f > math.MaxInt32:
		return 0, fmt.Errorf("%w: result %g is past the range of a machine count", ErrImplausible, f)
	}
	return int(math.Round(f)), nil
}

// Range is a target range for one count. A nil bound is not enforced.
type Range struct {
	Min, Max *int
}

// Set reports whether the range enforces anything.
func (r Range) Set() bool { return r.Min != nil || r.Max != nil }

// Targets are the ranges an app's counts must be brought into.
type Targets struct {
	Started Range
	Created Range
}

// Expressions are the compiled target expressions of a run. A nil
// expression is not evaluated.
type Expressions struct {
	MinStarted, MaxStarted *Expr
	MinCreated, MaxCreated *Expr
}

// Evaluate computes an app's targets from its metric values, its fleet and
// the run's moment. Metric names may not shadow the fleet or time variables
// (the config rejects that).
func (x Expressions) Evaluate(metrics map[string]float64, f Fleet, at Moment) (Targets, error) {
	vars := f.Vars()
	at.addVars(vars)
	for k, v := range metrics {
		vars[k] = v
	}
	var t Targets
	for _, e := range []struct {
		name string
		expr *Expr
		dst  **int
	}{
		{"min started", x.MinStarted, &t.Started.Min},
		{"max started", x.MaxStarted, &t.Started.Max},
		{"min created", x.MinCreated, &t.Created.Min},
		{"max created", x.MaxCreated, &t.Created.Max},
	} {
		if e.expr == nil {
			continue
		}
		n, err := e.expr.Eval(vars)
		if err != nil {
			what := e.expr.label
			if what == "" {
				what = e.name + " machine count"
			}
			return Targets{}, fmt.Errorf("%s %q: %w", what, e.expr.src, err)
		}
		*e.dst = &n
	}
	return t, nil
}
