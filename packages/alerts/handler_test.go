package alerts

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"aigrid"
)

const mount = "/v1/packages/alerts"

// Tenants and keys of the tests: "a" and "a-admin" (a tenant admin key) for
// clinic-a, "b" for clinic-b, "op" the operator's key acting for clinic-a as
// under /admin/v1/tenants/clinic-a/packages/alerts/.
var (
	clinicA = &aigrid.Tenant{ID: 1, Name: "clinic-a"}
	clinicB = &aigrid.Tenant{ID: 2, Name: "clinic-b"}
	keys    = map[string]aigrid.Call{
		"a":       {Tenant: clinicA, Key: &aigrid.Key{ID: "a", TenantID: 1}},
		"a-admin": {Tenant: clinicA, Key: &aigrid.Key{ID: "a-admin", TenantID: 1, TenantAdmin: true}},
		"b":       {Tenant: clinicB, Key: &aigrid.Key{ID: "b", TenantID: 2}},
		"op":      {Tenant: clinicA, Key: &aigrid.Key{ID: "op", Admin: true}},
	}
)

// env is the package mounted as aigrid mounts it: the prefix stripped and
// the caller's aigrid.Call in the context.
type env struct {
	t    *testing.T
	p    *Package
	srv  http.Handler
	now  time.Time
	call *aigrid.Call // the last request's, to read its Units
}

func newEnv(t *testing.T, tr Translator) *env {
	return newEnvOn(t, newMemDocs(), tr)
}

func newEnvOn(t *testing.T, docs aigrid.DocService, tr Translator) *env {
	e := &env{t: t, p: New(docs, tr), now: time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)}
	e.p.now = func() time.Time { return e.now }
	e.srv = http.StripPrefix(mount, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.call = nil
		if c, ok := keys[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]; ok {
			e.call = &c
			r = r.WithContext(aigrid.WithCall(r.Context(), e.call))
		}
		e.p.ServeHTTP(w, r)
	}))
	return e
}

// units is what the last request added to its call for the meter.
func (e *env) units() int64 {
	if e.call == nil {
		return 0
	}
	return e.call.Units
}

// do sends a request; a body that starts with '<' goes as CAP XML, any other as JSON.
func (e *env) do(method, path, key, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	r := httptest.NewRequest(method, "http://grid.example"+mount+path, strings.NewReader(body))
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if strings.HasPrefix(body, "<") {
		r.Header.Set("Content-Type", "application/cap+xml")
	} else if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w
}

// must sends a request that must answer status, and decodes a JSON answer into v.
func (e *env) must(status int, method, path, key, body string, v any) *httptest.ResponseRecorder {
	e.t.Helper()
	w := e.do(method, path, key, body)
	if w.Code != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, w.Code, status, w.Body)
	}
	if v != nil {
		reflect.ValueOf(v).Elem().SetZero() // a reused value keeps no fields the answer leaves out
		if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, w.Body)
		}
	}
	return w
}

const choleraJSON = `{"info":[{"language":"en","category":["Health"],"event":"Cholera outbreak",
	"urgency":"Expected","severity":"Severe","certainty":"Likely",
	"expires":"2026-11-30T00:00:00+03:00",
	"headline":"Cholera outbreak in Kisumu","description":"Cases rose sharply this week.",
	"instruction":"Boil drinking water.",
	"area":[{"areaDesc":"Kisumu County","circle":["-0.0917,34.768 10"],"geocode":[{"valueName":"ISO3166-2","value":"KE-17"}]}]}]}`

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    string  `json:"code"`
		Param   *string `json:"param"`
	} `json:"error"`
}

func (e *env) alertXML(id, key string) []byte {
	e.t.Helper()
	w := e.must(http.StatusOK, "GET", "/alerts/"+url.PathEscape(id), key, "", nil)
	if ct := w.Header().Get("Content-Type"); ct != ContentType {
		e.t.Errorf("Content-Type %s", ct)
	}
	return w.Body.Bytes()
}

