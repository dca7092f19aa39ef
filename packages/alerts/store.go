package alerts

import (
	"context"
	"encoding/json"
	"sync"
)

// Store keeps each tenant's alerts and case history. Its state must outlive
// the process. An Alert round-trips through encoding/json (and through
// Alert.XML and ParseXML), so a store may keep either encoding.
type Store interface {
	// SaveAlert inserts the alert, or replaces the tenant's alert with the
	// same identifier.
	SaveAlert(ctx context.Context, tenant string, a Alert) error
	// Alert returns the tenant's alert with this identifier; false if none.
	Alert(ctx context.Context, tenant, identifier string) (Alert, bool, error)
	// Alerts returns all the tenant's alerts, drafts included, in any order.
	Alerts(ctx context.Context, tenant string) ([]Alert, error)
	// AppendCases stores observations; one with the same org unit, data
	// element and period as a stored one replaces it (a corrected report).
	AppendCases(ctx context.Context, tenant string, obs []Observation) error
	// Cases returns the tenant's observations of one data element in one
	// org unit, in any order.
	Cases(ctx context.Context, tenant, orgUnit, dataElement string) ([]Observation, error)
}

// Observation is one reported count: a DHIS2 data value.
type Observation struct {
	OrgUnit     string  `json:"orgUnit"`
	DataElement string  `json:"dataElement"`
	Period      string  `json:"period"` // ISO week in DHIS2's form, "2026W47"
	Value       float64 `json:"value"`
}

// MemoryStore is a Store in memory, for tests and trials: it forgets
// everything when the process ends.
type MemoryStore struct {
	mu     sync.Mutex
	alerts map[string]map[string][]byte // tenant, identifier: JSON
	cases  map[seriesKey]map[string]float64
}

type seriesKey struct{ tenant, orgUnit, dataElement string }

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{alerts: map[string]map[string][]byte{}, cases: map[seriesKey]map[string]float64{}}
}

// SaveAlert keeps the alert as JSON, so that callers share no slices with
// the store and the JSON round trip a durable store relies on is exercised.
func (m *MemoryStore) SaveAlert(_ context.Context, tenant string, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.alerts[tenant] == nil {
		m.alerts[tenant] = map[string][]byte{}
	}
	m.alerts[tenant][a.Identifier] = b
	return nil
}

func (m *MemoryStore) Alert(_ context.Context, tenant, identifier string) (Alert, bool, error) {
	m.mu.Lock()
	b, ok := m.alerts[tenant][identifier]
	m.mu.Unlock()
	if !ok {
		return Alert{}, false, nil
	}
	var a Alert
	err := json.Unmarshal(b, &a)
	return a, err == nil, err
}

func (m *MemoryStore) Alerts(_ context.Context, tenant string) ([]Alert, error) {
	m.mu.Lock()
	raw := make([][]byte, 0, len(m.alerts[tenant]))
	for _, b := range m.alerts[tenant] {
		raw = append(raw, b)
	}
	m.mu.Unlock()
	out := make([]Alert, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (m *MemoryStore) AppendCases(_ context.Context, tenant string, obs []Observation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range obs {
		k := seriesKey{tenant, o.OrgUnit, o.DataElement}
		if m.cases[k] == nil {
			m.cases[k] = map[string]float64{}
		}
		m.cases[k][o.Period] = o.Value
	}
	return nil
}

func (m *MemoryStore) Cases(_ context.Context, tenant, orgUnit, dataElement string) ([]Observation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Observation
	for p, v := range m.cases[seriesKey{tenant, orgUnit, dataElement}] {
		out = append(out, Observation{OrgUnit: orgUnit, DataElement: dataElement, Period: p, Value: v})
	}
	return out, nil
}
