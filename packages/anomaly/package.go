package anomaly

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"aigrid"
)

// Name is the package's name: its path under /v1/packages/ and its documents' package.
const Name = "anomaly"

// maxPoints bounds the points of one request.
const maxPoints = 100_000

// Package serves anomaly detection on tenants' series over HTTP and keeps
// each series' detector in the grid's DocService, so that it survives a
// restart. Posts to one series are serialised; different series run in
// parallel.
type Package struct {
	docs      aigrid.DocService
	now       func() time.Time
	mux       *http.ServeMux
	endpoints []string

	mu    sync.Mutex
	locks map[seriesKey]*seriesLock
}

type seriesKey struct {
	tenant int64
	id     string
}

// seriesLock serialises the requests on one series; it is dropped when no
// request holds or waits for it.
type seriesLock struct {
	sync.Mutex
	users int
}

// NewPackage returns the package, keeping state in docs.
func NewPackage(docs aigrid.DocService) *Package {
	p := &Package{docs: docs, now: time.Now, mux: http.NewServeMux(), locks: map[seriesKey]*seriesLock{}}
	p.route("POST /series/{id}", p.post)
	p.route("GET /series/{id}", p.get)
	p.route("DELETE /series/{id}", p.delete)
	p.route("GET /series", p.list)
	notAllowed := func(allow string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, r, aigrid.Errorf(codeMethodNotAllowed, "%s is not allowed here; use %s.", r.Method, allow))
		}
	}
	p.mux.Handle("/series/{id}", notAllowed("GET, POST, DELETE"))
	p.mux.Handle("/series", notAllowed("GET"))
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, aigrid.Errorf(aigrid.ENotFound, "No such endpoint in the anomaly package: %s %s. It serves %s.", r.Method, r.URL.Path, strings.Join(p.endpoints, ", ")))
	})
	return p
}

// ServeHTTP serves the package's routes, with the /v1/packages/anomaly prefix stripped.
func (p *Package) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// Info describes the package for GET /v1/packages.
func (p *Package) Info() aigrid.PackageInfo {
	return aigrid.PackageInfo{
		Name: Name,
		Description: "Streaming anomaly detection for sensor series: post readings as SenML (RFC 8428) or JSON points, " +
			"get each one's anomaly score in [0, 1] and a flag from an ensemble of five detectors (a robust z-score, a relative entropy test, a forecast error, the seasonal shape and new extremes).",
		Unit:      "point: one per reading scored",
		Endpoints: p.endpoints,
	}
}

func (p *Package) route(pattern string, f func(http.ResponseWriter, *http.Request, *aigrid.Call) error) {
	p.endpoints = append(p.endpoints, pattern)
	p.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		call := aigrid.CallFrom(r.Context())
		switch {
		case call == nil || call.Key == nil:
			writeError(w, r, aigrid.Errorf(aigrid.EUnauthenticated, "This endpoint needs an API key: send Authorization: Bearer KEY."))
			return
		case call.Tenant == nil:
			writeError(w, r, aigrid.Errorf(aigrid.EInvalid, "Series belong to a tenant: the operator reaches them under /admin/v1/tenants/{tenant}/packages/anomaly/."))
			return
		}
		if err := f(w, r, call); err != nil {
			writeError(w, r, err)
		}
	})
}

// lock takes the series' lock and returns its release.
func (p *Package) lock(k seriesKey) func() {
	p.mu.Lock()
	l := p.locks[k]
	if l == nil {
		l = &seriesLock{}
		p.locks[k] = l
	}
	l.users++
	p.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		p.mu.Lock()
		if l.users--; l.users == 0 {
			delete(p.locks, k)
		}
		p.mu.Unlock()
	}
}

// series is the document of one series.
type series struct {
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Name     string    `json:"senml_name,omitempty"` // the SenML name of its readings, if posted as SenML
	Unit     string    `json:"unit,omitempty"`
	Last     time.Time `json:"last_timestamp"`
	Detector *Detector `json:"detector"`
}

// Summary is what GET /series/{id} shows of a series.
type Summary struct {
	Object     string     `json:"object"` // "series"
	ID         string     `json:"id"`
	Created    time.Time  `json:"created"`
	Updated    time.Time  `json:"updated"`
	Name       string     `json:"senml_name,omitempty"`
	Unit       string     `json:"unit,omitempty"`
	Last       *time.Time `json:"last_timestamp"`
	Points     int        `json:"points"`
	Flags      int        `json:"flags"`
	LastScore  float64    `json:"last_score"`
	WarmupLeft int        `json:"warmup_left"` // points before scores are given
	Period     int        `json:"period"`      // the cycle found in the warm-up, in points; 0 if none
	Config     Config     `json:"config"`
}

