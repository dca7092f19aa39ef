package forecast

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"aigrid"
)

func post(t *testing.T, p *Package, contentType, target, body string) (*httptest.ResponseRecorder, *aigrid.Call) {
	t.Helper()
	call := &aigrid.Call{ID: "req-1"}
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r = r.WithContext(aigrid.WithCall(r.Context(), call))
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	return w, call
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return v
}

func TestHandlerOneSeries(t *testing.T) {
	w, call := post(t, New(), "application/json", "/", `{"series": [1,2,3,4,5,6,7,8,9,10], "horizon": 3, "level": [80, 95]}`)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	resp := decode[response](t, w)
	if len(resp.Forecasts) != 1 || resp.Horizon != 3 {
		t.Fatalf("response %+v", resp)
	}
	f := resp.Forecasts[0]
	if f.Method != MethodHolt || f.ID != "0" || f.Points != 10 {
		t.Errorf("forecast %+v, want holt on series 0 of 10 points", f)
	}
	for k, v := range f.Point {
		if !near(v, float64(11+k), 1e-6) {
			t.Errorf("step %d: %v, want %d", k+1, v, 11+k)
		}
	}
	if len(f.Intervals) != 2 || f.Intervals[0].Level != 80 || f.Intervals[1].Level != 95 || len(f.Intervals[1].Upper) != 3 {
		t.Errorf("intervals %+v", f.Intervals)
	}
	if call.Units != 3 {
		t.Errorf("metered %d units, want 3", call.Units)
	}
}

func TestHandlerManySeries(t *testing.T) {
	body := `{"series": [{"id": "north", "values": [5,5,5,5,5,5]}, {"id": 7, "values": [1,3,1,3,1,3,1,3,1,3,1,3]}], "horizon": 4, "season": 2}`
	w, call := post(t, New(), "application/json; charset=utf-8", "/", body)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	resp := decode[response](t, w)
	if len(resp.Forecasts) != 2 || resp.Forecasts[0].ID != "north" || resp.Forecasts[1].ID != "7" {
		t.Fatalf("forecasts %+v", resp.Forecasts)
	}
	for k, v := range resp.Forecasts[1].Point {
		if want := []float64{1, 3}[k%2]; !near(v, want, 1e-9) {
			t.Errorf("step %d: %v, want %v", k+1, v, want)
		}
	}
	if len(resp.Forecasts[0].Intervals) != 2 {
		t.Errorf("default levels: %+v", resp.Forecasts[0].Intervals)
	}
	if call.Units != 8 {
		t.Errorf("metered %d units, want 8", call.Units)
	}
}

const wfpCSV = `date,admin1,market,category,commodity,unit,priceflag,pricetype,currency,price,usdprice
#date,#adm1+name,#loc+market+name,#item+type,#item+name,#item+unit,#item+price+flag,#item+type+price,#currency,#value,#value+usd
2020-03-15,Amhara,Gondar,cereals and tubers,Maize,KG,actual,Retail,ETB,12,0.3
2020-01-15,Amhara,Gondar,cereals and tubers,Maize,KG,actual,Retail,ETB,10,0.3
2020-02-15,Amhara,Gondar,cereals and tubers,Maize,KG,actual,Retail,ETB,11,0.3
2020-02-15,Amhara,Gondar,cereals and tubers,Maize,KG,aggregate,Retail,ETB,11,0.3
2020-04-15,Amhara,Gondar,cereals and tubers,Maize,KG,actual,Retail,ETB,13,0.3
2020-05-15,Amhara,Gondar,cereals and tubers,Maize,KG,actual,Retail,ETB,,
2020-05-15,Amhara,Gondar,cereals and tubers,Maize,KG,actual,Retail,ETB,14,0.3
2020-01-15,Tigray,Mekele,cereals and tubers,Sorghum,KG,actual,Retail,ETB,20,0.5
2020-02-15,Tigray,Mekele,cereals and tubers,Sorghum,KG,actual,Retail,ETB,20,0.5
`

