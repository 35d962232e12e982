package flytest

// A machine as the API shows it, its events and leases, and the decoding
// of request bodies.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	fly "github.com/superfly/fly-go"
)

// view is the machine as the API shows it. It shares memory with m, so it
// must be encoded while the app's lock is held.
func (m *machine) view() fly.Machine {
	v := m.m
	if v.HostStatus != fly.HostStatusOk {
		c := v.Config
		v.Config = nil
		v.IncompleteConfig = &fly.MachineConfig{Image: c.Image, Guest: c.Guest, Metadata: c.Metadata}
	}
	return v
}

// event records an event, newest first, and bumps updated_at.
func (m *machine) event(typ, status, source string, at time.Time) {
	ev := &fly.MachineEvent{Type: typ, Status: status, Source: source, Timestamp: at.UnixMilli()}
	m.m.Events = append([]*fly.MachineEvent{ev}, m.m.Events...)
	if len(m.m.Events) > maxEvents {
		m.m.Events = m.m.Events[:maxEvents]
	}
	m.m.UpdatedAt = at.UTC().Format(time.RFC3339)
}

func (m *machine) activeLease(now time.Time) *lease {
	if m.lease == nil || !now.Before(m.lease.expires) {
		return nil
	}
	return m.lease
}

// leaseConflict returns the error text when someone else's unexpired lease
// is held on m and nonce is not its nonce.
func (m *machine) leaseConflict(nonce string, now time.Time) string {
	l := m.activeLease(now)
	if l == nil || l.nonce == nonce {
		return ""
	}
	return m.leaseHeldMessage()
}

// leaseHeldMessage is the text real Fly answers (quoted from its logs).
func (m *machine) leaseHeldMessage() string {
	return fmt.Sprintf("machine ID %s lease currently held by %s, expires at %s",
		m.m.ID, m.lease.owner, m.lease.expires.UTC().Format(time.RFC3339))
}

func leaseBody(l *lease, m *machine) map[string]any {
	return map[string]any{
		"status": "success",
		"data": map[string]any{
			"nonce":       l.nonce,
			"expires_at":  l.expires.Unix(),
			"owner":       l.owner,
			"description": l.description,
			"version":     m.m.InstanceID,
		},
	}
}

// decodeBody decodes a JSON body into v; an empty body leaves v alone.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("invalid json body: %w", err)
	}
	return nil
}

func copyConfig(c *fly.MachineConfig) (*fly.MachineConfig, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var out fly.MachineConfig
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