func (s *series) summary(updated time.Time) Summary {
	d := s.Detector
	sum := Summary{
		Object: "series", ID: s.ID, Created: s.Created, Updated: updated, Name: s.Name, Unit: s.Unit,
		Points: d.Points(), Flags: d.Flags(), LastScore: d.LastScore(),
		WarmupLeft: max(d.Config().Warmup-d.Points(), 0), Period: d.Period(), Config: d.Config(),
	}
	if d.Points() > 0 {
		last := s.Last
		sum.Last = &last
	}
	return sum
}

const docPrefix = "series/"

// validID reports whether a series id is usable: 1 to 128 letters, digits and - _ . : ~.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && !strings.ContainsRune("-_.:~", rune(c)) {
			return false
		}
	}
	return true
}

func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return "", aigrid.ParamErrorf("id", "The series id %q is not valid: use 1 to 128 letters, digits and - _ . : ~.", id)
	}
	return id, nil
}

// load reads a series, or returns nil if there is none.
func (p *Package) load(ctx context.Context, tenant int64, id string) (*series, time.Time, error) {
	doc, err := p.docs.GetDoc(ctx, Name, tenant, docPrefix+id)
	if aigrid.ErrorCode(err) == aigrid.ENotFound {
		return nil, time.Time{}, nil
	} else if err != nil {
		return nil, time.Time{}, err
	}
	var s series
	if err := json.Unmarshal(doc.Body, &s); err != nil || s.Detector == nil {
		return nil, time.Time{}, fmt.Errorf("anomaly: series %q of tenant %d: corrupt document: %v", id, tenant, err)
	}
	return &s, doc.Updated, nil
}

// postRequest is the JSON form of POST /series/{id}. Config applies when the
// series is new.
type postRequest struct {
	Points []jsonPoint `json:"points"`
	Config *Config     `json:"config"`
}

type jsonPoint struct {
	Timestamp json.RawMessage `json:"timestamp"`
	Value     *float64        `json:"value"`
}

// ScoredPoint is one point of the answer to POST /series/{id}.
type ScoredPoint struct {
	Timestamp time.Time `json:"timestamp"`
	Value     float64   `json:"value"`
	Score     float64   `json:"score"`
	Flag      bool      `json:"flag"`
}

// Scores is the answer to POST /series/{id}.
type Scores struct {
	Object  string        `json:"object"` // "series.scores"
	Series  string        `json:"series"`
	Points  []ScoredPoint `json:"points"`
	Flagged int           `json:"flagged"`
	Summary Summary       `json:"summary"`
}