func TestHandlerHXL(t *testing.T) {
	w, call := post(t, New(), "text/csv", "/?horizon=2&level=90", wfpCSV)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	resp := decode[response](t, w)
	if len(resp.Forecasts) != 1 || len(resp.Skipped) != 1 {
		t.Fatalf("forecasts %+v, skipped %+v", resp.Forecasts, resp.Skipped)
	}
	f := resp.Forecasts[0]
	if f.ID != "Amhara / Gondar / cereals and tubers / Maize / KG / Retail / ETB" || f.Key["#item+name"] != "Maize" || f.Key["#item+price+type"] != "Retail" {
		t.Errorf("id %q, key %v", f.ID, f.Key)
	}
	if f.Points != 5 || f.LastDate != "2020-05-15" {
		t.Errorf("points %d (want 5: the rows sorted, one value per date), last date %s", f.Points, f.LastDate)
	}
	// 10, 11, 12, 13, 14: a line.
	for k, v := range f.Point {
		if !near(v, float64(15+k), 1e-6) {
			t.Errorf("step %d: %v, want %d (method %s)", k+1, v, 15+k, f.Method)
		}
	}
	if len(f.Intervals) != 1 || f.Intervals[0].Level != 90 {
		t.Errorf("intervals %+v", f.Intervals)
	}
	if s := resp.Skipped[0]; !strings.HasPrefix(s.ID, "Tigray") || s.Points != 2 {
		t.Errorf("skipped %+v", s)
	}
	if call.Units != 2 {
		t.Errorf("metered %d units, want 2", call.Units)
	}
	w, _ = post(t, New(), "text/csv", "/?horizon=2&value=%23value%2Busd", wfpCSV)
	if resp := decode[response](t, w); w.Code != http.StatusOK || !near(resp.Forecasts[0].Point[0], 0.3, 1e-9) {
		t.Errorf("?value=#value+usd: status %d, %s", w.Code, w.Body)
	}
}

func TestHandlerErrors(t *testing.T) {
	long := make([]string, 60)
	for i := range long {
		long[i] = "1"
	}
	series := "[" + strings.Join(long, ",") + "]"
	for _, c := range []struct {
		name, contentType, target, body string
		status                          int
		param                           string
	}{
		{"empty body", "application/json", "/", ``, 400, ""},
		{"not JSON", "application/json", "/", `{"series": [1,2`, 400, ""},
		{"not an object", "application/json", "/", `[1,2,3]`, 400, ""},
		{"unknown field", "application/json", "/", `{"series": [1,2,3], "horizon": 1, "horizion": 2}`, 400, "horizion"},
		{"no horizon", "application/json", "/", `{"series": [1,2,3]}`, 400, "horizon"},
		{"no series", "application/json", "/", `{"horizon": 2}`, 400, "series"},
		{"empty series", "application/json", "/", `{"series": [], "horizon": 2}`, 400, "series"},
		{"empty list of series", "application/json", "/", `{"series": [{"id": "a", "values": []}], "horizon": 2}`, 400, "series"},
		{"null value", "application/json", "/", `{"series": [1, null, 3], "horizon": 2}`, 400, "series"},
		{"string value", "application/json", "/", `{"series": [1, "NaN", 3], "horizon": 2}`, 400, "series"},
		{"huge value", "application/json", "/", `{"series": [1, 1e400, 3], "horizon": 2}`, 400, "series"},
		{"zero horizon", "application/json", "/", `{"series": ` + series + `, "horizon": 0}`, 400, "horizon"},
		{"negative horizon", "application/json", "/", `{"series": ` + series + `, "horizon": -4}`, 400, "horizon"},
		{"absurd horizon", "application/json", "/", `{"series": ` + series + `, "horizon": 100000}`, 400, "horizon"},
		{"season 0", "application/json", "/", `{"series": ` + series + `, "horizon": 2, "season": 0}`, 400, "season"},
		{"season too long", "application/json", "/", `{"series": ` + series + `, "horizon": 2, "season": 52}`, 400, "season"},
		{"season text", "application/json", "/", `{"series": ` + series + `, "horizon": 2, "season": "weekly"}`, 400, "season"},
		{"level 0", "application/json", "/", `{"series": ` + series + `, "horizon": 2, "level": [0]}`, 400, "level"},
		{"bad method", "application/json", "/", `{"series": ` + series + `, "horizon": 2, "method": "lstm"}`, 400, "method"},
		{"bad id", "application/json", "/", `{"series": [{"id": {}, "values": [1,2,3]}], "horizon": 2}`, 400, "series[0].id"},
		{"xml", "application/xml", "/", `<series/>`, 415, ""},
		{"csv without horizon", "text/csv", "/", wfpCSV, 400, "horizon"},
		{"csv without hashtags", "text/csv", "/?horizon=2", "date,price\n2020-01-01,3\n", 400, ""},
		{"csv without value", "text/csv", "/?horizon=2&value=%23value%2Beur", wfpCSV, 400, "value"},
		{"csv ragged", "text/csv", "/?horizon=2", "#date,#value\n2020-01-01,3,4\n", 400, ""},
		{"csv bad quote", "text/csv", "/?horizon=2", "#date,#value\n2020-01-01,\"3\n", 400, ""},
		{"csv bad number", "text/csv", "/?horizon=2", "#date,#value\n2020-01-01,three\n", 400, "value"},
		{"csv bad date", "text/csv", "/?horizon=2", "#date,#value\nyesterday,3\n", 400, "date"},
		{"csv all too short", "text/csv", "/?horizon=2", "#date,#value\n2020-01-01,3\n", 400, "series"},
	} {
		w, call := post(t, New(), c.contentType, c.target, c.body)
		if w.Code != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, w.Code, c.status, w.Body)
			continue
		}
		e := decode[struct {
			Error struct {
				Message string  `json:"message"`
				Type    string  `json:"type"`
				Code    string  `json:"code"`
				Param   *string `json:"param"`
			} `json:"error"`
		}](t, w).Error
		param := ""
		if e.Param != nil {
			param = *e.Param
		}
		if e.Message == "" || e.Type != "invalid_request_error" || param != c.param {
			t.Errorf("%s: error %+v (param %q), want param %q", c.name, e, param, c.param)
		}
		if call.Units != 0 {
			t.Errorf("%s: metered %d units for a failed call", c.name, call.Units)
		}
	}
}

