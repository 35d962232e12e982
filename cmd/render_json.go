package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/superfly/fly-autoscaler/scale"
)

// JSON: the contract documented in docs/output.md. These structs, not the
// scale types, define it, so that scale can change without breaking users.

type jsonReport struct {
	SchemaVersion  int         `json:"schema_version"`
	Org            string      `json:"org"`
	Shard          string      `json:"shard,omitempty"`
	DryRun         bool        `json:"dry_run"`
	StartedAt      string      `json:"started_at"`
	ElapsedSeconds float64     `json:"elapsed_seconds"`
	Summary        jsonSummary `json:"summary"`
	Error          string      `json:"error,omitempty"`
	Budget         *jsonBudget `json:"budget,omitempty"`
	Warnings       []string    `json:"warnings,omitempty"`
	Apps           []jsonApp   `json:"apps"`
}

// jsonBudget is the fleet budget a run enforced: a cap is null when unset.
type jsonBudget struct {
	MaxStarted *int `json:"max_started"`
	MaxCreated *int `json:"max_created"`
}

type jsonSummary struct {
	AppsMatched int `json:"apps_matched"`
	Scaled      int `json:"scaled"`
	Planned     int `json:"planned"`
	Unchanged   int `json:"unchanged"`
	Blocked     int `json:"blocked"`
	Skipped     int `json:"skipped"`
	Paused      int `json:"paused"`
	Fallback    int `json:"fallback"`
	Failed      int `json:"failed"`
}

type jsonApp struct {
	App            string              `json:"app"`
	Policy         string              `json:"policy"`
	Status         string              `json:"status"`
	Reason         string              `json:"reason"`
	ReasonCode     string              `json:"reason_code"`
	ElapsedSeconds float64             `json:"elapsed_seconds"`
	Metrics        map[string]*float64 `json:"metrics"`
	Current        *jsonCounts         `json:"current"`
	Target         *jsonCounts         `json:"target"`
	Demand         *jsonCounts         `json:"demand"`
	Warnings       []string            `json:"warnings"`
	Actions        []jsonAction        `json:"actions"`
}

type jsonCounts struct {
	Started int `json:"started"`
	Created int `json:"created"`
}

type jsonAction struct {
	Kind      string `json:"kind"`
	MachineID string `json:"machine_id"`
	Source    string `json:"source"`
	Region    string `json:"region"`
	Started   bool   `json:"started"`
	Reason    string `json:"reason"`
	Outcome   string `json:"outcome"`
	Error     string `json:"error,omitempty"`
}

// jsonTimeLayout is RFC 3339 in UTC with milliseconds.
const jsonTimeLayout = "2006-01-02T15:04:05.000Z07:00"

func seconds(d time.Duration) float64 {
	return math.Round(d.Seconds()*1000) / 1000
}

