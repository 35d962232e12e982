package flytest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	fly "github.com/superfly/fly-go"
)

// Org is the state a Server starts from: one organization and its apps. It
// is also the fixture format read by ParseOrg, and can be written as a Go
// literal:
//
//	org := &flytest.Org{Slug: "my-org", Apps: []flytest.AppSpec{{
//		Name: "my-app-%03d", Count: 3,
//		Machines: []flytest.MachineSpec{{State: "started"}, {State: "stopped", Count: 2}},
//	}}}
//
// The Org is not modified by the Server; one Org can seed many servers.
type Org struct {
	Slug string `json:"slug"`
	// ID is the GraphQL organization ID (default derived from Slug).
	ID string `json:"id,omitempty"`
	// Name defaults to Slug.
	Name string    `json:"name,omitempty"`
	Apps []AppSpec `json:"apps"`
}

// AppSpec describes one app, or Count apps sharing a name template.
type AppSpec struct {
	// Name is the app name. With Count > 0 it is a template holding one
	// integer verb ("my-app-%03d") expanded for First..First+Count-1.
	Name  string `json:"name"`
	Count int    `json:"count,omitempty"`
	// First is the first template index (default 1).
	First int `json:"first,omitempty"`

	// ReleaseStatus of the current release: "complete" (default),
	// "running", "failed", ... or "none" for an app that never deployed
	// (no release; GraphQL answers currentRelease null).
	ReleaseStatus string `json:"release_status,omitempty"`
	// ReleaseVersion defaults to 1.
	ReleaseVersion   int       `json:"release_version,omitempty"`
	ReleaseCreatedAt time.Time `json:"release_created_at,omitzero"`

	// Image is the default config.image of the app's machines (default
	// "registry.fly.io/<app>:deployment-<version>").
	Image    string        `json:"image,omitempty"`
	Machines []MachineSpec `json:"machines,omitempty"`
}

// MachineSpec describes one machine, or Count identical machines.
type MachineSpec struct {
	// ID is optional; by default IDs are 14 hex characters derived from
	// the app name and the machine's 1-based position in the app.
	ID    string `json:"id,omitempty"`
	Count int    `json:"count,omitempty"`
	Name  string `json:"name,omitempty"`
	// State defaults to "started".
	State string `json:"state,omitempty"`
	// Region defaults to "ord".
	Region string `json:"region,omitempty"`
	// Group is config.metadata.fly_process_group (default "app").
	Group string `json:"group,omitempty"`
	// HostStatus defaults to "ok". Otherwise the machine is served with
	// incomplete_config instead of config, as Fly does.
	HostStatus string `json:"host_status,omitempty"`
	// ReleaseVersion is metadata fly_release_version (default: the app's).
	ReleaseVersion int               `json:"release_version,omitempty"`
	Image          string            `json:"image,omitempty"`
	Guest          *fly.MachineGuest `json:"guest,omitempty"`
	// Metadata is merged over the generated metadata.
	Metadata map[string]string `json:"metadata,omitempty"`
	// CreatedAt defaults to 2024-01-01T00:00:00Z.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// StartedAt is the time of the machine's latest start event (default
	// CreatedAt). Stopped and suspended machines get their stop or suspend
	// event one minute later.
	StartedAt time.Time `json:"started_at,omitzero"`
}

// defaultCreatedAt keeps fixtures deterministic.
var defaultCreatedAt = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	defaultRegion = "ord"
	defaultGroup  = fly.MachineProcessGroupApp
)

// knownStates are the machine states a fixture may use (Fly's documented set).
var knownStates = map[string]bool{
	"created": true, "started": true, "stopped": true, "suspended": true, "failed": true,
	"creating": true, "starting": true, "stopping": true, "restarting": true, "suspending": true,
	"destroying": true, "launch_failed": true, "updating": true, "replacing": true,
	"destroyed": true, "replaced": true, "migrated": true,
}

// ParseOrg reads an Org from its JSON fixture form and checks that it
// expands cleanly (unique names and IDs, known states). Unknown JSON fields
// are errors, to catch typos.
func ParseOrg(data []byte) (*Org, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var o Org
	if err := dec.Decode(&o); err != nil {
		return nil, fmt.Errorf("parse org: %w", err)
	}
	if _, err := o.build(); err != nil {
		return nil, err
	}
	return &o, nil
}

