package alerts

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"aigrid"
	"aigrid/sqlite"
)

func TestInfo(t *testing.T) {
	info := New(newMemDocs(), nil).Info()
	if info.Name != "alerts" || info.Unit == "" || info.Description == "" ||
		!slices.Contains(info.Endpoints, "GET /feed.atom") || !slices.Contains(info.Endpoints, "POST /alerts/{identifier}/approve") {
		t.Errorf("%+v", info)
	}
}

func TestUnits(t *testing.T) {
	e := newEnv(t, nil)
	var a Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a", choleraJSON, &a)
	if e.units() != 1 {
		t.Errorf("create: %d units", e.units())
	}
	for _, path := range []string{"/alerts", "/alerts/" + a.Identifier, "/feed.atom", "/settings"} {
		e.must(http.StatusOK, "GET", path, "a", "", nil)
		if e.units() != 0 {
			t.Errorf("GET %s: %d units", path, e.units())
		}
	}
	e.must(http.StatusForbidden, "POST", "/alerts/"+a.Identifier+"/approve", "a", "", nil)
	if e.units() != 0 {
		t.Errorf("refused approval: %d units", e.units())
	}
	// The operator's key approves for the tenant, as under /admin/v1/tenants/{tenant}/packages/alerts/.
	e.must(http.StatusOK, "POST", "/alerts/"+a.Identifier+"/approve", "op", "", nil)
	if e.units() != 1 {
		t.Errorf("approve: %d units", e.units())
	}
	// Eleven data values, then one that spikes: 11, then 1 value and 1 draft.
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 1, "10", "10", "10", "10", "10", "10", "10", "10", "10", "10", "10"), nil)
	if e.units() != 11 {
		t.Errorf("cases: %d units", e.units())
	}
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 12, "40"), nil)
	if e.units() != 2 {
		t.Errorf("spike: %d units", e.units())
	}
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 12, "40"), nil)
	if e.units() != 1 {
		t.Errorf("the same spike again: %d units", e.units())
	}
}

func TestCallers(t *testing.T) {
	e := newEnv(t, nil)
	// The api always sets a call; a handler mounted without one refuses.
	var eb errorBody
	e.must(http.StatusUnauthorized, "GET", "/alerts", "", "", &eb)
	// The operator's key with no tenant (mounted under /v1/packages/alerts/).
	r := httptest.NewRequest("GET", "/alerts", nil)
	r = r.WithContext(aigrid.WithCall(r.Context(), &aigrid.Call{Key: &aigrid.Key{Admin: true}}))
	w := httptest.NewRecorder()
	e.p.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "/admin/v1/tenants/{tenant}/packages/alerts/") {
		t.Errorf("operator without tenant: %d %s", w.Code, w.Body)
	}
}

func TestSettings(t *testing.T) {
	e := newEnv(t, nil)
	var st Settings
	e.must(http.StatusOK, "GET", "/settings", "a", "", &st)
	if st.Sender != "" || st.Languages != nil {
		t.Errorf("default settings %+v", st)
	}
	e.must(http.StatusForbidden, "PUT", "/settings", "a", `{"languages":["sw"]}`, nil)
	for body, param := range map[string]string{
		`{"sender":"a b"}`:      "sender",
		`{"languages":["x y"]}`: "languages[0]",
		`{"anomalyScore":2}`:    "anomalyScore",
		`{"anomalyRun":-1}`:     "anomalyRun",
		`{"langs":["sw"]}`:      "langs",
	} {
		var eb errorBody
		e.must(http.StatusBadRequest, "PUT", "/settings", "a-admin", body, &eb)
		if eb.Error.Param == nil || *eb.Error.Param != param {
			t.Errorf("%s: %+v", body, eb)
		}
	}
	e.must(http.StatusOK, "PUT", "/settings", "op", `{"sender":"moh@health.go.ke","languages":["sw","fr"]}`, nil)
	e.must(http.StatusOK, "GET", "/settings", "a", "", &st)
	if st.Sender != "moh@health.go.ke" || strings.Join(st.Languages, ",") != "sw,fr" {
		t.Errorf("settings %+v", st)
	}
	e.must(http.StatusOK, "GET", "/settings", "b", "", &st)
	if st.Sender != "" {
		t.Errorf("tenant b sees tenant a's settings: %+v", st)
	}
}