func (p *Package) post(w http.ResponseWriter, r *http.Request, call *aigrid.Call) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	now := p.now()
	var pack *Pack
	var cfg *Config
	switch mediaType(r, body) {
	case "senml":
		if pack, err = ParseSenML(body, now); err != nil {
			return err
		}
	case "json":
		if pack, cfg, err = parsePoints(body); err != nil {
			return err
		}
	default:
		return aigrid.Errorf(aigrid.EUnsupportedType, "Content-Type %q is not supported: send SenML (application/senml+json) or JSON points (application/json).", r.Header.Get("Content-Type"))
	}
	resp, err := p.Score(r.Context(), call.Tenant.ID, id, pack, cfg, now)
	if err != nil {
		return err
	}
	call.Units += int64(len(pack.Points))
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Score scores a pack of readings of the tenant's series and saves the
// series; cfg, if any, configures a new series. now is when the series is
// created, if it is. It is what POST /series/{id} and the MQTT listener do.
func (p *Package) Score(ctx context.Context, tenant int64, id string, pack *Pack, cfg *Config, now time.Time) (*Scores, error) {
	switch {
	case !validID(id):
		return nil, aigrid.ParamErrorf("id", "The series id %q is not valid: use 1 to 128 letters, digits and - _ . : ~.", id)
	case len(pack.Points) == 0:
		return nil, aigrid.ParamErrorf("points", "No points to score.")
	case len(pack.Points) > maxPoints:
		return nil, aigrid.ParamErrorf("points", "%d points in one request; at most %d.", len(pack.Points), maxPoints)
	}
	for i := 1; i < len(pack.Points); i++ {
		if !pack.Points[i].Time.After(pack.Points[i-1].Time) {
			return nil, aigrid.ParamErrorf(fmt.Sprintf("points[%d].timestamp", i), "Point %d is not after point %d: points must be in time order, each once.", i, i-1)
		}
	}
	k := seriesKey{tenant, id}
	defer p.lock(k)()
	s, _, err := p.load(ctx, k.tenant, id)
	if err != nil {
		return nil, err
	}
	if s == nil {
		c := Config{}
		if cfg != nil {
			c = *cfg
		}
		d, err := New(c)
		if err != nil {
			return nil, aigrid.ParamErrorf("config", "Invalid config: %v.", err)
		}
		s = &series{ID: id, Created: now.UTC(), Name: pack.Name, Unit: pack.Unit, Detector: d}
	} else if cfg != nil {
		c, err := cfg.withDefaults()
		if err != nil {
			return nil, aigrid.ParamErrorf("config", "Invalid config: %v.", err)
		}
		if c != s.Detector.Config() {
			return nil, &aigrid.Error{Code: aigrid.EConflict, Param: "config", Message: fmt.Sprintf("Series %q exists with another config: delete it to start again with a new one, or leave config out.", id)}
		}
	}
	if pack.Name != "" && s.Name != "" && pack.Name != s.Name {
		return nil, aigrid.ParamErrorf("n", "Series %q holds readings of %q, not %q.", id, s.Name, pack.Name)
	}
	if pack.Unit != "" && s.Unit != "" && pack.Unit != s.Unit {
		return nil, aigrid.ParamErrorf("u", "Series %q is in unit %q, not %q.", id, s.Unit, pack.Unit)
	}
	s.Name, s.Unit = cmpOr(s.Name, pack.Name), cmpOr(s.Unit, pack.Unit)
	if first := pack.Points[0].Time; s.Detector.Points() > 0 && !first.After(s.Last) {
		return nil, aigrid.ParamErrorf("timestamp", "The first point (%s) is not after the series' last (%s): points must be posted in time order, each once.",
			first.Format(time.RFC3339Nano), s.Last.Format(time.RFC3339Nano))
	}
	resp := &Scores{Object: "series.scores", Series: id, Points: make([]ScoredPoint, len(pack.Points))}
	for i, pt := range pack.Points {
		res, err := s.Detector.Update(pt.Value)
		if err != nil {
			return nil, aigrid.ParamErrorf(fmt.Sprintf("points[%d].value", i), "Point %d: %v.", i, err)
		}
		resp.Points[i] = ScoredPoint{Timestamp: pt.Time, Value: pt.Value, Score: res.Score, Flag: res.Flag}
		if res.Flag {
			resp.Flagged++
		}
	}
	s.Last = pack.Points[len(pack.Points)-1].Time
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	doc := &aigrid.Doc{Package: Name, TenantID: k.tenant, ID: docPrefix + id, Body: b}
	if err := p.docs.PutDoc(ctx, doc); err != nil {
		return nil, err
	}
	resp.Summary = s.summary(doc.Updated)
	return resp, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// mediaType says how to read a POST body: "senml", "json" or "" (unsupported).
// A JSON array sent as application/json is taken for SenML too.
func mediaType(r *http.Request, body []byte) string {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case ct == "" || (err == nil && mt == "application/json"):
		if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
			return "senml"
		}
		return "json"
	case err == nil && mt == "application/senml+json":
		return "senml"
	}
	return ""
}

// explicitZeros refuses a config field given as 0: Config reads 0 as "the
// default", so "warmup": 0 would silently be 150 and "alpha": 0 0.3.
func explicitZeros(body []byte) error {
	var req struct {
		Config map[string]json.Number `json:"config"`
	}
	if json.Unmarshal(body, &req) != nil {
		return nil // the typed decoding has said what is wrong
	}
	d := DefaultConfig()
	ranges := []struct {
		field, in string
		def       any
	}{
		{"window", fmt.Sprintf("%d to %d", minRobust, maxWindow), d.Window},
		{"entropy_window", fmt.Sprintf("2 to %d", maxWindow), d.EntropyWindow},
		{"bins", "2 to 100", d.Bins},
		{"alpha", "(0, 1]", d.Alpha},
		{"beta", "(0, 1]", d.Beta},
		{"history", fmt.Sprintf("%d to %d", minCalibrate, maxHistory), d.History},
		{"warmup", fmt.Sprintf("1 to %d", maxWarmup), d.Warmup},
		{"suppress", fmt.Sprintf("1 to %d", maxWindow), d.Suppress},
		{"threshold", "(0, 1]", d.Threshold},
	}
	for _, r := range ranges {
		if v, ok := req.Config[r.field]; ok {
			if f, err := v.Float64(); err == nil && f == 0 {
				return aigrid.ParamErrorf("config."+r.field, "config.%s is 0: leave it out for the default (%v), or give %s.", r.field, r.def, r.in)
			}
		}
	}
	return nil
}