// toJSON returns the report's JSON document without its apps (Apps is
// empty), and the apps in the order the document lists them.
func toJSON(r *scale.Report) (jsonReport, []scale.AppResult) {
	out := jsonReport{
		SchemaVersion:  JSONSchemaVersion,
		Org:            r.Org,
		Shard:          r.Shard,
		DryRun:         r.DryRun,
		StartedAt:      r.StartedAt.UTC().Format(jsonTimeLayout),
		ElapsedSeconds: seconds(r.Elapsed),
		Summary:        jsonSummary{AppsMatched: max(r.Matched, len(r.Apps))},
		Apps:           []jsonApp{},
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	if r.Budget.Set() {
		out.Budget = &jsonBudget{MaxStarted: r.Budget.MaxStarted, MaxCreated: r.Budget.MaxCreated}
	}
	out.Warnings = r.Warnings
	apps := sortedApps(r)
	for _, a := range apps {
		switch a.Status {
		case scale.StatusScaled:
			out.Summary.Scaled++
		case scale.StatusPlanned:
			out.Summary.Planned++
		case scale.StatusUnchanged:
			out.Summary.Unchanged++
		case scale.StatusBlocked:
			out.Summary.Blocked++
		case scale.StatusSkipped:
			out.Summary.Skipped++
		case scale.StatusPaused:
			out.Summary.Paused++
		case scale.StatusFallback:
			out.Summary.Fallback++
		case scale.StatusFailed:
			out.Summary.Failed++
		}
	}
	return out, apps
}

func toJSONApp(a scale.AppResult) jsonApp {
	ja := jsonApp{
		App:            a.App,
		Policy:         policyName(a.Policy),
		Status:         string(a.Status),
		Reason:         a.Reason,
		ReasonCode:     string(a.Code),
		ElapsedSeconds: seconds(a.Elapsed),
		Metrics:        jsonMetrics(a.Metrics),
		Current:        counts(a, a.Current),
		Target:         counts(a, a.Target),
		Demand:         counts(a, demandOf(a)),
		Warnings:       append([]string{}, a.Warnings...),
		Actions:        make([]jsonAction, 0, len(a.Actions)),
	}
	for _, ac := range a.Actions {
		ja.Actions = append(ja.Actions, jsonAction{
			Kind:      string(ac.Kind),
			MachineID: ac.MachineID,
			Source:    ac.Source,
			Region:    ac.Region,
			Started:   ac.Started,
			Reason:    ac.Reason,
			Outcome:   string(ac.Outcome),
			Error:     ac.Error,
		})
	}
	return ja
}

// policyName is the name of an app's policy, the default's when the app
// took none (a report made without policies).
func policyName(name string) string {
	if name == "" {
		return scale.DefaultPolicyName
	}
	return name
}

// counts is a JSON count pair, null when the app's machines were not read.
func counts(a scale.AppResult, c scale.Counts) *jsonCounts {
	if !a.Observed {
		return nil
	}
	return &jsonCounts{Started: c.Started, Created: c.Created}
}

// renderJSON writes the report as one indented JSON document, the same
// bytes writeJSON writes for the whole document, a few apps at a time: a
// run over 10,000 apps makes a document of megabytes, which encoding it
// whole held several times over (the encoder's buffer, its indented copy,
// the redacting writer's copies of it). Each write ends at the end of an
// app, on a line end.
func renderJSON(w io.Writer, r *scale.Report) error {
	head, apps := toJSON(r)
	var out bytes.Buffer
	if err := writeJSON(&out, head); err != nil {
		return err
	}
	if len(apps) == 0 {
		_, err := w.Write(out.Bytes())
		return err
	}
	// The document ends with its last field, `"apps": []`: the apps go
	// between the brackets, each indented two levels.
	const empty = "[]\n}\n"
	if !bytes.HasSuffix(out.Bytes(), []byte(empty)) {
		return fmt.Errorf("json report: the apps are not its last field")
	}
	out.Truncate(out.Len() - len(empty))
	out.WriteString("[\n")
	var one bytes.Buffer
	enc := json.NewEncoder(&one)
	enc.SetIndent("    ", "  ")
	enc.SetEscapeHTML(false)
	for i, a := range apps {
		one.Reset()
		if err := enc.Encode(toJSONApp(a)); err != nil {
			return err
		}
		out.WriteString("    ")
		out.Write(bytes.TrimSuffix(one.Bytes(), []byte("\n")))
		if i < len(apps)-1 {
			out.WriteByte(',')
		}
		out.WriteByte('\n')
		if out.Len() >= jsonChunk {
			if _, err := w.Write(out.Bytes()); err != nil {
				return err
			}
			out.Reset()
		}
	}
	out.WriteString("  ]\n}\n")
	_, err := w.Write(out.Bytes())
	return err
}

// jsonChunk is about the most renderJSON writes at once.
const jsonChunk = 32 << 10

// writeJSON writes v as one indented JSON document, with <, > and & as
// they are: reasons say "started 1 < target 5".
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// jsonMetrics gives each metric its value, or null for NaN or an infinity,
// which JSON cannot hold.
func jsonMetrics(ms scale.MetricValues) map[string]*float64 {
	out := make(map[string]*float64, len(ms))
	for _, m := range ms {
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			out[m.Name] = nil
			continue
		}
		v := m.Value
		out[m.Name] = &v
	}
	return out
}

// jsonEval is the JSON form of an evaluation: stable snake_case fields, a
// null target bound when no expression sets it, a null metric for NaN or an
// infinity.
type jsonEval struct {
	Org            string        `json:"org"`
	StartedAt      string        `json:"started_at"`
	ElapsedSeconds float64       `json:"elapsed_seconds"`
	AppsMatched    int           `json:"apps_matched"`
	Failed         int           `json:"failed"`
	Error          string        `json:"error,omitempty"`
	Apps           []jsonEvalApp `json:"apps"`
}

type jsonEvalApp struct {
	App     string              `json:"app"`
	Policy  string              `json:"policy"`
	Metrics map[string]*float64 `json:"metrics"`
	Targets jsonTargets         `json:"targets"`
	// Warnings is always present, [] when there are none, as a run's.
	Warnings []string `json:"warnings"`
	Error    string   `json:"error,omitempty"`
}

type jsonTargets struct {
	MinStarted *int `json:"min_started"`
	MaxStarted *int `json:"max_started"`
	MinCreated *int `json:"min_created"`
	MaxCreated *int `json:"max_created"`
}

func renderEvalJSON(w io.Writer, r *scale.EvalReport, apps []scale.EvalResult) error {
	out := jsonEval{
		Org:            r.Org,
		StartedAt:      r.StartedAt.UTC().Format(jsonTimeLayout),
		ElapsedSeconds: seconds(r.Elapsed),
		AppsMatched:    max(r.Matched, len(r.Apps)),
		Apps:           make([]jsonEvalApp, 0, len(apps)),
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	for _, a := range apps {
		ja := jsonEvalApp{
			App:     a.App,
			Policy:  policyName(a.Policy),
			Metrics: jsonMetrics(scale.MetricsOf(a.Metrics)),
			Targets: jsonTargets{
				MinStarted: a.Targets.Started.Min, MaxStarted: a.Targets.Started.Max,
				MinCreated: a.Targets.Created.Min, MaxCreated: a.Targets.Created.Max,
			},
			Warnings: append([]string{}, a.Warnings...),
		}
		if a.Err != nil {
			ja.Error = a.Err.Error()
			out.Failed++
		}
		out.Apps = append(out.Apps, ja)
	}
	return writeJSON(w, out)
}
