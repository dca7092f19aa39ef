package alerts

import (
	"fmt"
	"net/http"
	"strings"

	"aigrid"
)

// Evaluation is what EARS made of the latest reported period of one series.
// A method is nil when the series lacks the consecutive weeks it needs (C1
// 8, C2 10, C3 12): a missing week is a gap, not a zero, so send "0" for a
// week without cases.
type Evaluation struct {
	OrgUnit     string  `json:"orgUnit"`
	DataElement string  `json:"dataElement"`
	Period      string  `json:"period"`
	Value       float64 `json:"value"`
	Weeks       int     `json:"weeks"` // consecutive weeks of history up to Period, at most 12
	C1          *Score  `json:"c1"`
	C2          *Score  `json:"c2"`
	C3          *Score  `json:"c3"`
	Alert       string  `json:"alert,omitempty"` // the identifier of the drafted alert, if any method flagged
}

// flagged lists the methods that flagged, as "C1, C3".
func (e Evaluation) flagged() string {
	var names []string
	for _, m := range []struct {
		name string
		s    *Score
	}{{"C1", e.C1}, {"C2", e.C2}, {"C3", e.C3}} {
		if m.s != nil && m.s.Flag {
			names = append(names, "EARS "+m.name)
		}
	}
	return strings.Join(names, ", ")
}

// evaluate runs C1, C2 and C3 for period p over the observations of one
// series, using the run of consecutive weeks that ends at p.
func evaluate(obs []Observation, p week) Evaluation {
	byIndex := map[int]float64{}
	for _, o := range obs {
		if w, err := parseWeek(o.Period); err == nil {
			byIndex[w.index()] = o.Value
		}
	}
	end := p.index()
	var run []float64
	for i := end; len(run) < baselineLen+5; i-- {
		v, ok := byIndex[i]
		if !ok {
			break
		}
		run = append(run, v)
	}
	for i, j := 0, len(run)-1; i < j; i, j = i+1, j-1 {
		run[i], run[j] = run[j], run[i]
	}
	e := Evaluation{Period: p.String(), Weeks: len(run)}
	if len(run) > 0 {
		e.Value = run[len(run)-1]
	}
	if s, ok := C1(run); ok {
		e.C1 = &s
	}
	if s, ok := C2(run); ok {
		e.C2 = &s
	}
	if s, ok := C3(run); ok {
		e.C3 = &s
	}
	return e
}

// cases ingests a DHIS2 dataValueSets body, then runs EARS on the latest
// period each series received and drafts an alert for each that flags.
// Earlier periods of the same request are history only: a back-fill of past
// weeks drafts no alerts about the past.
func (p *Package) cases(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	if mediaType(r) != "json" {
		return aigrid.Errorf(aigrid.EUnsupportedType, "Send case counts as DHIS2 dataValueSets JSON with Content-Type: application/json.")
	}
	obs, err := decodeDataValueSet(body)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := p.settingsOf(ctx, c)
	if err != nil {
		return err
	}
	langs, err := languagesFor(r, st, nil)
	if err != nil {
		return err
	}
	if err := p.store.appendCases(ctx, c.tenant.ID, obs); err != nil {
		return err
	}
	c.count(len(obs))
	type series struct{ orgUnit, dataElement string }
	latest := map[series]week{}
	var order []series
	for _, o := range obs {
		s := series{o.OrgUnit, o.DataElement}
		w, _ := parseWeek(o.Period) // decodeDataValueSet checked it
		prev, seen := latest[s]
		if !seen {
			order = append(order, s)
		}
		if !seen || w.index() > prev.index() {
			latest[s] = w
		}
	}
	evals := make([]Evaluation, 0, len(order))
	for _, s := range order {
		history, err := p.store.cases(ctx, c.tenant.ID, s.orgUnit, s.dataElement)
		if err != nil {
			return err
		}
		e := evaluate(history, latest[s])
		e.OrgUnit, e.DataElement = s.orgUnit, s.dataElement
		if detector := e.flagged(); detector != "" {
			a, created, err := p.draft(ctx, c.tenant, st, Anomaly{
				Subject:   s.dataElement,
				Area:      s.orgUnit,
				Period:    e.Period,
				Observed:  e.Value,
				Expected:  &e.C1.Mean, // C1 runs whenever C2 or C3 can
				Detector:  detector,
				Detail:    e.statistics(),
				Languages: langs,
			})
			if err != nil {
				return err
			}
			if created {
				c.count(1)
			}
			e.Alert = a.Identifier
		}
		evals = append(evals, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"imported": len(obs), "evaluations": evals})
	return nil
}

// statistics describes the scores for an alert's description.
func (e Evaluation) statistics() string {
	var parts []string
	for _, m := range []struct {
		name      string
		s         *Score
		threshold float64
	}{{"C1", e.C1, ThresholdC1}, {"C2", e.C2, ThresholdC2}, {"C3", e.C3, ThresholdC3}} {
		if m.s != nil {
			parts = append(parts, fmt.Sprintf("%s = %.2f (threshold %g; baseline mean %.1f, sd %.1f)", m.name, m.s.Stat, m.threshold, m.s.Mean, m.s.SD))
		}
	}
	return "EARS statistics: " + strings.Join(parts, "; ") + "."
}