// capEntry is an Atom entry's CAP elements, read by namespace as an
// aggregator does.
type capEntry struct {
	Identifier string   `xml:"urn:oasis:names:tc:emergency:cap:1.2 identifier"`
	Status     string   `xml:"urn:oasis:names:tc:emergency:cap:1.2 status"`
	MsgType    string   `xml:"urn:oasis:names:tc:emergency:cap:1.2 msgType"`
	Event      string   `xml:"urn:oasis:names:tc:emergency:cap:1.2 event"`
	Category   []string `xml:"urn:oasis:names:tc:emergency:cap:1.2 category"`
	Severity   string   `xml:"urn:oasis:names:tc:emergency:cap:1.2 severity"`
	Expires    string   `xml:"urn:oasis:names:tc:emergency:cap:1.2 expires"`
	AreaDesc   string   `xml:"urn:oasis:names:tc:emergency:cap:1.2 areaDesc"`
}

func TestFeedCAPElementsAndActualOnly(t *testing.T) {
	e := newEnv(t, nil)
	var a, test Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a-admin", strings.Replace(choleraJSON, `{"info"`, `{"status":"Actual","info"`, 1), &a)
	e.must(http.StatusCreated, "POST", "/alerts", "a-admin", strings.Replace(choleraJSON, `{"info"`, `{"status":"Test","info"`, 1), &test)
	w := e.must(http.StatusOK, "GET", "/feed.atom", "a", "", nil)
	if !strings.Contains(w.Body.String(), `xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2"`) || !strings.Contains(w.Body.String(), "<cap:event>Cholera outbreak</cap:event>") {
		t.Errorf("feed lacks cap: elements:\n%s", w.Body)
	}
	var f struct {
		Entries []capEntry `xml:"http://www.w3.org/2005/Atom entry"`
	}
	if err := xml.Unmarshal(w.Body.Bytes(), &f); err != nil {
		t.Fatal(err)
	}
	want := capEntry{Identifier: a.Identifier, Status: "Actual", MsgType: "Alert", Event: "Cholera outbreak", Category: []string{"Health"},
		Severity: "Severe", Expires: "2026-11-30T00:00:00+03:00", AreaDesc: "Kisumu County"}
	if len(f.Entries) != 1 || !equalEntry(f.Entries[0], want) {
		t.Errorf("entries %+v, want only %+v", f.Entries, want)
	}
}

func equalEntry(a, b capEntry) bool {
	return a.Identifier == b.Identifier && a.Status == b.Status && a.MsgType == b.MsgType && a.Event == b.Event &&
		slices.Equal(a.Category, b.Category) && a.Severity == b.Severity && a.Expires == b.Expires && a.AreaDesc == b.AreaDesc
}

func TestPublic(t *testing.T) {
	e := newEnv(t, nil)
	var draft, pub, restricted Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a", choleraJSON, &draft)
	e.must(http.StatusCreated, "POST", "/alerts", "a-admin", strings.Replace(choleraJSON, `{"info"`, `{"status":"Actual","info"`, 1), &pub)
	e.must(http.StatusCreated, "POST", "/alerts", "a-admin", strings.Replace(choleraJSON, `{"info"`, `{"status":"Actual","scope":"Restricted","restriction":"health workers","info"`, 1), &restricted)
	tenants := map[string]*aigrid.Tenant{"clinic-a": clinicA, "gone": {ID: 9, Name: "gone", Disabled: true}}
	pubSrv := http.StripPrefix("/public/alerts", e.p.Public(func(_ context.Context, name string) (*aigrid.Tenant, error) {
		if t, ok := tenants[name]; ok {
			return t, nil
		}
		return nil, aigrid.Errorf(aigrid.ENotFound, "no tenant %q", name)
	}))
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		pubSrv.ServeHTTP(w, httptest.NewRequest("GET", "http://grid.example/public/alerts"+path, nil))
		return w
	}
	w := get("/clinic-a/feed.atom")
	var f feed
	if err := xml.Unmarshal(w.Body.Bytes(), &f); w.Code != 200 || err != nil || len(f.Entries) != 1 {
		t.Fatalf("public feed: %d %v\n%s", w.Code, err, w.Body)
	}
	link := f.Entries[0].Link.Href
	if link != "http://grid.example/public/alerts/clinic-a/alerts/"+pub.Identifier {
		t.Errorf("link %s", link)
	}
	w = get(strings.TrimPrefix(link, "http://grid.example/public/alerts"))
	if w.Code != 200 || w.Header().Get("Content-Type") != ContentType {
		t.Fatalf("public alert: %d %s", w.Code, w.Body)
	}
	xmllint(t, w.Body.Bytes())
	for _, path := range []string{
		"/clinic-a/alerts/" + draft.Identifier,
		"/clinic-a/alerts/" + restricted.Identifier,
		"/clinic-a/alerts/nope",
		"/nobody/feed.atom",
		"/gone/feed.atom",
		"/clinic-a/settings",
	} {
		if w := get(path); w.Code != 404 || !strings.Contains(w.Body.String(), `"code":"not_found"`) {
			t.Errorf("%s: %d %s", path, w.Code, w.Body)
		}
	}
}