func TestHandlerLimits(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"horizon": 1, "series": [`)
	for i := range MaxSeries + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"values": [1,2,3]}`)
	}
	b.WriteString(`]}`)
	if w, _ := post(t, New(), "application/json", "/", b.String()); w.Code != 400 || !strings.Contains(w.Body.String(), "Too many series") {
		t.Errorf("too many series: %d %s", w.Code, w.Body)
	}
	big := `{"horizon": 1, "series": [` + strings.Repeat("1,", maxBody/2) + `1]}`
	if w, _ := post(t, New(), "application/json", "/", big); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("too large a body: %d %s", w.Code, w.Body)
	}
}

func TestHandlerRoutes(t *testing.T) {
	p := New()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET /: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
	w, _ = post(t, p, "application/json", "/forecast", `{}`)
	if w.Code != http.StatusNotFound {
		t.Errorf("POST /forecast: %d", w.Code)
	}
	if info := p.Info(); info.Name != "forecast" || len(info.Endpoints) != 1 || info.Unit == "" {
		t.Errorf("info %+v", info)
	}
}

// Errors name the mistake in the request's terms, not Go's, and a method at
// a cycle the request lacks is told so rather than called unknown.
func TestHandlerErrorMessages(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"series": [[1,2,3],[4,5,6]], "horizon": 1}`, "found array where a number goes"},
		{`{"series": [{"id": "a", "values": "1,2,3"}], "horizon": 1}`, "values is string where a list goes"},
		{`{"series": [1,2,3,4,5,6], "horizon": 1, "method": "ses@168"}`, `season [1] gives none: list it after the main period`},
		{`{"series": [1,2,3,4,5,6,7,8], "horizon": 1, "season": [2, 4], "method": "seasonal_naive+ses@3"}`, "not one of season [2 4]'s: use one of [4] after @"},
	} {
		w, _ := post(t, New(), "application/json", "/", c.body)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), c.want) || strings.Contains(w.Body.String(), "Go value") {
			t.Errorf("%s: %d %s, want %q", c.body, w.Code, w.Body, c.want)
		}
	}
}