type feed struct {
	XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string   `xml:"id"`
	Updated string   `xml:"updated"`
	Entries []struct {
		ID      string `xml:"id"`
		Title   string `xml:"title"`
		Updated string `xml:"updated"`
		Author  string `xml:"author>name"`
		Summary string `xml:"summary"`
		Link    struct {
			Rel  string `xml:"rel,attr"`
			Type string `xml:"type,attr"`
			Href string `xml:"href,attr"`
		} `xml:"link"`
	} `xml:"entry"`
}

func (e *env) feed(key string) feed {
	e.t.Helper()
	w := e.must(http.StatusOK, "GET", "/feed.atom", key, "", nil)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/atom+xml") {
		e.t.Errorf("feed Content-Type %s", ct)
	}
	var f feed
	if err := xml.Unmarshal(w.Body.Bytes(), &f); err != nil {
		e.t.Fatalf("feed is not well-formed Atom: %v\n%s", err, w.Body)
	}
	for _, en := range f.Entries {
		if en.ID == "" || en.Title == "" || en.Updated == "" || en.Author == "" || en.Link.Rel != "alternate" || en.Link.Type != ContentType {
			e.t.Errorf("incomplete entry %+v", en)
		}
		if _, err := time.Parse(time.RFC3339, en.Updated); err != nil {
			e.t.Errorf("entry updated %q: %v", en.Updated, err)
		}
	}
	return f
}

func (f feed) titles() []string {
	var out []string
	for _, en := range f.Entries {
		out = append(out, en.Title)
	}
	return out
}

func TestApproveFlow(t *testing.T) {
	e := newEnv(t, nil)
	var a Alert
	w := e.must(http.StatusCreated, "POST", "/alerts", "a", choleraJSON, &a)
	if a.Status != StatusDraft || a.MsgType != MsgAlert || a.Scope != "Public" || a.Sender != "clinic-a" || a.Sent.String() != "2026-11-24T07:00:00-00:00" {
		t.Errorf("created %+v", a)
	}
	if loc := w.Header().Get("Location"); loc != "http://grid.example"+mount+"/alerts/"+a.Identifier {
		t.Errorf("Location %s", loc)
	}
	xmllint(t, e.alertXML(a.Identifier, "a"))

	var eb errorBody
	e.must(http.StatusForbidden, "POST", "/alerts/"+a.Identifier+"/approve", "a", "", &eb)
	if eb.Error.Type != "permission_error" || eb.Error.Code != "forbidden" || eb.Error.Message == "" {
		t.Errorf("403 body %+v", eb)
	}
	if f := e.feed("a"); len(f.Entries) != 0 {
		t.Errorf("a draft is in the feed: %v", f.titles())
	}

	e.now = e.now.Add(time.Hour)
	var approved Alert
	e.must(http.StatusOK, "POST", "/alerts/"+a.Identifier+"/approve", "a-admin", "", &approved)
	if approved.Status != StatusActual || !approved.Sent.Equal(e.now) {
		t.Errorf("approved %+v", approved)
	}
	e.must(http.StatusConflict, "POST", "/alerts/"+a.Identifier+"/approve", "a-admin", "", nil)
	xmllint(t, e.alertXML(a.Identifier, "a"))

	f := e.feed("a")
	if len(f.Entries) != 1 {
		t.Fatalf("feed: %v", f.titles())
	}
	en := f.Entries[0]
	if en.Title != "Cholera outbreak in Kisumu" || en.Summary != "Cases rose sharply this week." || en.Author != "clinic-a" ||
		en.Updated != "2026-11-24T08:00:00Z" || en.Link.Href != "http://grid.example"+mount+"/alerts/"+a.Identifier {
		t.Errorf("entry %+v", en)
	}
	// The entry's link serves the alert.
	href, _ := url.Parse(en.Link.Href)
	if got, _ := ParseXML(e.alertXML(strings.TrimPrefix(href.Path, mount+"/alerts/"), "a")); got.Identifier != a.Identifier {
		t.Errorf("link serves %+v", got)
	}
	// Another tenant sees neither the alert nor its feed entry.
	e.must(http.StatusNotFound, "GET", "/alerts/"+a.Identifier, "b", "", nil)
	if f := e.feed("b"); len(f.Entries) != 0 || f.ID == e.feed("a").ID {
		t.Errorf("tenant b's feed %+v", f)
	}
	// Expired alerts leave the feed.
	e.now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if f := e.feed("a"); len(f.Entries) != 0 {
		t.Errorf("expired alert in the feed: %v", f.titles())
	}
}

