package scale

import (
	"slices"
	"time"
)

// Names of the time variables every expression can use.
const (
	VarHour    = "hour"    // 0 to 23
	VarMinute  = "minute"  // 0 to 59
	VarWeekday = "weekday" // 0 = Sunday ... 6 = Saturday
	VarDay     = "day"     // day of the month, 1 to 31
	VarMonth   = "month"   // 1 to 12
)

// TimeVars lists the time variable names.
var TimeVars = []string{VarHour, VarMinute, VarWeekday, VarDay, VarMonth}

// ReservedVars lists the names a metric may not take: the fleet variables
// and the time variables.
func ReservedVars() []string { return slices.Concat(FleetVars, TimeVars) }

// Moment is the instant of a run as the time variables see it, in the
// run's time zone. A run takes it once, when it starts, so that every app
// of the run sees the same instant.
type Moment struct {
	Hour, Minute, Weekday, Day, Month int
}

// MomentOf returns t read in loc (UTC when loc is nil).
func MomentOf(t time.Time, loc *time.Location) Moment {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return Moment{Hour: t.Hour(), Minute: t.Minute(), Weekday: int(t.Weekday()), Day: t.Day(), Month: int(t.Month())}
}

// addVars sets the time variables in vars.
func (m Moment) addVars(vars map[string]float64) {
	vars[VarHour] = float64(m.Hour)
	vars[VarMinute] = float64(m.Minute)
	vars[VarWeekday] = float64(m.Weekday)
	vars[VarDay] = float64(m.Day)
	vars[VarMonth] = float64(m.Month)
}