// parsePoints reads the JSON form: {"points": [{"timestamp", "value"}...], "config": {...}}.
// Timestamps are RFC 3339 strings, "2006-01-02 15:04:05" in UTC, or seconds
// since 1970; they must increase.
func parsePoints(body []byte) (*Pack, *Config, error) {
	var req postRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, nil, aigrid.ParamErrorf(strings.Trim(f, `"`), "Unknown field %s: send {\"points\": [{\"timestamp\", \"value\"}...]} and optionally \"config\".", f)
		}
		return nil, nil, aigrid.Errorf(aigrid.EInvalid, "The body is not valid: %s.", jsonProblem(err))
	}
	if _, err := dec.Token(); err == nil {
		return nil, nil, aigrid.Errorf(aigrid.EInvalid, "The body is not valid: extra data after the JSON object.")
	}
	if err := explicitZeros(body); err != nil {
		return nil, nil, err
	}
	if len(req.Points) == 0 {
		return nil, nil, aigrid.ParamErrorf("points", "points is empty: send {\"points\": [{\"timestamp\": \"2025-01-01T00:00:00Z\", \"value\": 1.5}...]}.")
	}
	pack := &Pack{Points: make([]Point, len(req.Points))}
	for i, jp := range req.Points {
		param := func(f string) string { return fmt.Sprintf("points[%d].%s", i, f) }
		t, err := parseTimestamp(jp.Timestamp)
		if err != nil {
			return nil, nil, aigrid.ParamErrorf(param("timestamp"), "Point %d: %v.", i, err)
		}
		if jp.Value == nil {
			return nil, nil, aigrid.ParamErrorf(param("value"), "Point %d has no value: each point needs a number.", i)
		}
		if v := *jp.Value; v > MaxValue || v < -MaxValue {
			return nil, nil, aigrid.ParamErrorf(param("value"), "Point %d has the value %g, beyond ±%g.", i, v, MaxValue)
		}
		if i > 0 && !t.After(pack.Points[i-1].Time) {
			return nil, nil, aigrid.ParamErrorf(param("timestamp"), "Point %d (%s) is not after point %d: points must be in time order, each once.", i, t.Format(time.RFC3339Nano), i-1)
		}
		pack.Points[i] = Point{Time: t, Value: *jp.Value}
	}
	return pack, req.Config, nil
}

func parseTimestamp(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, fmt.Errorf("no timestamp: give an RFC 3339 time or seconds since 1970")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fmt.Errorf("the timestamp is not a valid JSON string")
		}
		for _, layout := range []string{time.RFC3339Nano, time.DateTime} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("the timestamp %q is neither RFC 3339 (2025-01-01T00:00:00Z) nor \"2025-01-01 00:00:00\"", s)
	}
	var sec float64
	if err := json.Unmarshal(raw, &sec); err != nil {
		return time.Time{}, fmt.Errorf("the timestamp %s is neither a string nor a number", raw)
	}
	t, ok := unixTime(sec)
	if !ok {
		return time.Time{}, fmt.Errorf("the timestamp %v s is out of range", sec)
	}
	return t, nil
}

func (p *Package) get(w http.ResponseWriter, r *http.Request, call *aigrid.Call) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	s, updated, err := p.load(r.Context(), call.Tenant.ID, id)
	if err != nil {
		return err
	} else if s == nil {
		return notFound(id)
	}
	writeJSON(w, http.StatusOK, s.summary(updated))
	return nil
}

func notFound(id string) error {
	e := aigrid.Errorf(aigrid.ENotFound, "No series %q: post points to /series/%s to start it.", id, id)
	e.Param = "id"
	return e
}

func (p *Package) list(w http.ResponseWriter, r *http.Request, call *aigrid.Call) error {
	docs, err := p.docs.ListDocs(r.Context(), Name, call.Tenant.ID, docPrefix)
	if err != nil {
		return err
	}
	out := struct {
		Object string    `json:"object"`
		Data   []Summary `json:"data"`
	}{Object: "list", Data: make([]Summary, 0, len(docs))}
	for _, d := range docs {
		var s series
		if err := json.Unmarshal(d.Body, &s); err != nil || s.Detector == nil {
			return fmt.Errorf("anomaly: %s of tenant %d: corrupt document: %v", d.ID, d.TenantID, err)
		}
		out.Data = append(out.Data, s.summary(d.Updated))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (p *Package) delete(w http.ResponseWriter, r *http.Request, call *aigrid.Call) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	k := seriesKey{call.Tenant.ID, id}
	defer p.lock(k)()
	if _, err := p.docs.GetDoc(r.Context(), Name, k.tenant, docPrefix+id); aigrid.ErrorCode(err) == aigrid.ENotFound {
		return notFound(id)
	} else if err != nil {
		return err
	}
	if err := p.docs.DeleteDoc(r.Context(), Name, k.tenant, docPrefix+id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "series", "id": id, "deleted": true})
	return nil
}