func TestPublishNeedsAdmin(t *testing.T) {
	e := newEnv(t, nil)
	body := strings.Replace(choleraJSON, `{"info"`, `{"status":"Actual","info"`, 1)
	e.must(http.StatusForbidden, "POST", "/alerts", "a", body, nil)
	var a Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a-admin", body, &a)
	if a.Status != StatusActual {
		t.Errorf("status %s", a.Status)
	}
	if f := e.feed("a"); len(f.Entries) != 1 {
		t.Errorf("feed %v", f.titles())
	}
}

func TestUpdateAndCancel(t *testing.T) {
	e := newEnv(t, nil)
	var orig, upd, cancel Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a-admin", strings.Replace(choleraJSON, `{"info"`, `{"status":"Actual","info"`, 1), &orig)

	// A tenant's update is a draft until an admin approves it.
	e.now = e.now.Add(time.Hour)
	e.must(http.StatusCreated, "POST", "/alerts/"+orig.Identifier+"/update", "a", `{"note":"More cases","info":[{"category":["Health"],"event":"Cholera outbreak","urgency":"Immediate","severity":"Extreme","certainty":"Observed","headline":"Cholera spreading in Kisumu","area":[{"areaDesc":"Kisumu County"}]}]}`, &upd)
	if upd.MsgType != MsgUpdate || upd.Status != StatusDraft || upd.References != referenceTo(orig) || upd.Sender != orig.Sender || upd.Identifier == orig.Identifier || upd.Note != "More cases" {
		t.Errorf("update %+v", upd)
	}
	xmllint(t, e.alertXML(upd.Identifier, "a"))
	e.must(http.StatusConflict, "POST", "/alerts/"+upd.Identifier+"/cancel", "a-admin", "", nil) // a draft cannot be cancelled
	if got := e.feed("a").titles(); len(got) != 1 || got[0] != "Cholera outbreak in Kisumu" {
		t.Errorf("feed before approval %v", got)
	}
	e.now = e.now.Add(time.Minute)
	e.must(http.StatusOK, "POST", "/alerts/"+upd.Identifier+"/approve", "a-admin", "", &upd)
	if got := e.feed("a").titles(); len(got) != 1 || got[0] != "Cholera spreading in Kisumu" {
		t.Errorf("feed after the update %v", got)
	}
	// The original is superseded: only the latest of the chain may change.
	e.must(http.StatusConflict, "POST", "/alerts/"+orig.Identifier+"/update", "a-admin", `{}`, nil)

	e.now = e.now.Add(time.Hour)
	e.must(http.StatusCreated, "POST", "/alerts/"+upd.Identifier+"/cancel", "a-admin", `{"status":"Actual","note":"Outbreak contained"}`, &cancel)
	if cancel.MsgType != MsgCancel || cancel.Status != StatusActual || cancel.References != referenceTo(orig)+" "+referenceTo(upd) || len(cancel.Info) != 1 {
		t.Errorf("cancel %+v", cancel)
	}
	xmllint(t, e.alertXML(cancel.Identifier, "a"))
	if got := e.feed("a").titles(); len(got) != 1 || got[0] != "Cancelled: Cholera spreading in Kisumu" {
		t.Errorf("feed after the cancel %v", got)
	}
	e.must(http.StatusConflict, "POST", "/alerts/"+cancel.Identifier+"/update", "a-admin", `{}`, nil)
	e.must(http.StatusConflict, "POST", "/alerts/"+upd.Identifier+"/cancel", "a-admin", `{}`, nil)

	// Server-set fields are refused rather than ignored.
	var eb errorBody
	e.must(http.StatusBadRequest, "POST", "/alerts/"+cancel.Identifier+"/update", "a-admin", `{"references":"x"}`, &eb)
	if eb.Error.Param == nil || *eb.Error.Param != "references" {
		t.Errorf("error %+v", eb)
	}

	var list struct {
		Object string  `json:"object"`
		Data   []Alert `json:"data"`
	}
	e.must(http.StatusOK, "GET", "/alerts", "a", "", &list)
	if list.Object != "list" || len(list.Data) != 3 || list.Data[0].Identifier != cancel.Identifier || list.Data[2].Identifier != orig.Identifier {
		t.Errorf("list %+v", list)
	}
	e.must(http.StatusOK, "GET", "/alerts?status=draft", "a", "", &list)
	if len(list.Data) != 0 {
		t.Errorf("drafts %+v", list.Data)
	}
}

