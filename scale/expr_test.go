package scale

import (
	"strings"
	"testing"
)

func TestExprEval(t *testing.T) {
	tests := []struct {
		src     string
		vars    map[string]float64
		want    int
		wantErr string
	}{
		{src: "ceil(queue_depth / 10)", vars: map[string]float64{"queue_depth": 31}, want: 4},
		{src: "queue_depth / 10", vars: map[string]float64{"queue_depth": 25}, want: 3}, // 2.5 rounds to 3
		{src: "queue_depth / 10", vars: map[string]float64{"queue_depth": 24}, want: 2},
		{src: "ceil(started * cpu / 0.6)", vars: map[string]float64{"started": 3, "cpu": 0.9}, want: 5},
		{src: "3", want: 3},
		{src: "queue_depth - 10", vars: map[string]float64{"queue_depth": 2}, want: 0},
		{src: "queue_depth / 0", vars: map[string]float64{"queue_depth": 1}, wantErr: "infinite"},
		{src: "queue_depth / 0", vars: map[string]float64{"queue_depth": 0}, wantErr: "NaN"},
		{src: "max(created, 2)", vars: map[string]float64{"created": 1}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			e, err := CompileExpr(tt.src, []string{"queue_depth", "cpu"})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			vars := map[string]float64{"started": 0, "stopped": 0, "suspended": 0, "created": 0, "queue_depth": 0, "cpu": 0}
			for k, v := range tt.vars {
				vars[k] = v
			}
			got, err := e.Eval(vars)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Eval = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestCompileExprErrors(t *testing.T) {
	for _, src := range []string{"ceil(unknown)", "queue_depth +", `"text"`, "queue_depth > 1"} {
		if _, err := CompileExpr(src, []string{"queue_depth"}); err == nil {
			t.Errorf("CompileExpr(%q) succeeded, want an error", src)
		}
	}
}

func TestEvaluateUsesFleetCounts(t *testing.T) {
	f := fleet(mach{id: "a", state: "started"}, mach{id: "b", state: "started"}, mach{id: "c", state: "stopped"}, mach{id: "d", state: "suspended"})
	minE, _ := CompileExpr("started + stopped + suspended", nil)
	maxE, _ := CompileExpr("created * load", []string{"load"})
	x := Expressions{MinStarted: minE, MaxStarted: maxE}
	tg, err := x.Evaluate(map[string]float64{"load": 2}, f, Moment{})
	if err != nil {
		t.Fatal(err)
	}
	if *tg.Started.Min != 4 || *tg.Started.Max != 8 || tg.Created.Set() {
		t.Errorf("targets = %d..%d created set %v; want 4..8, unset", *tg.Started.Min, *tg.Started.Max, tg.Created.Set())
	}
	bad, _ := CompileExpr("load / 0", []string{"load"})
	if _, err := (Expressions{MinCreated: bad, MaxCreated: bad}).Evaluate(map[string]float64{"load": 1}, f, Moment{}); err == nil || !strings.Contains(err.Error(), "min created") {
		t.Errorf("err = %v, want the failing expression named", err)
	}
}
