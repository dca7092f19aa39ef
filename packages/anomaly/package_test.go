package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"aigrid"
	"aigrid/sqlite"
)

// memDocs is an aigrid.DocService in memory with the SQLite one's contract:
// ENotFound for a missing document, lists ordered by id.
type memDocs struct {
	mu   sync.Mutex
	docs map[string]aigrid.Doc
}

func newMemDocs() *memDocs { return &memDocs{docs: map[string]aigrid.Doc{}} }

func memKey(pkg string, tenant int64, id string) string {
	return fmt.Sprintf("%s\x00%d\x00%s", pkg, tenant, id)
}

func (m *memDocs) PutDoc(_ context.Context, d *aigrid.Doc) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d.Updated = time.Now().UTC()
	c := *d
	c.Body = slices.Clone(d.Body)
	m.docs[memKey(d.Package, d.TenantID, d.ID)] = c
	return nil
}

func (m *memDocs) GetDoc(_ context.Context, pkg string, tenant int64, id string) (*aigrid.Doc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.docs[memKey(pkg, tenant, id)]
	if !ok {
		return nil, aigrid.Errorf(aigrid.ENotFound, "no document %q", id)
	}
	return &d, nil
}

func (m *memDocs) ListDocs(_ context.Context, pkg string, tenant int64, prefix string) ([]*aigrid.Doc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*aigrid.Doc
	for _, d := range m.docs {
		if d.Package == pkg && d.TenantID == tenant && strings.HasPrefix(d.ID, prefix) {
			out = append(out, &d)
		}
	}
	slices.SortFunc(out, func(a, b *aigrid.Doc) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *memDocs) DeleteDoc(_ context.Context, pkg string, tenant int64, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.docs, memKey(pkg, tenant, id))
	return nil
}

var (
	tenantA = &aigrid.Tenant{ID: 1, Name: "clinic-a"}
	tenantB = &aigrid.Tenant{ID: 2, Name: "clinic-b"}
	start   = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
)

type env struct {
	t *testing.T
	p *Package
}

func newEnv(t *testing.T, docs aigrid.DocService) *env {
	p := NewPackage(docs)
	p.now = func() time.Time { return start.Add(24 * time.Hour) }
	return &env{t, p}
}

// do sends a request as the tenant (nil: no call at all) and returns the
// recorder and the call's units.
func (e *env) do(tenant *aigrid.Tenant, method, path, contentType, body string) (*httptest.ResponseRecorder, int64) {
	e.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	call := &aigrid.Call{ID: "req", Key: &aigrid.Key{ID: "k9"}, Tenant: tenant}
	if tenant != nil {
		r = r.WithContext(aigrid.WithCall(r.Context(), call))
	}
	w := httptest.NewRecorder()
	e.p.ServeHTTP(w, r)
	return w, call.Units
}

// must sends a request, checks the status and decodes the JSON answer into out.
func (e *env) must(status int, tenant *aigrid.Tenant, method, path, contentType, body string, out any) int64 {
	e.t.Helper()
	w, units := e.do(tenant, method, path, contentType, body)
	if w.Code != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		e.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, w.Body)
		}
	}
	return units
}