func TestPostCAPXML(t *testing.T) {
	e := newEnv(t, nil)
	doc := string(exampleAlert(t))
	var eb errorBody
	e.must(http.StatusForbidden, "POST", "/alerts", "a", doc, &eb) // its status is Actual
	var a Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a-admin", doc, &a)
	if a.Identifier != "KAR0-0306112239-SW" || a.Sender != "KARO@CLETS.DOJ.CA.GOV" || len(a.Info) != 2 {
		t.Errorf("created %+v", a)
	}
	xmllint(t, e.alertXML(a.Identifier, "a"))
	e.must(http.StatusConflict, "POST", "/alerts", "a-admin", doc, nil)

	// JSON on request.
	r := httptest.NewRequest("GET", mount+"/alerts/"+a.Identifier, nil)
	r.Header.Set("Authorization", "Bearer a")
	r.Header.Set("Accept", "application/json")
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !strings.Contains(w.Body.String(), `"identifier":"KAR0-0306112239-SW"`) {
		t.Errorf("JSON GET: %d %s", w.Code, w.Body)
	}
}

func TestTranslation(t *testing.T) {
	var calls []string
	tr := TranslatorFunc(func(_ context.Context, text, lang string) (string, error) {
		calls = append(calls, lang)
		if lang == "ar" {
			return "", errors.New("model unavailable")
		}
		return "[" + lang + "] " + text, nil
	})
	e := newEnv(t, tr)
	e.must(http.StatusOK, "PUT", "/settings", "a-admin", `{"languages":["sw"]}`, nil)

	// The tenant's languages by default.
	var a Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a", choleraJSON, &a)
	if len(a.Info) != 2 {
		t.Fatalf("info blocks %+v", a.Info)
	}
	sw := a.Info[1]
	if sw.Language != "sw" || sw.Headline != "[sw] Cholera outbreak in Kisumu" || sw.Instruction != "[sw] Boil drinking water." ||
		sw.Description != "" || !isMachineTranslated(sw) || isMachineTranslated(a.Info[0]) || sw.Event != a.Info[0].Event || len(sw.Area) != 1 {
		t.Errorf("translated block %+v", sw)
	}
	xmllint(t, e.alertXML(a.Identifier, "a"))

	// The request's languages instead; English is there already; a failed language is left out.
	calls = nil
	body := strings.Replace(choleraJSON, `{"info"`, `{"languages":["fr","en-GB","ar"],"info"`, 1)
	e.must(http.StatusCreated, "POST", "/alerts", "a", body, &a)
	if len(a.Info) != 2 || a.Info[1].Language != "fr" || strings.Join(calls, " ") != "fr fr ar" {
		t.Errorf("languages %+v, calls %v", a.Info, calls)
	}
	xmllint(t, e.alertXML(a.Identifier, "a"))

	var eb errorBody
	e.must(http.StatusBadRequest, "POST", "/alerts?languages=fr,not%20a%20tag", "a", choleraJSON, &eb)
	if eb.Error.Param == nil || *eb.Error.Param != "languages[1]" {
		t.Errorf("error %+v", eb)
	}
}