func TestAnomalies(t *testing.T) {
	e := newEnv(t, nil)
	post := func(key, body string) (res struct {
		Received int      `json:"received"`
		Skipped  int      `json:"skipped"`
		Run      int      `json:"run"`
		Alerts   []string `json:"alerts"`
	}) {
		t.Helper()
		e.must(http.StatusOK, "POST", "/anomalies", key, body, &res)
		return res
	}
	const head = `{"subject":"feeder 12 load","area":"Kisumu substation","category":"infra","detector":"anomaly ensemble","points":[`
	// By default a flagged point drafts.
	res := post("a", head+`{"timestamp":"2026-11-24T10:00:00Z","value":430,"score":0.2},
		{"timestamp":"2026-11-24T10:05:00Z","value":812,"expected":430,"score":0.97,"flag":true}]}`)
	if res.Received != 2 || res.Run != 1 || len(res.Alerts) != 1 || e.units() != 3 {
		t.Fatalf("flagged point: %+v, %d units", res, e.units())
	}
	a, err := ParseXML(e.alertXML(res.Alerts[0], "a"))
	if err != nil {
		t.Fatal(err)
	}
	in := a.Info[0]
	if a.Status != StatusDraft || in.Category[0] != "Infra" || in.Headline != "Unusually high feeder 12 load in Kisumu substation, 2026-11-24T10:05:00Z" ||
		!strings.Contains(in.Description, "812, where about 430 was expected. Flagged by anomaly ensemble. Anomaly score 0.97") {
		t.Errorf("drafted %+v", a)
	}
	// A resent batch changes nothing, says so, and is not charged again.
	if res := post("a", head+`{"timestamp":"2026-11-24T10:05:00Z","value":812,"score":0.97,"flag":true}]}`); res.Run != 1 || len(res.Alerts) != 0 || res.Skipped != 1 || e.units() != 0 {
		t.Errorf("resent: %+v, %d units", res, e.units())
	}

	// The tenant's rule: a score of 0.9 three points in a row, across requests.
	e.must(http.StatusOK, "PUT", "/settings", "a-admin", `{"anomalyScore":0.9,"anomalyRun":3}`, nil)
	const head2 = `{"subject":"river level","area":"Nyando","points":[`
	if res := post("a", head2+`{"timestamp":"2026-11-24T10:00:00Z","value":3.1,"score":0.95},{"timestamp":"2026-11-24T11:00:00Z","value":3.4,"score":0.92}]}`); res.Run != 2 || len(res.Alerts) != 0 {
		t.Errorf("two points: %+v", res)
	}
	if res := post("a", head2+`{"timestamp":"2026-11-24T12:00:00Z","value":3.9,"score":0.91}]}`); res.Run != 3 || len(res.Alerts) != 1 {
		t.Errorf("third point: %+v", res)
	}
	// The run goes on; no second draft until it breaks and builds up again.
	if res := post("a", head2+`{"timestamp":"2026-11-24T13:00:00Z","value":4.1,"score":0.99,"flag":true},{"timestamp":"2026-11-24T14:00:00Z","value":2,"score":0.1,"flag":true}]}`); res.Run != 0 || len(res.Alerts) != 0 {
		t.Errorf("run broken: %+v", res)
	}

	for body, param := range map[string]string{
		`{"area":"x","points":[{"timestamp":"2026-11-24T10:00:00Z","value":1}]}`:                                                              "subject",
		`{"subject":"s","area":"x","points":[]}`:                                                                                              "points",
		`{"subject":"s","area":"x","points":[{"timestamp":"yesterday","value":1}]}`:                                                           "points[0].timestamp",
		`{"subject":"s","area":"x","points":[{"timestamp":"2026-11-24T10:00:00Z"}]}`:                                                          "points[0].value",
		`{"subject":"s","area":"x","points":[{"timestamp":"2026-11-24T10:00:00Z","value":1,"score":1.5}]}`:                                    "points[0].score",
		`{"subject":"s","area":"x","points":[{"timestamp":"2026-11-24T10:00:00Z","value":1},{"timestamp":"2026-11-24T09:00:00Z","value":1}]}`: "points[1].timestamp",
		`{"subject":"s","area":"x","category":"Weather","points":[{"timestamp":"2026-11-24T10:00:00Z","value":1}]}`:                           "category",
	} {
		var eb errorBody
		e.must(http.StatusBadRequest, "POST", "/anomalies", "a", body, &eb)
		if eb.Error.Param == nil || *eb.Error.Param != param {
			t.Errorf("%s: %+v", body, eb)
		}
	}
}