// pointsBody is the JSON form of values at one-minute steps from `from`.
func pointsBody(from time.Time, values []float64) string {
	var b strings.Builder
	b.WriteString(`{"points":[`)
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"timestamp":%q,"value":%v}`, from.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), v)
	}
	b.WriteString(`]}`)
	return b.String()
}

func TestPostPointsFlagsSpike(t *testing.T) {
	e := newEnv(t, newMemDocs())
	xs := noise(400, 21)
	xs[350] += 10
	var res Scores
	units := e.must(http.StatusOK, tenantA, "POST", "/series/pump-7", "application/json", pointsBody(start, xs), &res)
	if units != 400 {
		t.Errorf("units %d, want 400", units)
	}
	if len(res.Points) != 400 || res.Series != "pump-7" || res.Summary.Points != 400 {
		t.Fatalf("response: %d points, series %q, summary %+v", len(res.Points), res.Series, res.Summary)
	}
	var flags []int
	for i, p := range res.Points {
		if p.Score < 0 || p.Score > 1 || p.Value != xs[i] || !p.Timestamp.Equal(start.Add(time.Duration(i)*time.Minute)) {
			t.Fatalf("point %d: %+v", i, p)
		}
		if p.Flag {
			flags = append(flags, i)
		}
	}
	if !slices.Equal(flags, []int{350}) || res.Flagged != 1 || res.Summary.Flags != 1 {
		t.Errorf("flags at %v (flagged %d, summary %d), want [350]", flags, res.Flagged, res.Summary.Flags)
	}
	if !res.Summary.Last.Equal(start.Add(399*time.Minute)) || res.Summary.WarmupLeft != 0 {
		t.Errorf("summary %+v", res.Summary)
	}
}

// Posting in batches scores every point as one batch does: the state goes
// through the store between requests.
func TestBatchesAgreeWithOne(t *testing.T) {
	xs := noise(500, 22)
	xs[300] -= 7
	var one, a, b Scores
	newEnv(t, newMemDocs()).must(http.StatusOK, tenantA, "POST", "/series/s", "", pointsBody(start, xs), &one)
	e := newEnv(t, newMemDocs())
	e.must(http.StatusOK, tenantA, "POST", "/series/s", "", pointsBody(start, xs[:170]), &a)
	e.must(http.StatusOK, tenantA, "POST", "/series/s", "", pointsBody(start.Add(170*time.Minute), xs[170:]), &b)
	if got := append(a.Points, b.Points...); !slices.Equal(got, one.Points) {
		t.Errorf("batches and one batch disagree")
	}
}

const senmlPack = `[
 {"bn":"urn:dev:ow:10e2073a01080063:","bt":1.740787e9,"bu":"Cel","bver":10,"n":"temp","v":20.5,"t":0},
 {"n":"temp","v":20.75,"t":60},
 {"n":"temp","t":-60,"v":20.25,"ut":120},
 {"n":"temp","bv":1,"v":19.5,"t":120}
]`

func TestPostSenML(t *testing.T) {
	e := newEnv(t, newMemDocs())
	var res Scores
	units := e.must(http.StatusOK, tenantA, "POST", "/series/room-12", "application/senml+json", senmlPack, &res)
	if units != 4 {
		t.Errorf("units %d, want 4", units)
	}
	bt := time.Unix(1740787000, 0).UTC()
	want := []ScoredPoint{
		{Timestamp: bt.Add(-time.Minute), Value: 20.25},
		{Timestamp: bt, Value: 20.5},
		{Timestamp: bt.Add(time.Minute), Value: 20.75},
		{Timestamp: bt.Add(2 * time.Minute), Value: 20.5}, // base value 1 + 19.5
	}
	if !slices.Equal(res.Points, want) {
		t.Errorf("points %+v\nwant %+v", res.Points, want)
	}
	if res.Summary.Name != "urn:dev:ow:10e2073a01080063:temp" || res.Summary.Unit != "Cel" || res.Summary.WarmupLeft != 146 {
		t.Errorf("summary %+v", res.Summary)
	}
	// A record without a time was measured now; a JSON array is SenML
	// whatever the Content-Type says.
	e.must(http.StatusOK, tenantA, "POST", "/series/room-12", "application/json", `[{"n":"urn:dev:ow:10e2073a01080063:temp","v":21,"u":"Cel"}]`, &res)
	if !res.Points[0].Timestamp.Equal(e.p.now()) {
		t.Errorf("time of a record without one: %v, want now %v", res.Points[0].Timestamp, e.p.now())
	}
	e.must(http.StatusOK, tenantA, "POST", "/series/room-12", "application/json", `{"points":[{"timestamp":1740900000.5,"value":21}]}`, &res)
	if !res.Points[0].Timestamp.Equal(time.UnixMilli(1740900000500)) {
		t.Errorf("numeric timestamp: %v", res.Points[0].Timestamp)
	}
}

// errorBody is the OpenAI-shaped error.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    string  `json:"code"`
		Param   *string `json:"param"`
	} `json:"error"`
}

func TestErrors(t *testing.T) {
	e := newEnv(t, newMemDocs())
	e.must(http.StatusOK, tenantA, "POST", "/series/s", "", pointsBody(start, noise(10, 23)), nil)
	later := start.Add(time.Hour)
	for _, c := range []struct {
		name, method, path, ct, body string
		status                       int
		code, param                  string
	}{
		{"malformed JSON", "POST", "/series/s", "application/json", `{"points":[`, 400, "invalid", ""},
		{"not an object", "POST", "/series/s", "application/json", `"x"`, 400, "invalid", ""},
		{"empty points", "POST", "/series/s", "", `{"points":[]}`, 400, "invalid", "points"},
		{"unknown field", "POST", "/series/s", "", `{"point":[]}`, 400, "invalid", "point"},
		{"NaN", "POST", "/series/s", "", `{"points":[{"timestamp":"2025-03-02T00:00:00Z","value":NaN}]}`, 400, "invalid", ""},
		{"value as string", "POST", "/series/s", "", `{"points":[{"timestamp":"2025-03-02T00:00:00Z","value":"1"}]}`, 400, "invalid", ""},
		{"huge value", "POST", "/series/s", "", `{"points":[{"timestamp":"2025-03-02T00:00:00Z","value":1e300}]}`, 400, "invalid", "points[0].value"},
		{"no value", "POST", "/series/s", "", `{"points":[{"timestamp":"2025-03-02T00:00:00Z"}]}`, 400, "invalid", "points[0].value"},
		{"no timestamp", "POST", "/series/s", "", `{"points":[{"value":1}]}`, 400, "invalid", "points[0].timestamp"},
		{"bad timestamp", "POST", "/series/s", "", `{"points":[{"timestamp":"yesterday","value":1}]}`, 400, "invalid", "points[0].timestamp"},
		{"out of order", "POST", "/series/s", "", pointsBody(later, []float64{1, 2})[:len(`{"points":[`)] +
			`{"timestamp":"2025-03-02T00:00:00Z","value":1},{"timestamp":"2025-03-01T23:00:00Z","value":2}]}`, 400, "invalid", "points[1].timestamp"},
		{"before the series' last", "POST", "/series/s", "", pointsBody(start.Add(5*time.Minute), []float64{1}), 400, "invalid", "timestamp"},
		{"bad config", "POST", "/series/new", "", `{"points":[{"timestamp":1,"value":1}],"config":{"window":2}}`, 400, "invalid", "config"},
		{"other config", "POST", "/series/s", "", `{"points":[{"timestamp":"2030-01-01T00:00:00Z","value":1}],"config":{"window":50}}`, 409, "conflict", "config"},
		{"bad config of a series", "POST", "/series/s", "", `{"points":[{"timestamp":"2030-01-01T00:00:00Z","value":1}],"config":{"window":2}}`, 400, "invalid", "config"},
		// 0 would be read as "the default": refused rather than replaced.
		{"config zero", "POST", "/series/new", "", `{"points":[{"timestamp":1,"value":1}],"config":{"alpha":0}}`, 400, "invalid", "config.alpha"},
		{"config zero warmup", "POST", "/series/new", "", `{"points":[{"timestamp":1,"value":1}],"config":{"warmup":0,"window":50}}`, 400, "invalid", "config.warmup"},
		{"SenML not an array of records", "POST", "/series/s", "application/senml+json", `[1]`, 400, "invalid", ""},
		{"SenML empty", "POST", "/series/s", "application/senml+json", `[]`, 400, "invalid", ""},
		{"SenML string value", "POST", "/series/s", "application/senml+json", `[{"n":"a","vs":"on"}]`, 400, "invalid", "[0].vs"},
		{"SenML no value", "POST", "/series/s", "application/senml+json", `[{"n":"a","t":1}]`, 400, "invalid", "[0].v"},
		{"SenML two sensors", "POST", "/series/s", "application/senml+json", `[{"n":"a","v":1},{"n":"b","v":2,"t":1}]`, 400, "invalid", "[1].n"},
		{"SenML bad name", "POST", "/series/s", "application/senml+json", `[{"n":"-a","v":1}]`, 400, "invalid", "[0].n"},
		{"SenML must-understand", "POST", "/series/s", "application/senml+json", `[{"n":"a","v":1,"crit_":1}]`, 400, "invalid", "[0].crit_"},
		{"SenML version", "POST", "/series/s", "application/senml+json", `[{"bver":11,"n":"a","v":1}]`, 400, "invalid", "[0].bver"},
		{"SenML same time", "POST", "/series/s", "application/senml+json", `[{"n":"a","v":1,"t":1e9},{"n":"a","v":2,"t":1e9}]`, 400, "invalid", "t"},
		{"SenML type", "POST", "/series/s", "application/senml+json", `[{"n":"a","v":true}]`, 400, "invalid", "[0].v"},
		{"SenML other sensor", "POST", "/series/room", "application/senml+json", `[{"n":"a","v":1,"t":1e9}]`, 200, "", ""},
		{"SenML then another sensor", "POST", "/series/room", "application/senml+json", `[{"n":"b","v":1,"t":2e9}]`, 400, "invalid", "n"},
		{"content type", "POST", "/series/s", "text/csv", "a,b", 415, "unsupported_media_type", ""},
		{"bad id", "POST", "/series/a%20b", "", pointsBody(later, []float64{1}), 400, "invalid", "id"},
		{"unknown series", "GET", "/series/nope", "", "", 404, "not_found", "id"},
		{"delete unknown", "DELETE", "/series/nope", "", "", 404, "not_found", "id"},
		{"method", "PUT", "/series/s", "", "", 405, "method_not_allowed", ""},
		{"no such endpoint", "GET", "/foo", "", "", 404, "not_found", ""},
	} {
		w, units := e.do(tenantA, c.method, c.path, c.ct, c.body)
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, w.Code, c.status, w.Body)
			continue
		}
		if c.status == 200 {
			continue
		}
		var eb errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Message == "" || eb.Error.Type == "" {
			t.Errorf("%s: error body %s (%v)", c.name, w.Body, err)
			continue
		}
		param := ""
		if eb.Error.Param != nil {
			param = *eb.Error.Param
		}
		if eb.Error.Code != c.code || param != c.param {
			t.Errorf("%s: code %q param %q, want %q %q: %s", c.name, eb.Error.Code, param, c.code, c.param, eb.Error.Message)
		}
		if units != 0 {
			t.Errorf("%s: %d units metered for a failed call", c.name, units)
		}
	}
	var s Summary
	e.must(http.StatusOK, tenantA, "GET", "/series/s", "", "", &s)
	if s.Points != 10 {
		t.Errorf("failed posts changed the series: %d points", s.Points)
	}
	if w, _ := e.do(nil, "GET", "/series", "", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("no call: status %d", w.Code)
	}
}

func TestListDeleteAndTenants(t *testing.T) {
	e := newEnv(t, newMemDocs())
	e.must(http.StatusOK, tenantA, "POST", "/series/b", "", pointsBody(start, []float64{1, 2}), nil)
	e.must(http.StatusOK, tenantA, "POST", "/series/a", "", pointsBody(start, []float64{1}), nil)
	e.must(http.StatusOK, tenantB, "POST", "/series/a", "", pointsBody(start, []float64{5, 6, 7}), nil)
	var list struct {
		Object string    `json:"object"`
		Data   []Summary `json:"data"`
	}
	e.must(http.StatusOK, tenantA, "GET", "/series", "", "", &list)
	if list.Object != "list" || len(list.Data) != 2 || list.Data[0].ID != "a" || list.Data[0].Points != 1 || list.Data[1].Points != 2 {
		t.Errorf("tenant A's list: %+v", list)
	}
	var s Summary
	e.must(http.StatusOK, tenantB, "GET", "/series/a", "", "", &s)
	if s.Points != 3 || s.Config != DefaultConfig() || s.Last == nil || !s.Last.Equal(start.Add(2*time.Minute)) {
		t.Errorf("tenant B's series: %+v", s)
	}
	e.must(http.StatusOK, tenantA, "DELETE", "/series/a", "", "", nil)
	e.must(http.StatusNotFound, tenantA, "GET", "/series/a", "", "", nil)
	e.must(http.StatusOK, tenantB, "GET", "/series/a", "", "", &s)
	// A deleted series starts again, with the config of the new post.
	e.must(http.StatusOK, tenantA, "POST", "/series/a", "", `{"points":[{"timestamp":1,"value":1}],"config":{"window":50,"threshold":0.6}}`, nil)
	e.must(http.StatusOK, tenantA, "GET", "/series/a", "", "", &s)
	if s.Points != 1 || s.Config.Window != 50 || s.Config.Threshold != 0.6 || s.Config.Bins != DefaultConfig().Bins {
		t.Errorf("recreated series: %+v", s)
	}
}

// Concurrent posts to one series are serialised: every accepted point is
// counted once. Posts that lose the race to a later timestamp are refused.
func TestConcurrentPosts(t *testing.T) {
	e := newEnv(t, newMemDocs())
	const n = 16
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			w, _ := e.do(tenantA, "POST", "/series/c", "", pointsBody(start.Add(time.Duration(i)*time.Hour), []float64{float64(i), 1, 2}))
			codes[i] = w.Code
		})
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusBadRequest:
		default:
			t.Errorf("status %d", c)
		}
	}
	var s Summary
	e.must(http.StatusOK, tenantA, "GET", "/series/c", "", "", &s)
	if ok == 0 || s.Points != 3*ok {
		t.Errorf("%d posts accepted, series has %d points", ok, s.Points)
	}
	if len(e.p.locks) != 0 {
		t.Errorf("%d series locks left", len(e.p.locks))
	}
}

// The state survives closing and reopening the SQLite store: scores after
// the restart are those of an uninterrupted detector.
func TestStateSurvivesRestart(t *testing.T) {
	xs := noise(600, 24)
	xs[450] += 9
	d, _ := New(Config{})
	want := run(t, d, xs)

	path := filepath.Join(t.TempDir(), "grid.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	newEnv(t, db).must(http.StatusOK, tenantA, "POST", "/series/grid-feeder-3", "", pointsBody(start, xs[:300]), nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res Scores
	newEnv(t, db).must(http.StatusOK, tenantA, "POST", "/series/grid-feeder-3", "", pointsBody(start.Add(300*time.Minute), xs[300:]), &res)
	for i, p := range res.Points {
		if w := want[300+i]; p.Score != w.Score || p.Flag != w.Flag {
			t.Fatalf("point %d after the restart: %+v, want %+v", 300+i, p, w)
		}
	}
	if res.Summary.Points != 600 || res.Summary.Flags != 1 || !res.Points[150].Flag {
		t.Errorf("summary %+v, point 450 %+v", res.Summary, res.Points[150])
	}
}

func TestInfo(t *testing.T) {
	info := NewPackage(newMemDocs()).Info()
	if info.Name != "anomaly" || info.Unit == "" || !slices.Contains(info.Endpoints, "POST /series/{id}") || len(info.Endpoints) != 4 {
		t.Errorf("info %+v", info)
	}
}

// FuzzSenML: any body is a pack or an error; a pack has one valid name and
// finite values in strictly increasing time.
func FuzzSenML(f *testing.F) {
	for _, s := range []string{senmlPack, `[]`, `[{"n":"a","v":1}]`, `[{"bn":"x:","bt":1e9,"n":"y","v":1,"t":-5},{"n":"y","v":2}]`,
		`[{"bv":1e100,"n":"a","v":1e100}]`, `[{"n":"a","v":1,"t":1e300}]`, `{"a":1}`, `[null]`} {
		f.Add([]byte(s))
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseSenML(b, now)
		if err != nil {
			if aigrid.ErrorCode(err) != aigrid.EInvalid {
				t.Fatalf("error of code %s: %v", aigrid.ErrorCode(err), err)
			}
			return
		}
		if len(p.Points) == 0 || !validSenMLName(p.Name) {
			t.Fatalf("pack %+v", p)
		}
		for i, pt := range p.Points {
			if math.IsNaN(pt.Value) || math.Abs(pt.Value) > MaxValue || (i > 0 && !pt.Time.After(p.Points[i-1].Time)) {
				t.Fatalf("point %d: %+v", i, pt)
			}
		}
	})
}