func TestWithoutTranslatorOneLanguage(t *testing.T) {
	e := newEnv(t, nil)
	e.must(http.StatusOK, "PUT", "/settings", "a-admin", `{"languages":["sw"],"sender":"clinic-a@health.example"}`, nil)
	var a Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a", choleraJSON, &a)
	if len(a.Info) != 1 || a.Sender != "clinic-a@health.example" {
		t.Errorf("%+v", a)
	}
}

// weeks builds a dataValueSets body of one series from week 1 of 2026.
func weeks(orgUnit, element string, from int, values ...string) string {
	var dv []string
	for i, v := range values {
		dv = append(dv, fmt.Sprintf(`{"dataElement":%q,"period":"2026W%d","value":%s}`, element, from+i, v))
	}
	return fmt.Sprintf(`{"dataSet":"EWARS","orgUnit":%q,"dataValues":[%s]}`, orgUnit, strings.Join(dv, ","))
}

type casesResponse struct {
	Imported    int          `json:"imported"`
	Evaluations []Evaluation `json:"evaluations"`
}

func TestCasesDraftAlertOnSpike(t *testing.T) {
	e := newEnv(t, nil)
	var res casesResponse
	// Eleven flat weeks as history: evaluated only at week 11, which is flat.
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 1, `"10"`, `"10"`, `"10"`, `"10"`, `"10"`, `"10"`, `"10"`, `"10"`, `"10"`, `"10"`, `"10"`), &res)
	if res.Imported != 11 || len(res.Evaluations) != 1 || res.Evaluations[0].Period != "2026W11" || res.Evaluations[0].Alert != "" ||
		res.Evaluations[0].C2 == nil || res.Evaluations[0].C3 != nil {
		t.Fatalf("history: %+v", res)
	}
	// Week 12 spikes.
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 12, `"30"`), &res)
	ev := res.Evaluations[0]
	if ev.Weeks != 12 || ev.Value != 30 || !ev.C1.Flag || !ev.C2.Flag || !ev.C3.Flag || ev.Alert == "" {
		t.Fatalf("spike: %+v", ev)
	}
	a, err := ParseXML(e.alertXML(ev.Alert, "a"))
	if err != nil {
		t.Fatal(err)
	}
	in := a.Info[0]
	if a.Status != StatusDraft || in.Category[0] != "Health" || in.Area[0].AreaDesc != "Kisumu" {
		t.Errorf("drafted %+v", a)
	}
	for _, want := range []string{"cholera", "Kisumu", "2026W12"} {
		if !strings.Contains(in.Headline, want) {
			t.Errorf("headline %q lacks %s", in.Headline, want)
		}
	}
	for _, want := range []string{": 30,", "about 10 was expected", "EARS C1, EARS C2, EARS C3", "C1 = 20.00"} {
		if !strings.Contains(in.Description, want) {
			t.Errorf("description %q lacks %q", in.Description, want)
		}
	}
	xmllint(t, e.alertXML(ev.Alert, "a"))
	if f := e.feed("a"); len(f.Entries) != 0 {
		t.Errorf("a drafted alert is in the feed")
	}

	// The same report again drafts no second alert.
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 12, `30`), &res)
	all, _ := e.p.store.alerts(context.Background(), clinicA.ID)
	if res.Evaluations[0].Alert != ev.Alert || len(all) != 1 {
		t.Errorf("re-sent week: %+v, %d alerts", res.Evaluations[0], len(all))
	}
	// Another tenant's history is its own: too short to evaluate.
	e.must(http.StatusOK, "POST", "/cases", "b", weeks("Kisumu", "cholera", 12, `30`), &res)
	if ev := res.Evaluations[0]; ev.Weeks != 1 || ev.C1 != nil || ev.Alert != "" {
		t.Errorf("tenant b: %+v", ev)
	}
}

