package cmd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// configDoc is the document that holds the configuration reference.
var configDoc = filepath.Join("docs", "configuration.md")

// configRow is one row of docs/configuration.md's configuration reference.
type configRow struct {
	line    int
	names   []string // flag names without dashes, as urfave's Names()
	envVars []string
	yamlKey string // "" for none
	def     string // backticks removed
	meaning string
}

var backticked = regexp.MustCompile("`([^`]*)`")

// configReference parses the table under "### Configuration reference" in
// docs/configuration.md.
func configReference(t *testing.T) []configRow {
	t.Helper()
	f, err := os.Open(filepath.Join("..", configDoc))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []configRow
	in, header := false, 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "### Configuration reference" {
			in = true
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if header > 0 {
				break // the end of the table
			}
			continue
		}
		if header++; header <= 2 {
			if header == 1 && line != "| Flag | Variable | YAML key | Default | Meaning |" {
				t.Fatalf("%s:%d: configuration reference header %q", configDoc, n, line)
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 5 {
			t.Fatalf("%s:%d: %d cells, want 5: %q", configDoc, n, len(cells), line)
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		r := configRow{line: n, meaning: cells[4]}
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			r.names = append(r.names, strings.TrimLeft(m[1], "-"))
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			r.envVars = append(r.envVars, m[1])
		}
		if cells[2] != "—" {
			m := backticked.FindStringSubmatch(cells[2])
			if m == nil || m[0] != cells[2] {
				t.Errorf("%s:%d: YAML key %q: want one `key` or —", configDoc, n, cells[2])
			} else {
				r.yamlKey = m[1]
			}
		}
		r.def = strings.ReplaceAll(cells[3], "`", "")
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no configuration reference table", configDoc)
	}
	return rows
}

// yamlKeys returns the yaml tags of a struct type's fields, inlined
// structs' included.
func yamlKeys(v any) []string { return yamlTags(reflect.TypeOf(v)) }

// flagDefault is the default a flag declares: its Value, "(default: X)" in
// its usage, "off" for a boolean, or "—".
func flagDefault(f cli.Flag) string {
	if _, ok := f.(*cli.BoolFlag); ok {
		return "off"
	}
	if sf, ok := f.(*cli.StringFlag); ok && sf.Value != "" {
		return sf.Value
	}
	if d, ok := f.(cli.DocGenerationFlag); ok {
		if m := regexp.MustCompile(`\(default: ([^)]*)\)`).FindStringSubmatch(d.GetUsage()); m != nil {
			return m[1]
		}
	}
	return "—"
}

func envVarsOf(f cli.Flag) []string {
	if d, ok := f.(cli.DocGenerationFlag); ok {
		return d.GetEnvVars()
	}
	return nil
}

// TestConfigReference keeps docs/configuration.md's configuration reference and the run
// command's flags in step, both ways: names, aliases, variables, YAML keys
// and defaults.
func TestConfigReference(t *testing.T) {
	t.Parallel()
	rows := configReference(t)
	flags := map[string]cli.Flag{}
	for _, f := range runFlags() {
		flags[f.Names()[0]] = f
	}

	seen := map[string]bool{}
	for _, r := range rows {
		if len(r.names) == 0 {
			t.Errorf("%s:%d: no flag", configDoc, r.line)
			continue
		}
		f, ok := flags[r.names[0]]
		if !ok {
			t.Errorf("%s:%d: --%s is not a flag of run", configDoc, r.line, r.names[0])
			continue
		}
		if seen[r.names[0]] {
			t.Errorf("%s:%d: --%s listed twice", configDoc, r.line, r.names[0])
		}
		seen[r.names[0]] = true
		if !slices.Equal(r.names, f.Names()) {
			t.Errorf("%s:%d: names %q, the flag has %q", configDoc, r.line, r.names, f.Names())
		}
		if !slices.Equal(r.envVars, envVarsOf(f)) {
			t.Errorf("%s:%d: --%s: variables %q, the flag has %q", configDoc, r.line, r.names[0], r.envVars, envVarsOf(f))
		}
		if want := flagDefault(f); r.def != want {
			t.Errorf("%s:%d: --%s: default %q, the flag declares %q", configDoc, r.line, r.names[0], r.def, want)
		}
		if r.meaning == "" {
			t.Errorf("%s:%d: --%s: no meaning", configDoc, r.line, r.names[0])
		}
	}
	for name := range flags {
		if !seen[name] {
			t.Errorf("--%s is missing from %s's configuration reference", name, configDoc)
		}
	}

	// YAML keys: each one named exists, and each key of the file but the
	// ones the prose of docs/configuration.md covers is in the table.
	fileKeys, colKeys := yamlKeys(fileConfig{}), collectorKeyNames()
	inTable := map[string]bool{}
	for _, r := range rows {
		if r.yamlKey == "" {
			continue
		}
		inTable[r.yamlKey] = true
		if sub, ok := strings.CutPrefix(r.yamlKey, "metric-collectors[]."); ok {
			if !slices.Contains(colKeys, sub) {
				t.Errorf("%s:%d: %s is not a key of a metric collector", configDoc, r.line, r.yamlKey)
			}
		} else if !slices.Contains(fileKeys, r.yamlKey) {
			t.Errorf("%s:%d: %s is not a key of the config file", configDoc, r.line, r.yamlKey)
		}
	}
	prose := []string{"metric-collectors", "policies", "interval", "app-list-refresh-interval", "metric-collectors[].type"}
	// Keys of the NATS and Kafka collectors without a flag: their
	// sections name them.
	readme, err := os.ReadFile(filepath.Join("..", configDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"include-ack-pending", "nkey-seed-file", "user", "domain", "unconsumed-from",
		"tls", "tls-ca", "tls-cert", "tls-key", "tls-insecure-skip-verify"} {
		if !strings.Contains(string(readme), k+":") && !strings.Contains(string(readme), "`"+k+"`") {
			t.Errorf("collector key %s is in no section of %s", k, configDoc)
		}
		prose = append(prose, "metric-collectors[]."+k)
	}
	for _, k := range fileKeys {
		if !inTable[k] && !slices.Contains(prose, k) {
			t.Errorf("config file key %s is missing from %s's configuration reference", k, configDoc)
		}
	}
	for _, k := range colKeys {
		if k := "metric-collectors[]." + k; !inTable[k] && !slices.Contains(prose, k) {
			t.Errorf("config file key %s is missing from %s's configuration reference", k, configDoc)
		}
	}
}

// TestRunHelp checks that run --help groups every flag under a category
// and shows each flag's variables.
func TestRunHelp(t *testing.T) {
	t.Parallel()
	code, out, stderr := runCLI(t, "run", "--help")
	if code != ExitOK {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	for _, cat := range []string{catSelection, catTargets, catMetrics, catSafety, catOutput, catFly, catSchedule} {
		if !regexp.MustCompile(`(?m)^   ` + regexp.QuoteMeta(cat) + `$`).MatchString(out) {
			t.Errorf("no %q heading in run --help:\n%s", cat, out)
		}
	}
	// The flags' lines: those of the options, not of the examples.
	lines := strings.Split(out[strings.Index(out, "\nOPTIONS:"):], "\n")
	for _, f := range runFlags() {
		d := f.(cli.DocGenerationFlag)
		if c, ok := f.(cli.CategorizableFlag); !ok || c.GetCategory() == "" {
			t.Errorf("--%s has no category", f.Names()[0])
		}
		var line string
		for _, l := range lines {
			if l := strings.TrimSpace(l); strings.HasPrefix(l, "--"+f.Names()[0]+" ") || strings.HasPrefix(l, "--"+f.Names()[0]+",") {
				line = l
				break
			}
		}
		if line == "" {
			t.Errorf("--%s is not in run --help", f.Names()[0])
			continue
		}
		if env := d.GetEnvVars(); len(env) > 0 {
			want := "[$" + strings.Join(env, ", $") + "]"
			if !strings.Contains(line, want) {
				t.Errorf("--%s: help line does not show %s: %q", f.Names()[0], want, line)
			}
		}
		// A placeholder in backticks, not urfave's "value".
		if strings.HasPrefix(strings.TrimSpace(line), "--"+f.Names()[0]+" value") {
			t.Errorf("--%s: help line has no placeholder: %q", f.Names()[0], line)
		}
	}
	if !strings.Contains(out, "flags take precedence over variables") {
		t.Errorf("run --help does not explain the precedence:\n%s", out)
	}

	// The groups in the order a user sets them up.
	var order []string
	for _, m := range regexp.MustCompile(`(?m)^   ([A-Z][A-Za-z ]+)$`).FindAllStringSubmatch(out, -1) {
		order = append(order, m[1])
	}
	if want := []string{catSelection, catTargets, catMetrics, catTemporal, catSafety, catOutput, catSchedule, catFly}; !slices.Equal(order, want) {
		t.Errorf("run --help groups %q, want %q", order, want)
	}
}

// TestHelpExamples: the help of the app and of run begins with two or
// three examples, each a command line of a command that exists, before
// the usage; asking twice prints the same.
func TestHelpExamples(t *testing.T) {
	t.Parallel()
	var commands []string
	for _, c := range newApp(&Streams{}, Env{}).Commands {
		commands = append(commands, c.Name)
	}
	for _, args := range [][]string{{"--help"}, {"run", "--help"}} {
		_, first, _ := runCLI(t, args...)
		code, out, stderr := runCLI(t, args...)
		if code != ExitOK || out != first {
			t.Fatalf("%q: exit %d, or not the same twice: %s", args, code, stderr)
		}
		ex, usage := strings.Index(out, "\nEXAMPLES:\n"), strings.Index(out, "\nUSAGE:\n")
		if ex < 0 || usage < ex {
			t.Fatalf("%q: no examples before the usage:\n%s", args, out)
		}
		var n int
		for _, line := range strings.Split(out[ex:usage], "\n") {
			line = strings.TrimSpace(line)
			if word, ok := strings.CutPrefix(line, "fly-autoscaler "); ok {
				n++
				if w := strings.Fields(word)[0]; !slices.Contains(commands, w) {
					t.Errorf("%q: example of no command: %s", args, line)
				}
			}
		}
		if n < 2 || n > 3 {
			t.Errorf("%q: %d examples, want two or three:\n%s", args, n, out[ex:usage])
		}
	}
}

func TestVersion(t *testing.T) {
	v, c, b := Version, Commit, Built
	t.Cleanup(func() { Version, Commit, Built = v, c, b })

	Version, Commit, Built = "v1.2.3", "abc1234", "2026-12-05"
	code, out, _ := runCLI(t, "version")
	want := "fly-autoscaler v1.2.3 (commit abc1234, built 2026-12-05 with " + runtime.Version() + ")\n"
	if code != ExitOK || out != want {
		t.Errorf("version: exit %d, %q; want %q", code, out, want)
	}
	if _, out, _ := runCLI(t, "--version"); out != want {
		t.Errorf("--version: %q, want the version command's %q", out, want)
	}

	// The commit once: git describe names it in the version without a
	// tag, and after one.
	for _, tc := range []struct{ version, want string }{
		{"abc1234", "dev"},
		{"abc1234-dirty", "dev"},
		{"v1.2.3-4-gabc1234", "v1.2.3-4"},
		{"v1.2.3-4-gabc1234-dirty", "v1.2.3-4-dirty"},
		{"v0.0.0-20261205120000-abc1234def56", "v0.0.0-20261205120000"},
		{"v1.2.3-4-gfff0000", "v1.2.3-4-gfff0000"}, // another commit: kept
	} {
		Version = tc.version
		_, out, _ := runCLI(t, "version")
		if want := "fly-autoscaler " + tc.want + " (commit abc1234, built 2026-12-05 with " + runtime.Version() + ")\n"; out != want {
			t.Errorf("version %s: %q, want %q", tc.version, out, want)
		}
		if strings.Count(out, "abc1234") != 1 {
			t.Errorf("version %s: the commit is not named once: %q", tc.version, out)
		}
	}

	// Unstamped (go run, go test): build info or placeholders.
	Version, Commit, Built = "", "", ""
	_, out, _ = runCLI(t, "version")
	if !regexp.MustCompile(`^fly-autoscaler \S+ \(commit \S+, built with go[0-9.]+\S*\)\n$`).MatchString(out) {
		t.Errorf("unstamped version: %q", out)
	}
}

// TestVersionStampedByMakefile checks that make build sets Version and
// Commit through -ldflags -X with this package's import path, so the
// stamping cannot go stale when a name moves, and that the Dockerfile
// builds through the same target. (It reads make's plan rather than
// building: a cold static build takes minutes.)
func TestVersionStampedByMakefile(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	plan := exec.Command("make", "-n", "build", "BIN=/tmp/fas", "VERSION=v9.8.7-test", "COMMIT=0123abc", "BUILT=2026-12-05")
	plan.Dir = ".."
	out, err := plan.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build: %v\n%s", err, out)
	}
	pkg := reflect.TypeOf(runConfig{}).PkgPath()
	cmdline := string(out)
	for _, want := range []string{
		"CGO_ENABLED=0 go build",
		"-X " + pkg + ".Version=v9.8.7-test",
		"-X " + pkg + ".Commit=0123abc",
		"-X " + pkg + ".Built=2026-12-05",
		"-o /tmp/fas",
	} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("make build does not run %q:\n%s", want, cmdline)
		}
	}
	// What -X sets is what version prints (TestVersion): these are the
	// variables it names.
	_ = []*string{&Version, &Commit, &Built}

	docker, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^RUN make build BIN=\S+ VERSION="\$VERSION" COMMIT="\$COMMIT"$`).Match(docker) {
		t.Errorf("the Dockerfile does not build through make build with VERSION and COMMIT")
	}
}

// TestFlyTomlBuildArgs: deploy/fly.toml passes every build argument the
// Dockerfile declares for the version (VERSION, COMMIT), so that a binary
// deployed with fly deploy does not report "dev".
func TestFlyTomlBuildArgs(t *testing.T) {
	t.Parallel()
	docker, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	toml, err := os.ReadFile(filepath.Join("..", "deploy", "fly.toml"))
	if err != nil {
		t.Fatal(err)
	}
	section := regexp.MustCompile(`(?ms)^\[build\.args\]\n(.*?)(?:^\[|\z)`).FindSubmatch(toml)
	if section == nil {
		t.Fatal("deploy/fly.toml has no [build.args]")
	}
	args := regexp.MustCompile(`(?m)^ARG (\w+)=`).FindAllSubmatch(docker, -1)
	if len(args) < 2 {
		t.Fatalf("the Dockerfile declares %d build arguments, want VERSION and COMMIT", len(args))
	}
	for _, a := range args {
		if !regexp.MustCompile(`(?m)^\s*` + string(a[1]) + ` = "[^"]+"`).Match(section[1]) {
			t.Errorf("deploy/fly.toml's [build.args] does not set %s", a[1])
		}
	}
	if m := regexp.MustCompile(`(?m)^\s*VERSION = "([^"]*)"`).FindSubmatch(section[1]); m != nil && string(m[1]) == "dev" {
		t.Errorf("deploy/fly.toml builds version dev")
	}
}