// LoadOrg reads the fixture at path with ParseOrg.
func LoadOrg(path string) (*Org, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	o, err := ParseOrg(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}

// world is an expanded Org: the server's initial state.
type world struct {
	slug, id, name, numID string
	apps                  map[string]*app
	names                 []string // sorted
}

func (o *Org) build() (*world, error) {
	if o == nil {
		return nil, errors.New("org: nil")
	}
	if o.Slug == "" {
		return nil, errors.New("org: slug is required")
	}
	w := &world{slug: o.Slug, id: o.ID, name: o.Name, apps: map[string]*app{}}
	if w.id == "" {
		w.id = "org" + hashHex("org/"+o.Slug, 10)
	}
	if w.name == "" {
		w.name = o.Slug
	}
	w.numID = strconv.FormatUint(uint64(hashUint32("orgnum/"+o.Slug)), 10)

	for i, spec := range o.Apps {
		names, err := spec.names()
		if err != nil {
			return nil, fmt.Errorf("org %s: apps[%d]: %w", o.Slug, i, err)
		}
		for _, name := range names {
			if w.apps[name] != nil {
				return nil, fmt.Errorf("org %s: duplicate app %q", o.Slug, name)
			}
			a, err := spec.build(name)
			if err != nil {
				return nil, fmt.Errorf("org %s: app %s: %w", o.Slug, name, err)
			}
			w.apps[name] = a
			w.names = append(w.names, name)
		}
	}
	sort.Strings(w.names)
	return w, nil
}

func (s AppSpec) names() ([]string, error) {
	if s.Name == "" {
		return nil, errors.New("name is required")
	}
	if s.Count < 0 {
		return nil, fmt.Errorf("app %q: negative count", s.Name)
	}
	if s.Count == 0 {
		if strings.Contains(s.Name, "%") {
			return nil, fmt.Errorf("app %q: a name template needs a count", s.Name)
		}
		return []string{s.Name}, nil
	}
	first := s.First
	if first == 0 {
		first = 1
	}
	out := make([]string, 0, s.Count)
	for i := first; i < first+s.Count; i++ {
		n := fmt.Sprintf(s.Name, i)
		if strings.Contains(n, "%!") || n == s.Name {
			return nil, fmt.Errorf("app %q: name template must hold exactly one integer verb", s.Name)
		}
		out = append(out, n)
	}
	return out, nil
}

func (s AppSpec) build(name string) (*app, error) {
	a := &app{
		name:     name,
		numID:    int32(hashUint32("appnum/"+name) & 0x7fffffff),
		machines: map[string]*machine{},
	}
	version := s.ReleaseVersion
	if version == 0 {
		version = 1
	}
	a.image = s.Image
	if a.image == "" {
		a.image = fmt.Sprintf("registry.fly.io/%s:deployment-%02d", name, version)
	}
	status := s.ReleaseStatus
	if status == "" {
		status = "complete"
	}
	if status != "none" {
		created := s.ReleaseCreatedAt
		if created.IsZero() {
			created = defaultCreatedAt
		}
		a.release = &release{
			id:        "rel" + hashHex("release/"+name+"/"+strconv.Itoa(version), 12),
			version:   version,
			status:    status,
			createdAt: created,
			imageRef:  a.image,
		}
	}

	for i, ms := range s.Machines {
		n := ms.Count
		if n < 0 {
			return nil, fmt.Errorf("machines[%d]: negative count", i)
		}
		if n == 0 {
			n = 1
		}
		if ms.ID != "" && n > 1 {
			return nil, fmt.Errorf("machines[%d]: id %q with count %d", i, ms.ID, n)
		}
		for range n {
			m, err := a.newFixtureMachine(ms, version)
			if err != nil {
				return nil, fmt.Errorf("machines[%d]: %w", i, err)
			}
			a.machines[m.m.ID] = m
		}
	}
	return a, nil
}

func (a *app) newFixtureMachine(ms MachineSpec, appVersion int) (*machine, error) {
	a.seq++
	id := ms.ID
	if id == "" {
		id = a.nextID()
	} else if a.machines[id] != nil {
		return nil, fmt.Errorf("duplicate machine id %q", id)
	}
	state := cmp.Or(ms.State, fly.MachineStateStarted)
	if !knownStates[state] {
		return nil, fmt.Errorf("machine %s: unknown state %q", id, state)
	}
	host := cmp.Or(ms.HostStatus, string(fly.HostStatusOk))
	switch fly.HostStatus(host) {
	case fly.HostStatusOk, fly.HostStatusUnknown, fly.HostStatusUnreachable:
	default:
		return nil, fmt.Errorf("machine %s: unknown host_status %q", id, host)
	}
	region := cmp.Or(ms.Region, defaultRegion)
	group := cmp.Or(ms.Group, defaultGroup)
	version := cmp.Or(ms.ReleaseVersion, appVersion)
	image := cmp.Or(ms.Image, a.image)
	guest := ms.Guest
	if guest == nil {
		guest = &fly.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 256}
	} else {
		g := *guest
		guest = &g
	}
	meta := map[string]string{
		fly.MachineConfigMetadataKeyFlyProcessGroup:    group,
		fly.MachineConfigMetadataKeyFlyPlatformVersion: fly.MachineFlyPlatformVersion2,
		fly.MachineConfigMetadataKeyFlyReleaseVersion:  strconv.Itoa(version),
	}
	if a.release != nil {
		meta[fly.MachineConfigMetadataKeyFlyReleaseId] = a.release.id
	}
	for k, v := range ms.Metadata {
		meta[k] = v
	}
	created := ms.CreatedAt
	if created.IsZero() {
		created = defaultCreatedAt
	}
	started := ms.StartedAt
	if started.IsZero() {
		started = created
	}
	name := ms.Name
	if name == "" {
		name = machineName(id)
	}

	// Events newest first, as Fly lists them.
	events := []*fly.MachineEvent{{Type: "launch", Status: "created", Source: "user", Timestamp: created.UnixMilli()}}
	switch state {
	case "created", "creating", "launch_failed":
	default:
		events = append([]*fly.MachineEvent{{Type: "start", Status: "started", Source: "flyd", Timestamp: started.UnixMilli()}}, events...)
	}
	later := started.Add(time.Minute).UnixMilli()
	switch state {
	case "stopped", "failed":
		events = append([]*fly.MachineEvent{{Type: "exit", Status: "stopped", Source: "flyd", Timestamp: later}}, events...)
	case "suspended":
		events = append([]*fly.MachineEvent{{Type: "suspend", Status: "suspended", Source: "flyd", Timestamp: later}}, events...)
	case "destroyed":
		events = append([]*fly.MachineEvent{{Type: "destroy", Status: "destroyed", Source: "user", Timestamp: later}}, events...)
	}

	m := &machine{m: fly.Machine{
		ID:         id,
		Name:       name,
		State:      state,
		Region:     region,
		ImageRef:   parseImageRef(image),
		InstanceID: instanceID("instance/" + a.name + "/" + id),
		PrivateIP:  privateIP(id),
		CreatedAt:  created.UTC().Format(time.RFC3339),
		UpdatedAt:  created.UTC().Format(time.RFC3339),
		Config: &fly.MachineConfig{
			Image:    image,
			Guest:    guest,
			Metadata: meta,
			Restart:  &fly.MachineRestart{Policy: fly.MachineRestartPolicyOnFailure},
		},
		Events:     events,
		HostStatus: fly.HostStatus(host),
	}}
	return m, nil
}