// TestStateSurvivesRestart runs the package on the grid's SQLite store,
// closes it, and opens it again: published alerts, drafts, settings and
// case history are all still there.
func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grid.db")
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, db, nil)
	var a Alert
	e.must(http.StatusOK, "PUT", "/settings", "a-admin", `{"sender":"moh@health.go.ke"}`, nil)
	e.must(http.StatusCreated, "POST", "/alerts", "a", choleraJSON, &a)
	e.must(http.StatusOK, "POST", "/alerts/"+a.Identifier+"/approve", "a-admin", "", nil)
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 1, "10", "10", "10", "10", "10", "10", "10", "10", "10", "10", "10"), nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e = newEnvOn(t, db, nil)
	if f := e.feed("a"); len(f.Entries) != 1 || f.Entries[0].Title != "Cholera outbreak in Kisumu" || f.Entries[0].Author != "moh@health.go.ke" {
		t.Errorf("feed after restart: %+v", f.Entries)
	}
	xmllint(t, e.alertXML(a.Identifier, "a"))
	// Week 12 is judged against the eleven weeks posted before the restart.
	var res casesResponse
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 12, "40"), &res)
	if ev := res.Evaluations[0]; ev.Weeks != 12 || ev.C3 == nil || !ev.C1.Flag || ev.Alert == "" {
		t.Fatalf("after restart: %+v", ev)
	}
	draft, err := ParseXML(e.alertXML(res.Evaluations[0].Alert, "a"))
	if err != nil || draft.Status != StatusDraft || draft.Sender != "moh@health.go.ke" {
		t.Errorf("draft %+v, %v", draft, err)
	}
	if _, err := db.GetDoc(context.Background(), "alerts", clinicA.ID, "cases/Kisumu/cholera"); err != nil {
		t.Errorf("the case series document: %v", err)
	}
}

func TestTrimWeeks(t *testing.T) {
	values := map[string]float64{}
	start := time.Date(2020, 1, 6, 0, 0, 0, 0, time.UTC)
	for i := range 300 {
		y, w := start.AddDate(0, 0, 7*i).ISOWeek()
		values[week{y, w}.String()] = float64(i)
	}
	trimWeeks(values, maxWeeks)
	if len(values) != maxWeeks {
		t.Fatalf("%d weeks kept", len(values))
	}
	for _, v := range values {
		if v < 300-maxWeeks {
			t.Errorf("kept week %v, older than the latest %d", v, maxWeeks)
		}
	}
}

// brokenDocs fails every call, as a store whose disk is full would.
type brokenDocs struct{ *memDocs }

var errDisk = errors.New("sqlite: disk I/O error at /var/lib/aigrid/grid.db")

func (brokenDocs) PutDoc(context.Context, *aigrid.Doc) error { return errDisk }
func (brokenDocs) GetDoc(context.Context, string, int64, string) (*aigrid.Doc, error) {
	return nil, errDisk
}
func (brokenDocs) ListDocs(context.Context, string, int64, string) ([]*aigrid.Doc, error) {
	return nil, errDisk
}

func TestStoreErrorsStayInternal(t *testing.T) {
	e := newEnvOn(t, brokenDocs{newMemDocs()}, nil)
	for _, c := range []struct{ method, path, key, body string }{
		{"POST", "/alerts", "a", choleraJSON},
		{"GET", "/alerts", "a", ""},
		{"GET", "/alerts/x", "a", ""},
		{"POST", "/alerts/x/approve", "a-admin", ""},
		{"GET", "/feed.atom", "a", ""},
		{"POST", "/cases", "a", weeks("o", "d", 1, "1")},
		{"PUT", "/settings", "a-admin", `{}`},
	} {
		w := e.do(c.method, c.path, c.key, c.body)
		if w.Code != 500 || strings.Contains(w.Body.String(), "sqlite") || !strings.Contains(w.Body.String(), `"message":"Internal error."`) {
			t.Errorf("%s %s: %d %s", c.method, c.path, w.Code, w.Body)
		}
	}
}