func TestCasesSteadySeriesDraftsNothing(t *testing.T) {
	e := newEnv(t, nil)
	var res casesResponse
	vals := []string{"10", "12", "8", "11", "9", "10", "10", "12", "8", "11", "9", "10"}
	for i, v := range vals {
		e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", i+1, v), &res)
	}
	ev := res.Evaluations[0]
	if ev.Weeks != 12 || ev.C1 == nil || ev.C2 == nil || ev.C3 == nil || ev.C1.Flag || ev.C2.Flag || ev.C3.Flag || ev.Alert != "" {
		t.Errorf("steady: %+v", ev)
	}
	// A missing week is a gap, not a zero.
	e.must(http.StatusOK, "POST", "/cases", "a", weeks("Kisumu", "cholera", 14, "40"), &res)
	if ev := res.Evaluations[0]; ev.Weeks != 1 || ev.Alert != "" {
		t.Errorf("after a gap: %+v", ev)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, nil)
	var a Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a", choleraJSON, &a)
	cases := []struct {
		name, method, path, key, body string
		status                        int
		code, param                   string
	}{
		{"no key", "GET", "/alerts", "", "", 401, "invalid_api_key", ""},
		{"malformed JSON", "POST", "/alerts", "a", `{"info":[`, 400, "invalid", ""},
		{"JSON array", "POST", "/alerts", "a", `[]`, 400, "invalid", ""},
		{"empty body", "POST", "/alerts", "a", ``, 400, "invalid", ""},
		{"trailing data", "POST", "/alerts", "a", choleraJSON + `{}`, 400, "invalid", ""},
		{"unknown field", "POST", "/alerts", "a", `{"headLine":"x"}`, 400, "invalid", "headLine"},
		{"wrong type", "POST", "/alerts", "a", `{"info":{}}`, 400, "invalid", "info"},
		{"no info", "POST", "/alerts", "a", `{"status":"Draft"}`, 400, "invalid", "info"},
		{"bad enum", "POST", "/alerts", "a", strings.Replace(choleraJSON, `"Severe"`, `"Bad"`, 1), 400, "invalid", "info[0].severity"},
		{"bad circle", "POST", "/alerts", "a", strings.Replace(choleraJSON, `-0.0917,34.768 10`, `-0.0917 34.768`, 1), 400, "invalid", "info[0].area[0].circle[0]"},
		{"bad sent", "POST", "/alerts", "a", `{"sent":"today"}`, 400, "invalid", ""},
		{"Ack", "POST", "/alerts", "a", strings.Replace(choleraJSON, `{"info"`, `{"msgType":"Ack","references":"a,b,2026-11-24T10:00:00+03:00","info"`, 1), 400, "invalid", "msgType"},
		{"malformed XML", "POST", "/alerts", "a", `<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>`, 400, "invalid", ""},
		{"not CAP", "POST", "/alerts", "a", `<rss/>`, 400, "invalid", ""},
		{"unknown alert", "GET", "/alerts/nope", "a", "", 404, "not_found", "identifier"},
		{"approve unknown", "POST", "/alerts/nope/approve", "a-admin", "", 404, "not_found", "identifier"},
		{"update unknown", "POST", "/alerts/nope/update", "a", "{}", 404, "not_found", "identifier"},
		{"update a draft", "POST", "/alerts/" + a.Identifier + "/update", "a", "{}", 409, "conflict", ""},
		{"bad status filter", "GET", "/alerts?status=Live", "a", "", 400, "invalid", "status"},
		{"empty dataValues", "POST", "/cases", "a", `{"dataValues":[]}`, 400, "invalid", "dataValues"},
		{"non-numeric value", "POST", "/cases", "a", weeks("o", "d", 1, `"ten"`), 400, "invalid", "dataValues[0].value"},
		{"bad period", "POST", "/cases", "a", `{"orgUnit":"o","period":"2026-11-24","dataValues":[{"dataElement":"d","value":1}]}`, 400, "invalid", "dataValues[0].period"},
		{"wrong method", "DELETE", "/alerts", "a", "", 405, "method_not_allowed", ""},
		{"wrong method on cases", "GET", "/cases", "a", "", 405, "method_not_allowed", ""},
		{"unknown path", "GET", "/nothing", "a", "", 404, "not_found", ""},
	}
	for _, c := range cases {
		w := e.do(c.method, c.path, c.key, c.body)
		var eb errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || w.Code != c.status || eb.Error.Code != c.code || eb.Error.Message == "" || eb.Error.Type == "" {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
			continue
		}
		if got := ""; eb.Error.Param != nil && *eb.Error.Param != c.param || eb.Error.Param == nil && c.param != "" {
			if eb.Error.Param != nil {
				got = *eb.Error.Param
			}
			t.Errorf("%s: param %q, want %q", c.name, got, c.param)
		}
	}
	// Content types other than JSON and CAP XML.
	r := httptest.NewRequest("POST", mount+"/alerts", strings.NewReader("x"))
	r.Header.Set("Authorization", "Bearer a")
	r.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	if w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %s", w.Code, w.Body)
	}
	if w := e.do("PUT", "/alerts/x", "a", ""); w.Header().Get("Allow") != "GET" {
		t.Errorf("Allow %q", w.Header().Get("Allow"))
	}
	if w := e.do("PUT", "/alerts", "a", ""); w.Header().Get("Allow") != "GET, POST" {
		t.Errorf("Allow %q", w.Header().Get("Allow"))
	}
}

