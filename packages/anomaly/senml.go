package anomaly

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"aigrid"
)

// Point is one reading of a series.
type Point struct {
	Time  time.Time
	Value float64
}

// Pack is what a SenML pack says about one sensor: its resolved name and
// unit and its readings in time order.
type Pack struct {
	Name   string
	Unit   string
	Points []Point
}

// senmlVersion is the highest SenML version (bver) this parser understands:
// RFC 8428's.
const senmlVersion = 10

// relativeTimes is RFC 8428's bound below which a resolved time is relative
// to now (in seconds): 2^28.
const relativeTimes = 1 << 28

// ParseSenML reads a SenML pack in JSON (RFC 8428): base name, time, unit,
// value and sum apply to their record and the ones after it; a resolved
// time below 2^28 seconds counts from now. Every record must carry a numeric
// value (v) of the same sensor; the points come back sorted by time, which
// SenML does not promise, and two readings at the same time are an error.
func ParseSenML(body []byte, now time.Time) (*Pack, error) {
	var records []map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&records); err != nil {
		return nil, aigrid.Errorf(aigrid.EInvalid, "The body is not a SenML pack (a JSON array of records): %v.", jsonProblem(err))
	}
	if _, err := dec.Token(); err == nil {
		return nil, aigrid.Errorf(aigrid.EInvalid, "The body is not a SenML pack: extra data after the JSON array.")
	}
	if len(records) == 0 {
		return nil, aigrid.Errorf(aigrid.EInvalid, "The SenML pack is empty: send at least one record with a value (v).")
	}
	var base struct {
		name, unit     string
		time, val, sum float64
	}
	pack := &Pack{Points: make([]Point, 0, len(records))}
	for i, rec := range records {
		param := func(label string) string { return fmt.Sprintf("[%d].%s", i, label) }
		if rec == nil {
			return nil, aigrid.ParamErrorf(fmt.Sprintf("[%d]", i), "SenML record %d is null: each record is a JSON object.", i)
		}
		for label := range rec {
			if !knownLabel(label) && strings.HasSuffix(label, "_") {
				return nil, aigrid.ParamErrorf(param(label), "SenML record %d has the label %q, which must be understood and is not.", i, label)
			}
		}
		var err error
		str := func(label string, dst *string) {
			if raw, ok := rec[label]; ok && err == nil {
				if e := json.Unmarshal(raw, dst); e != nil {
					err = aigrid.ParamErrorf(param(label), "%s in SenML record %d must be a string.", label, i)
				}
			}
		}
		num := func(label string, dst *float64) bool {
			raw, ok := rec[label]
			if !ok || err != nil {
				return false
			}
			if e := json.Unmarshal(raw, dst); e != nil || math.IsInf(*dst, 0) || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
				err = aigrid.ParamErrorf(param(label), "%s in SenML record %d must be a number, not %s.", label, i, raw)
				return false
			}
			return true
		}
		var ver float64
		if num("bver", &ver) && (ver != math.Trunc(ver) || ver < 1 || ver > senmlVersion) {
			return nil, aigrid.ParamErrorf(param("bver"), "SenML version %v is not supported (at most %d).", ver, senmlVersion)
		}
		str("bn", &base.name)
		str("bu", &base.unit)
		num("bt", &base.time)
		num("bv", &base.val)
		num("bs", &base.sum)
		var name, unit string
		var t, v float64
		str("n", &name)
		str("u", &unit)
		num("t", &t)
		hasV := num("v", &v)
		if err != nil {
			return nil, err
		}
		if !hasV {
			for _, other := range []string{"vs", "vb", "vd", "s"} {
				if _, ok := rec[other]; ok {
					return nil, aigrid.ParamErrorf(param(other), "SenML record %d carries %s, not a numeric value (v): anomaly detection needs numbers.", i, other)
				}
			}
			return nil, aigrid.ParamErrorf(param("v"), "SenML record %d has no value (v).", i)
		}
		name = base.name + name
		if !validSenMLName(name) {
			return nil, aigrid.ParamErrorf(param("n"), "SenML record %d resolves to the name %q: a name starts with a letter or digit and has only letters, digits and - : . / _.", i, name)
		}
		if unit == "" {
			unit = base.unit
		}
		if i == 0 {
			pack.Name, pack.Unit = name, unit
		} else if name != pack.Name {
			return nil, aigrid.ParamErrorf(param("n"), "SenML record %d is about %q, record 0 about %q: post each sensor to its own series.", i, name, pack.Name)
		} else if unit != pack.Unit {
			return nil, aigrid.ParamErrorf(param("u"), "SenML record %d is in unit %q, record 0 in %q.", i, unit, pack.Unit)
		}
		at := base.time + t
		if at < relativeTimes {
			at += float64(now.UnixNano()) / 1e9
		}
		when, ok := unixTime(at)
		if !ok {
			return nil, aigrid.ParamErrorf(param("t"), "SenML record %d has a time (%v s) out of range.", i, at)
		}
		value := base.val + v
		if math.Abs(value) > MaxValue {
			return nil, aigrid.ParamErrorf(param("v"), "SenML record %d has the value %g, beyond ±%g.", i, value, MaxValue)
		}
		pack.Points = append(pack.Points, Point{Time: when, Value: value})
	}
	slices.SortStableFunc(pack.Points, func(a, b Point) int { return a.Time.Compare(b.Time) })
	for i := 1; i < len(pack.Points); i++ {
		if pack.Points[i].Time.Equal(pack.Points[i-1].Time) {
			return nil, aigrid.ParamErrorf("t", "The SenML pack has two readings at %s.", pack.Points[i].Time.Format(time.RFC3339Nano))
		}
	}
	return pack, nil
}

// knownLabel reports whether a SenML label is one of RFC 8428's.
func knownLabel(l string) bool {
	switch l {
	case "bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut":
		return true
	}
	return false
}

// validSenMLName follows RFC 8428 section 4.5.1.
func validSenMLName(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("-:./_", rune(c)) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// unixTime converts seconds since 1970 to a time, to the microsecond (SenML
// times are floats; finer digits are noise), within years 1 to 9999.
func unixTime(sec float64) (time.Time, bool) {
	const lo, hi = -62135596800, 253402300799
	if math.IsNaN(sec) || sec < lo || sec > hi {
		return time.Time{}, false
	}
	return time.UnixMicro(int64(math.Round(sec * 1e6))).UTC(), true
}