// nextID returns a fresh deterministic machine ID for the app: 14 hex
// characters derived from the app name and a sequence number.
func (a *app) nextID() string {
	for n := a.seq; ; n++ {
		id := hashHex(a.name+"/"+strconv.Itoa(n), 14)
		if a.machines[id] == nil {
			return id
		}
	}
}

// parseImageRef splits "registry/repo:tag@digest" the way Fly reports it in
// image_ref. A missing digest is derived from the reference, as every real
// image_ref carries one.
func parseImageRef(image string) fly.MachineImageRef {
	ref := fly.MachineImageRef{Labels: map[string]string{}}
	rest := image
	if i := strings.Index(rest, "@"); i >= 0 {
		ref.Digest = rest[i+1:]
		rest = rest[:i]
	}
	// The first path element is a registry only when it looks like a host.
	if host, path, ok := strings.Cut(rest, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		ref.Registry, rest = host, path
	} else {
		ref.Registry = "docker.io"
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i:], "/") {
		ref.Tag = rest[i+1:]
		rest = rest[:i]
	}
	ref.Repository = rest
	if ref.Digest == "" {
		sum := sha256.Sum256([]byte(image))
		ref.Digest = "sha256:" + hex.EncodeToString(sum[:])
	}
	return ref
}

func hashSum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func hashHex(s string, n int) string {
	sum := hashSum(s)
	return hex.EncodeToString(sum[:])[:n]
}

func hashUint32(s string) uint32 {
	sum := hashSum(s)
	return binary.BigEndian.Uint32(sum[:4])
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// instanceID returns a ULID-shaped instance ID derived from seed.
func instanceID(seed string) string {
	sum := hashSum(seed)
	b := make([]byte, 26)
	copy(b, "01J")
	for i := 3; i < 26; i++ {
		b[i] = crockford[sum[i]%32]
	}
	return string(b)
}

func privateIP(id string) string {
	sum := hashSum("ip/" + id)
	return fmt.Sprintf("fdaa:0:1:a7b:%x:%x:%x:2", binary.BigEndian.Uint16(sum[0:2]), binary.BigEndian.Uint16(sum[2:4]), binary.BigEndian.Uint16(sum[4:6]))
}

var (
	nameAdjectives = []string{"aged", "billowing", "blue", "crimson", "damp", "falling", "frosty", "hidden", "little", "morning", "old", "proud", "quiet", "still", "summer", "young"}
	nameNouns      = []string{"bird", "brook", "cloud", "dawn", "dew", "field", "fire", "leaf", "moon", "pine", "rain", "river", "sea", "snow", "wind", "wood"}
)

// machineName returns a Fly-style generated name ("aged-wind-2649").
func machineName(id string) string {
	sum := hashSum("name/" + id)
	return fmt.Sprintf("%s-%s-%04d", nameAdjectives[sum[0]%16], nameNouns[sum[1]%16], binary.BigEndian.Uint16(sum[2:4])%10000)
}