func TestDraftFromAnomaly(t *testing.T) {
	e := newEnv(t, TranslatorFunc(func(_ context.Context, text, lang string) (string, error) { return lang + ": " + text, nil }))
	p, ctx := e.p, context.Background()
	expected := 31.25
	an := Anomaly{Subject: "malaria cases", Area: "Siaya", Period: "2026W47", Observed: 80, Expected: &expected, Detector: "anomaly/zscore", Languages: []string{"sw"}}
	a, err := p.DraftFromAnomaly(ctx, clinicA, an)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != StatusDraft || a.Sender != "clinic-a" || len(a.Info) != 2 || a.Info[0].Headline != "Unusually high malaria cases in Siaya, 2026W47" ||
		!strings.Contains(a.Info[0].Description, "80, where about 31.3 was expected. Flagged by anomaly/zscore.") || a.Info[1].Language != "sw" {
		t.Errorf("drafted %+v", a)
	}
	doc, _ := a.XML()
	xmllint(t, doc)
	again, err := p.DraftFromAnomaly(ctx, clinicA, an)
	if err != nil || again.Identifier != a.Identifier {
		t.Errorf("second draft: %v %v", again.Identifier, err)
	}
	if all, _ := p.store.alerts(ctx, clinicA.ID); len(all) != 1 {
		t.Errorf("%d alerts", len(all))
	}
	if other, _ := p.DraftFromAnomaly(ctx, clinicB, an); other.Identifier == a.Identifier {
		t.Error("two tenants share an identifier")
	}
	if _, err := p.DraftFromAnomaly(ctx, clinicA, Anomaly{Subject: "x", Area: "y"}); err == nil {
		t.Error("an anomaly without a period was drafted")
	}
	if _, err := p.DraftFromAnomaly(ctx, clinicA, Anomaly{Subject: "x", Area: "y", Period: "p", Category: "Disease"}); err == nil {
		t.Error("an anomaly with a bad category was drafted")
	}
	// Without an expected value, the alert says what was seen only.
	a, err = p.DraftFromAnomaly(ctx, clinicA, Anomaly{Subject: "feeder load", Area: "Kisumu", Period: "2026-11-24T10:00:00Z", Observed: 812, Category: "Infra"})
	if err != nil || a.Info[0].Headline != "Unusual feeder load in Kisumu, 2026-11-24T10:00:00Z" || strings.Contains(a.Info[0].Description, "expected") {
		t.Errorf("drafted %+v, %v", a.Info, err)
	}
}

