package scale

import (
	"strings"
	"testing"
	"time"
)

// businessHours is docs/configuration.md's example: a floor of two started machines on
// weekdays from 8:00 to 18:00, else what the queue needs.
const businessHours = "max(weekday >= 1 && weekday <= 5 && hour >= 8 && hour < 18 ? 2 : 0, ceil(queue_depth / 10))"

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestBusinessHoursFloor(t *testing.T) {
	berlin, newYork := mustLoad(t, "Europe/Berlin"), mustLoad(t, "America/New_York")
	utc := func(s string) time.Time {
		t.Helper()
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	e, err := CompileExpr(businessHours, []string{"queue_depth"})
	if err != nil {
		t.Fatal(err)
	}
	x := Expressions{MinStarted: e, MaxStarted: e}
	tests := []struct {
		name  string
		at    time.Time // the run's start, in UTC
		loc   *time.Location
		queue float64
		want  Moment
		floor int
	}{
		// Berlin is UTC+1 in winter.
		{"Friday 17:59 in Berlin", utc("2026-01-16T16:59:00Z"), berlin, 0, Moment{Hour: 17, Minute: 59, Weekday: 5, Day: 16, Month: 1}, 2},
		{"Friday 18:00 in Berlin", utc("2026-01-16T17:00:00Z"), berlin, 0, Moment{Hour: 18, Minute: 0, Weekday: 5, Day: 16, Month: 1}, 0},
		{"Saturday 17:59 in Berlin", utc("2026-01-17T16:59:00Z"), berlin, 0, Moment{Hour: 17, Minute: 59, Weekday: 6, Day: 17, Month: 1}, 0},
		{"Monday 07:59 in Berlin", utc("2026-01-19T06:59:00Z"), berlin, 0, Moment{Hour: 7, Minute: 59, Weekday: 1, Day: 19, Month: 1}, 0},
		{"Monday 08:00 in Berlin", utc("2026-01-19T07:00:00Z"), berlin, 0, Moment{Hour: 8, Minute: 0, Weekday: 1, Day: 19, Month: 1}, 2},
		{"the same instant in UTC is 17:00, inside", utc("2026-01-16T17:00:00Z"), nil, 0, Moment{Hour: 17, Minute: 0, Weekday: 5, Day: 16, Month: 1}, 2},
		{"Saturday night is Sunday in Berlin", utc("2026-01-17T23:30:00Z"), berlin, 0, Moment{Hour: 0, Minute: 30, Weekday: 0, Day: 18, Month: 1}, 0},
		{"the queue above the floor", utc("2026-01-16T16:59:00Z"), berlin, 35, Moment{Hour: 17, Minute: 59, Weekday: 5, Day: 16, Month: 1}, 4},
		{"the queue at night", utc("2026-01-17T16:59:00Z"), berlin, 11, Moment{Hour: 17, Minute: 59, Weekday: 6, Day: 17, Month: 1}, 2},
		// Berlin moves to UTC+2 on Sunday 29 March 2026 at 01:00 UTC.
		{"before the change: 01:59 CET", utc("2026-03-29T00:59:00Z"), berlin, 0, Moment{Hour: 1, Minute: 59, Weekday: 0, Day: 29, Month: 3}, 0},
		{"after the change: 03:00 CEST", utc("2026-03-29T01:00:00Z"), berlin, 0, Moment{Hour: 3, Minute: 0, Weekday: 0, Day: 29, Month: 3}, 0},
		{"Friday before the change, 16:30 UTC is 17:30", utc("2026-03-27T16:30:00Z"), berlin, 0, Moment{Hour: 17, Minute: 30, Weekday: 5, Day: 27, Month: 3}, 2},
		{"Monday after the change, 16:30 UTC is 18:30", utc("2026-03-30T16:30:00Z"), berlin, 0, Moment{Hour: 18, Minute: 30, Weekday: 1, Day: 30, Month: 3}, 0},
		// New York moves to UTC-4 on Sunday 8 March 2026.
		{"New York, Friday before the change, 22:30 UTC is 17:30", utc("2026-03-06T22:30:00Z"), newYork, 0, Moment{Hour: 17, Minute: 30, Weekday: 5, Day: 6, Month: 3}, 2},
		{"New York, Friday after the change, 22:30 UTC is 18:30", utc("2026-03-13T22:30:00Z"), newYork, 0, Moment{Hour: 18, Minute: 30, Weekday: 5, Day: 13, Month: 3}, 0},
		{"New York, 12:30 UTC is 07:30 EST", utc("2026-03-06T12:30:00Z"), newYork, 0, Moment{Hour: 7, Minute: 30, Weekday: 5, Day: 6, Month: 3}, 0},
		{"New York, 12:30 UTC is 08:30 EDT", utc("2026-03-13T12:30:00Z"), newYork, 0, Moment{Hour: 8, Minute: 30, Weekday: 5, Day: 13, Month: 3}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := MomentOf(tt.at, tt.loc)
			if m != tt.want {
				t.Errorf("MomentOf(%s) = %+v, want %+v", tt.at, m, tt.want)
			}
			got, err := x.Evaluate(map[string]float64{"queue_depth": tt.queue}, Fleet{}, m)
			if err != nil {
				t.Fatal(err)
			}
			if *got.Started.Min != tt.floor || *got.Started.Max != tt.floor {
				t.Errorf("started target %d..%d, want %d", *got.Started.Min, *got.Started.Max, tt.floor)
			}
		})
	}
}

func TestTimeVarsAreReserved(t *testing.T) {
	for _, v := range []string{"hour", "minute", "weekday", "day", "month", "started", "created"} {
		found := false
		for _, r := range ReservedVars() {
			found = found || r == v
		}
		if !found {
			t.Errorf("%s is not reserved", v)
		}
	}
	// Every time variable compiles in an expression without being
	// declared as a metric.
	if _, err := CompileExpr("hour + minute + weekday + day + month", nil); err != nil {
		t.Errorf("time variables do not compile: %v", err)
	}
	if _, err := CompileExpr("year", nil); err == nil || !strings.Contains(err.Error(), "year") {
		t.Errorf("an unknown variable compiled: %v", err)
	}
}
