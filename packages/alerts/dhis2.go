package alerts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"aigrid"
)

// dataValueSet is DHIS2's dataValueSets JSON. The set's period and orgUnit
// apply to every value that does not give its own. Other DHIS2 fields
// (categoryOptionCombo, storedBy, comment, ...) are accepted and ignored.
type dataValueSet struct {
	DataSet    string      `json:"dataSet"`
	Period     string      `json:"period"`
	OrgUnit    string      `json:"orgUnit"`
	DataValues []dataValue `json:"dataValues"`
}

type dataValue struct {
	DataElement string          `json:"dataElement"`
	Period      string          `json:"period"`
	OrgUnit     string          `json:"orgUnit"`
	Value       json.RawMessage `json:"value"`
}

// decodeDataValueSet reads a dataValueSets body into observations. Values of
// the same org unit, data element and period are added up: DHIS2 sends one
// value per category option combo (age group, sex) and EARS watches totals.
func decodeDataValueSet(body []byte) ([]Observation, error) {
	var set dataValueSet
	if err := decodeJSON(body, &set, false); err != nil {
		return nil, err
	}
	if len(set.DataValues) == 0 {
		return nil, aigrid.ParamErrorf("dataValues", "dataValues is empty: send at least one {\"dataElement\", \"period\", \"orgUnit\", \"value\"}.")
	}
	var out []Observation
	index := map[[3]string]int{}
	for i, dv := range set.DataValues {
		p := fmt.Sprintf("dataValues[%d]", i)
		o := Observation{OrgUnit: firstOf(dv.OrgUnit, set.OrgUnit), DataElement: strings.TrimSpace(dv.DataElement)}
		if o.DataElement == "" {
			return nil, aigrid.ParamErrorf(p+".dataElement", "dataElement is required.")
		}
		if o.OrgUnit == "" {
			return nil, aigrid.ParamErrorf(p+".orgUnit", "orgUnit is required, in the value or in the data value set.")
		}
		period := firstOf(dv.Period, set.Period)
		w, err := parseWeek(period)
		if err != nil {
			return nil, aigrid.ParamErrorf(p+".period", "%v", err)
		}
		o.Period = w.String()
		if o.Value, err = parseCount(dv.Value); err != nil {
			return nil, aigrid.ParamErrorf(p+".value", "%v", err)
		}
		k := [3]string{o.OrgUnit, o.DataElement, o.Period}
		if j, ok := index[k]; ok {
			out[j].Value += o.Value
			continue
		}
		index[k] = len(out)
		out = append(out, o)
	}
	return out, nil
}

func firstOf(a, b string) string {
	if a = strings.TrimSpace(a); a != "" {
		return a
	}
	return strings.TrimSpace(b)
}

// parseCount reads a count given as a JSON number or, as DHIS2 writes it, a
// string: a finite, non-negative decimal.
func parseCount(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	s := string(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("value %s is not a string", raw)
		}
		s = strings.TrimSpace(s)
	}
	if s == "" || s == "null" {
		return 0, fmt.Errorf("value is required: a count such as \"12\"")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !isNumber(s) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("value %q is not a number", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("value %q is negative; a case count is 0 or more", s)
	}
	return v, nil
}

// isNumber reports whether s is a decimal number, with an optional exponent
// as JSON writes large numbers, and not hexadecimal, "Inf" or "NaN".
func isNumber(s string) bool {
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	if !isDecimal(mant) {
		return false
	}
	if !hasExp {
		return true
	}
	exp = strings.TrimLeft(exp, "+-")
	return exp != "" && strings.Trim(exp, "0123456789") == ""
}

// week is an ISO 8601 week.
type week struct{ year, week int }

// parseWeek reads DHIS2's weekly period, "2026W47" (also "2026W07" or
// "2026-W47"), checking the week exists in that ISO year.
func parseWeek(s string) (week, error) {
	y, n, ok := strings.Cut(strings.ToUpper(strings.TrimSpace(s)), "W")
	y = strings.TrimSuffix(y, "-")
	year, err1 := strconv.Atoi(y)
	wk, err2 := strconv.Atoi(n)
	if !ok || len(y) != 4 || err1 != nil || err2 != nil || n == "" || len(n) > 2 || strings.Trim(n, "0123456789") != "" {
		return week{}, fmt.Errorf("period %q is not an ISO week such as \"2026W47\"; only weekly periods are supported", s)
	}
	if year < 1 {
		return week{}, fmt.Errorf("period %q: year %d is out of range", s, year)
	}
	if wk < 1 || wk > weeksIn(year) {
		return week{}, fmt.Errorf("period %q: %d has weeks 1 to %d", s, year, weeksIn(year))
	}
	return week{year, wk}, nil
}

// String is DHIS2's form: the week without zero padding, the year in four digits.
func (w week) String() string { return fmt.Sprintf("%04dW%d", w.year, w.week) }

// weeksIn is 53 for ISO years whose 28 December falls in week 53, else 52.
func weeksIn(year int) int {
	_, w := time.Date(year, 12, 28, 0, 0, 0, 0, time.UTC).ISOWeek()
	return w
}

// index numbers weeks consecutively across years, so that a gap in reports
// shows as a gap in numbers: weeks since Monday 5 January 1970.
func (w week) index() int {
	jan4 := time.Date(w.year, 1, 4, 0, 0, 0, 0, time.UTC)
	monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	days := monday.Unix() / 86400 // exact: monday is midnight UTC
	return int((days-4)/7) + w.week - 1
}
