package alerts

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"aigrid"
)

// maxRun bounds Settings.AnomalyRun.
const maxRun = 100

// anomalyPoint is one point as the anomaly package scores it.
type anomalyPoint struct {
	Timestamp string   `json:"timestamp"` // RFC 3339
	Value     *float64 `json:"value"`
	Expected  *float64 `json:"expected"` // optional, such as a forecast
	Score     float64  `json:"score"`    // in [0, 1]
	Flag      bool     `json:"flag"`
}

// anomalyRequest is the body of POST /anomalies: scored points of one
// series, and what to put in the alert it may draft.
type anomalyRequest struct {
	Subject     string         `json:"subject"`
	Area        string         `json:"area"`
	Detector    string         `json:"detector"`
	Points      []anomalyPoint `json:"points"`
	Event       string         `json:"event"`
	Category    string         `json:"category"`
	Urgency     string         `json:"urgency"`
	Severity    string         `json:"severity"`
	Certainty   string         `json:"certainty"`
	Instruction string         `json:"instruction"`
	Languages   []string       `json:"languages"`
}

// streak is the state of one series under the tenant's rule: the time of
// the last point seen and how many points in a row met the rule.
type streak struct {
	Last time.Time `json:"last"`
	Run  int       `json:"run"`
}

func streakID(subject, area string) string {
	return "streak/" + url.PathEscape(subject) + "/" + url.PathEscape(area)
}

// advance runs the rule over points (in time order), skipping those not
// after the last point seen, so that a resent batch changes nothing. It
// returns the points at which a run reached the length the rule needs, and
// how many points it skipped.
func (s *streak) advance(points []anomalyPoint, times []time.Time, st Settings) (fired []int, skipped int) {
	need := max(st.AnomalyRun, 1)
	for i, pt := range points {
		if !s.Last.IsZero() && !times[i].After(s.Last) {
			skipped++
			continue
		}
		s.Last = times[i]
		meets := pt.Flag
		if st.AnomalyScore > 0 {
			meets = pt.Score >= st.AnomalyScore
		}
		if !meets {
			s.Run = 0
			continue
		}
		s.Run++
		if s.Run == need {
			fired = append(fired, i)
		}
	}
	return fired, skipped
}

func (r *anomalyRequest) validate() ([]time.Time, error) {
	r.Subject, r.Area = strings.TrimSpace(r.Subject), strings.TrimSpace(r.Area)
	switch {
	case r.Subject == "":
		return nil, aigrid.ParamErrorf("subject", "subject is required: what the series measures, such as \"feeder 12 load\".")
	case r.Area == "":
		return nil, aigrid.ParamErrorf("area", "area is required: where the series is measured; it becomes the alert's areaDesc.")
	case len(r.Points) == 0:
		return nil, aigrid.ParamErrorf("points", "points is empty: send the anomaly package's scored points, {\"timestamp\", \"value\", \"score\", \"flag\"}.")
	}
	times := make([]time.Time, len(r.Points))
	for i, pt := range r.Points {
		p := fmt.Sprintf("points[%d]", i)
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(pt.Timestamp))
		switch {
		case err != nil:
			return nil, aigrid.ParamErrorf(p+".timestamp", "timestamp %q is not an RFC 3339 time such as 2026-11-24T10:00:00Z.", pt.Timestamp)
		case i > 0 && !t.After(times[i-1]):
			return nil, aigrid.ParamErrorf(p+".timestamp", "Points must be in time order, each after the one before.")
		case pt.Value == nil:
			return nil, aigrid.ParamErrorf(p+".value", "value is required.")
		case pt.Score < 0 || pt.Score > 1:
			return nil, aigrid.ParamErrorf(p+".score", "score %g is outside 0 to 1.", pt.Score)
		}
		times[i] = t
	}
	// The alert's fields are checked now, before the streak moves on.
	for _, f := range []struct {
		param string
		v     *string
		set   []string
	}{{"category", &r.Category, categories}, {"urgency", &r.Urgency, urgencies}, {"severity", &r.Severity, severities}, {"certainty", &r.Certainty, certainties}} {
		if *f.v == "" {
			continue
		}
		*f.v = canonical(*f.v, f.set)
		if err := oneOf(f.param, *f.v, f.set); err != nil {
			return nil, err
		}
	}
	return times, checkLanguages("languages", r.Languages)
}

// anomalies applies the tenant's threshold rule (Settings.AnomalyScore and
// AnomalyRun) to points scored by the anomaly package, and drafts an alert
// each time a run of points meets it.
func (p *Package) anomalies(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req anomalyRequest
	if err := decodeJSON(body, &req, true); err != nil {
		return err
	}
	times, err := req.validate()
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := p.settingsOf(ctx, c)
	if err != nil {
		return err
	}
	var fired []int
	var skipped int
	run, err := p.store.updateStreak(ctx, c.tenant.ID, streakID(req.Subject, req.Area), func(s *streak) {
		fired, skipped = s.advance(req.Points, times, st)
	})
	if err != nil {
		return err
	}
	// Points seen before are neither judged nor charged again: a client
	// that resends a batch it is unsure of pays once.
	c.count(len(req.Points) - skipped)
	drafted := []string{}
	for _, i := range fired {
		pt := req.Points[i]
		rule := "flagged"
		if st.AnomalyScore > 0 {
			rule = fmt.Sprintf("scored at least %g", st.AnomalyScore)
		}
		a, created, err := p.draft(ctx, c.tenant, st, Anomaly{
			Subject:     req.Subject,
			Area:        req.Area,
			Period:      times[i].UTC().Format(time.RFC3339),
			Observed:    *pt.Value,
			Expected:    pt.Expected,
			Detector:    firstOf(req.Detector, "the anomaly package"),
			Detail:      fmt.Sprintf("Anomaly score %.2f; %d point(s) in a row %s.", pt.Score, max(st.AnomalyRun, 1), rule),
			Event:       req.Event,
			Category:    req.Category,
			Urgency:     req.Urgency,
			Severity:    req.Severity,
			Certainty:   req.Certainty,
			Instruction: req.Instruction,
			Languages:   req.Languages,
		})
		if err != nil {
			return err
		}
		if created {
			c.count(1)
		}
		drafted = append(drafted, a.Identifier)
	}
	writeJSON(w, http.StatusOK, map[string]any{"received": len(req.Points), "skipped": skipped, "run": run, "alerts": drafted})
	return nil
}

// updateStreak changes a series' streak under the store's lock and returns
// its run afterwards.
func (s *store) updateStreak(ctx context.Context, tenant int64, id string, f func(*streak)) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st streak
	if _, err := s.get(ctx, tenant, id, &st); err != nil {
		return 0, err
	}
	f(&st)
	return st.Run, s.put(ctx, tenant, id, st)
}
