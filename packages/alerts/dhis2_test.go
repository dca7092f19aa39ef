package alerts

import (
	"errors"
	"testing"

	"aigrid"
)

func TestParseWeek(t *testing.T) {
	for in, want := range map[string]string{
		"2026W47": "2026W47", "2026W07": "2026W7", "2026-W1": "2026W1", " 2026w53 ": "2026W53", "2020W53": "2020W53",
	} {
		w, err := parseWeek(in)
		if err != nil || w.String() != want {
			t.Errorf("%q: %v %v, want %s", in, w, err, want)
		}
	}
	// 2025 and 2027 have 52 ISO weeks; 2026 and 2020 have 53.
	for _, bad := range []string{"2025W53", "2027W53", "2026W0", "2026W54", "2026W", "2026W+1", "2026W100", "202611", "2026M11", "20261124", "26W4", "W47", "", "0000W1"} {
		if w, err := parseWeek(bad); err == nil {
			t.Errorf("%q parsed as %v", bad, w)
		}
	}
}

func TestWeekIndexIsConsecutiveAcrossYears(t *testing.T) {
	pairs := [][2]string{{"2025W52", "2026W1"}, {"2026W53", "2027W1"}, {"2026W46", "2026W47"}, {"1969W52", "1970W1"}}
	for _, p := range pairs {
		a, _ := parseWeek(p[0])
		b, _ := parseWeek(p[1])
		if b.index()-a.index() != 1 {
			t.Errorf("%s → %s: %d → %d", p[0], p[1], a.index(), b.index())
		}
	}
}

func TestDecodeDataValueSet(t *testing.T) {
	obs, err := decodeDataValueSet([]byte(`{"dataSet":"EWARS","period":"2026W47","orgUnit":"KE-17",
		"dataValues":[
			{"dataElement":"cholera","value":"12","categoryOptionCombo":"under5"},
			{"dataElement":"cholera","value":3,"categoryOptionCombo":"over5"},
			{"dataElement":"measles","period":"2026W46","orgUnit":"KE-01","value":" 0 ","storedBy":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Observation{{"KE-17", "cholera", "2026W47", 15}, {"KE-01", "measles", "2026W46", 0}}
	if len(obs) != 2 || obs[0] != want[0] || obs[1] != want[1] {
		t.Errorf("got %+v, want %+v", obs, want)
	}
}

func TestDecodeDataValueSetRejects(t *testing.T) {
	cases := map[string]struct{ body, param string }{
		"malformed":      {`{"dataValues":[`, ""},
		"not an object":  {`[1,2]`, ""},
		"empty":          {`{"dataValues":[]}`, "dataValues"},
		"none":           {`{"period":"2026W47"}`, "dataValues"},
		"non-numeric":    {`{"period":"2026W47","orgUnit":"o","dataValues":[{"dataElement":"d","value":"many"}]}`, "dataValues[0].value"},
		"NaN":            {`{"period":"2026W47","orgUnit":"o","dataValues":[{"dataElement":"d","value":"NaN"}]}`, "dataValues[0].value"},
		"hex":            {`{"period":"2026W47","orgUnit":"o","dataValues":[{"dataElement":"d","value":"0x10"}]}`, "dataValues[0].value"},
		"negative":       {`{"period":"2026W47","orgUnit":"o","dataValues":[{"dataElement":"d","value":-1}]}`, "dataValues[0].value"},
		"null":           {`{"period":"2026W47","orgUnit":"o","dataValues":[{"dataElement":"d","value":null}]}`, "dataValues[0].value"},
		"bool":           {`{"period":"2026W47","orgUnit":"o","dataValues":[{"dataElement":"d","value":true}]}`, "dataValues[0].value"},
		"bad period":     {`{"period":"2026-11","orgUnit":"o","dataValues":[{"dataElement":"d","value":1}]}`, "dataValues[0].period"},
		"no period":      {`{"orgUnit":"o","dataValues":[{"dataElement":"d","value":1}]}`, "dataValues[0].period"},
		"no orgUnit":     {`{"period":"2026W47","dataValues":[{"dataElement":"d","value":1}]}`, "dataValues[0].orgUnit"},
		"no element":     {`{"period":"2026W47","orgUnit":"o","dataValues":[{"value":1}]}`, "dataValues[0].dataElement"},
		"string orgUnit": {`{"period":"2026W47","orgUnit":5,"dataValues":[{"dataElement":"d","value":1}]}`, "orgUnit"},
	}
	for name, c := range cases {
		_, err := decodeDataValueSet([]byte(c.body))
		var e *aigrid.Error
		if !errors.As(err, &e) || e.Code != aigrid.EInvalid || e.Param != c.param {
			t.Errorf("%s: got %#v, want invalid on %q", name, err, c.param)
		}
	}
}

func TestParseCountAcceptsJSONNumbers(t *testing.T) {
	for in, want := range map[string]float64{`12`: 12, `"12"`: 12, `1.5`: 1.5, `1e3`: 1000, `"0"`: 0} {
		if v, err := parseCount([]byte(in)); err != nil || v != want {
			t.Errorf("%s: %v %v", in, v, err)
		}
	}
}
