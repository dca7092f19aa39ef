package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"

	"aigrid"
)

// Name is the package's name: its path below /v1/packages/ and the package
// its documents are kept under in the grid's store.
const Name = "alerts"

// Document ids: one document per alert, one per series of case counts (its
// org unit and data element path-escaped, so that neither can contain the
// '/' that separates them), and the tenant's settings.
const (
	alertPrefix = "alert/"
	casesPrefix = "cases/"
	settingsID  = "settings"
)

// maxWeeks bounds the history kept per series: EARS needs 12 weeks, people
// reading the history may want a few years, and a document must stay small.
const maxWeeks = 260

// store keeps each tenant's alerts, case counts and settings as documents
// in the grid's store, so that they survive a restart and, on Postgres, are
// shared by the nodes of a cluster.
type store struct {
	docs aigrid.DocService
	// mu serialises the read-modify-write of case series on this node. Two
	// nodes of a cluster that receive the same series at once may still lose
	// one of the two writes; reports arrive weekly, which makes that rare.
	mu sync.Mutex
}

// Observation is one reported count: a DHIS2 data value.
type Observation struct {
	OrgUnit     string  `json:"orgUnit"`
	DataElement string  `json:"dataElement"`
	Period      string  `json:"period"` // ISO week in DHIS2's form, "2026W47"
	Value       float64 `json:"value"`
}

// caseSeries is the document of one org unit's counts of one data element.
type caseSeries struct {
	OrgUnit     string             `json:"orgUnit"`
	DataElement string             `json:"dataElement"`
	Values      map[string]float64 `json:"values"` // by period
}

func (s *store) get(ctx context.Context, tenant int64, id string, v any) (bool, error) {
	d, err := s.docs.GetDoc(ctx, Name, tenant, id)
	if aigrid.ErrorCode(err) == aigrid.ENotFound {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := json.Unmarshal(d.Body, v); err != nil {
		return false, fmt.Errorf("alerts: document %s of tenant %d: %w", id, tenant, err)
	}
	return true, nil
}

func (s *store) put(ctx context.Context, tenant int64, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.docs.PutDoc(ctx, &aigrid.Doc{Package: Name, TenantID: tenant, ID: id, Body: b})
}

// saveAlert inserts the alert, or replaces the tenant's alert with the same
// identifier. Alerts are kept as JSON, which round-trips every CAP field.
func (s *store) saveAlert(ctx context.Context, tenant int64, a Alert) error {
	return s.put(ctx, tenant, alertPrefix+a.Identifier, a)
}

// alert returns the tenant's alert with this identifier; false if none.
func (s *store) alert(ctx context.Context, tenant int64, identifier string) (Alert, bool, error) {
	var a Alert
	ok, err := s.get(ctx, tenant, alertPrefix+identifier, &a)
	return a, ok, err
}

// alerts returns all the tenant's alerts, drafts included.
func (s *store) alerts(ctx context.Context, tenant int64) ([]Alert, error) {
	docs, err := s.docs.ListDocs(ctx, Name, tenant, alertPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]Alert, len(docs))
	for i, d := range docs {
		if err := json.Unmarshal(d.Body, &out[i]); err != nil {
			return nil, fmt.Errorf("alerts: document %s of tenant %d: %w", d.ID, tenant, err)
		}
	}
	return out, nil
}

func seriesID(orgUnit, dataElement string) string {
	return casesPrefix + url.PathEscape(orgUnit) + "/" + url.PathEscape(dataElement)
}

// appendCases stores observations; one with the same org unit, data element
// and period as a stored one replaces it (a corrected report). Each series
// keeps its latest maxWeeks weeks.
func (s *store) appendCases(ctx context.Context, tenant int64, obs []Observation) error {
	type key struct{ orgUnit, dataElement string }
	bySeries := map[key][]Observation{}
	var order []key
	for _, o := range obs {
		k := key{o.OrgUnit, o.DataElement}
		if _, ok := bySeries[k]; !ok {
			order = append(order, k)
		}
		bySeries[k] = append(bySeries[k], o)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range order {
		id := seriesID(k.orgUnit, k.dataElement)
		cs := caseSeries{OrgUnit: k.orgUnit, DataElement: k.dataElement}
		if _, err := s.get(ctx, tenant, id, &cs); err != nil {
			return err
		}
		if cs.Values == nil {
			cs.Values = map[string]float64{}
		}
		for _, o := range bySeries[k] {
			cs.Values[o.Period] = o.Value
		}
		trimWeeks(cs.Values, maxWeeks)
		if err := s.put(ctx, tenant, id, cs); err != nil {
			return err
		}
	}
	return nil
}

// trimWeeks drops all but the latest n periods of values.
func trimWeeks(values map[string]float64, n int) {
	if len(values) <= n {
		return
	}
	type pw struct {
		period string
		index  int
	}
	all := make([]pw, 0, len(values))
	for p := range values {
		w, _ := parseWeek(p) // decodeDataValueSet checked every period stored
		all = append(all, pw{p, w.index()})
	}
	slices.SortFunc(all, func(a, b pw) int { return b.index - a.index })
	for _, x := range all[min(n, len(all)):] {
		delete(values, x.period)
	}
}

// cases returns the tenant's observations of one data element in one org
// unit, in any order.
func (s *store) cases(ctx context.Context, tenant int64, orgUnit, dataElement string) ([]Observation, error) {
	var cs caseSeries
	if _, err := s.get(ctx, tenant, seriesID(orgUnit, dataElement), &cs); err != nil {
		return nil, err
	}
	out := make([]Observation, 0, len(cs.Values))
	for p, v := range cs.Values {
		out = append(out, Observation{OrgUnit: orgUnit, DataElement: dataElement, Period: p, Value: v})
	}
	return out, nil
}

// settings returns the tenant's settings, zero if it has none.
func (s *store) settings(ctx context.Context, tenant int64) (Settings, error) {
	var st Settings
	_, err := s.get(ctx, tenant, settingsID, &st)
	return st, err
}

func (s *store) saveSettings(ctx context.Context, tenant int64, st Settings) error {
	return s.put(ctx, tenant, settingsID, st)
}
