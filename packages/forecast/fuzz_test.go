package forecast

import (
	"net/url"
	"testing"

	"aigrid"
)

// FuzzParseJSON checks that no body makes the JSON parser panic, and that
// whatever it accepts is a request the forecaster can serve.
func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{
		`{"series": [1,2,3,4,5], "horizon": 2}`,
		`{"series": [{"id": "a", "values": [1,2,3,4]}, {"id": 2, "values": [4,3,2,1]}], "horizon": 1, "season": [2, 4], "level": [50, 99.9]}`,
		`{"series": [1, null], "horizon": 1}`,
		`{"series": [{}], "horizon": 1, "method": "theta@4"}`,
		`{"series": "1,2,3", "horizon": 1e3}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseJSON(body)
		if err != nil {
			if _, ok := err.(*aigrid.Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		serve(t, req)
	})
}

// FuzzParseCSV does the same for HXL-tagged CSV.
func FuzzParseCSV(f *testing.F) {
	f.Add([]byte(wfpCSV), "2", "1", "80,95")
	f.Add([]byte("#date,#value\n2020-01,1\n2020-02,2\n2020-03,4\n2020-04,3\n"), "1", "2", "")
	f.Add([]byte("x,y\n#date,#value+usd\n2020,1\n"), "3", "24,168", "50")
	f.Add([]byte("#date,#value\n\"2020-01,1\n"), "1", "", "")
	f.Fuzz(func(t *testing.T, body []byte, horizon, season, level string) {
		q := url.Values{"horizon": {horizon}, "season": {season}, "level": {level}}
		req, _, err := parseCSV(body, q)
		if err != nil {
			if _, ok := err.(*aigrid.Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		serve(t, req)
	})
}

// serve forecasts an accepted request, when it is small enough to do so
// quickly; an accepted request must never fail.
func serve(t *testing.T, req request) {
	total := 0
	for _, s := range req.series {
		total += len(s.values)
	}
	if total*req.opts.Horizon > 20000 {
		return
	}
	for _, s := range req.series {
		if _, err := Forecast(s.values, req.opts); err != nil {
			t.Fatalf("accepted series %q failed: %v", s.id, err)
		}
	}
}