// Mistakes in an update's or a cancel's life get errors that say what to do.
func TestChangeErrorsExplain(t *testing.T) {
	e := newEnv(t, nil)
	var orig, upd, cancel Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a-admin", strings.Replace(choleraJSON, `{"info"`, `{"status":"Actual","info"`, 1), &orig)

	// A field the server sets is named as such, not taken for a typo.
	var eb errorBody
	e.must(http.StatusBadRequest, "POST", "/alerts/"+orig.Identifier+"/update", "a", `{"identifier":"mine"}`, &eb)
	if eb.Error.Param == nil || *eb.Error.Param != "identifier" || !strings.Contains(eb.Error.Message, "set by the server") {
		t.Errorf("identifier in an update: %+v", eb)
	}

	// An update drafted, then the alert cancelled: neither can go on, and
	// the errors say the alert was cancelled rather than send the caller
	// to update the cancellation.
	e.must(http.StatusCreated, "POST", "/alerts/"+orig.Identifier+"/update", "a", `{"note":"More cases"}`, &upd)
	e.now = e.now.Add(time.Minute)
	e.must(http.StatusCreated, "POST", "/alerts/"+orig.Identifier+"/cancel", "a-admin", `{"status":"Actual"}`, &cancel)
	e.must(http.StatusConflict, "POST", "/alerts/"+orig.Identifier+"/update", "a-admin", `{}`, &eb)
	if !strings.Contains(eb.Error.Message, "cancelled by \""+cancel.Identifier+"\"") || strings.Contains(eb.Error.Message, "update or cancel that one") {
		t.Errorf("update of a cancelled alert: %s", eb.Error.Message)
	}
	e.must(http.StatusConflict, "POST", "/alerts/"+upd.Identifier+"/approve", "a-admin", "", &eb)
	if !strings.Contains(eb.Error.Message, "cancelled by \""+cancel.Identifier+"\"") || strings.Contains(eb.Error.Message, "draft the change against") {
		t.Errorf("approval of an update to a cancelled alert: %s", eb.Error.Message)
	}
}

// An alert that has expired already would never reach the feed: it is
// refused when created, and a draft that expired waiting is not published.
func TestExpiredAlertsRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.now = time.Date(2026, 11, 30, 14, 0, 0, 0, time.UTC) // after choleraJSON's expiry
	var eb errorBody
	e.must(http.StatusBadRequest, "POST", "/alerts", "a-admin", strings.Replace(choleraJSON, `{"info"`, `{"status":"Actual","info"`, 1), &eb)
	if eb.Error.Param == nil || *eb.Error.Param != "info[0].expires" || !strings.Contains(eb.Error.Message, "has passed") {
		t.Errorf("expired alert: %+v", eb)
	}
	// One info block still in force is enough.
	two := strings.Replace(choleraJSON, `"info":[{`, `"info":[{"language":"sw","category":["Health"],"event":"Kipindupindu","urgency":"Expected","severity":"Severe","certainty":"Likely","expires":"2026-12-07T00:00:00Z"},{`, 1)
	e.must(http.StatusCreated, "POST", "/alerts", "a", two, nil)

	e.now = time.Date(2026, 11, 24, 7, 0, 0, 0, time.UTC)
	var draft Alert
	e.must(http.StatusCreated, "POST", "/alerts", "a", choleraJSON, &draft)
	e.now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	e.must(http.StatusConflict, "POST", "/alerts/"+draft.Identifier+"/approve", "a-admin", "", &eb)
	if !strings.Contains(eb.Error.Message, "expired while it waited") {
		t.Errorf("approval of an expired draft: %+v", eb)
	}
}
