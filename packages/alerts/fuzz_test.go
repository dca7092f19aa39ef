package alerts

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"aigrid"
	"aigrid/internal/shareddata"
)

// checkRoundTrip: an alert that validates must serialise to CAP XML that
// parses back into an alert that validates.
func checkRoundTrip(t *testing.T, a Alert) {
	a.normalize()
	if a.Validate() != nil {
		return
	}
	doc, err := a.XML()
	if err != nil {
		t.Fatalf("a valid alert does not serialise: %v\n%+v", err, a)
	}
	back, err := ParseXML(doc)
	if err != nil {
		t.Fatalf("our own XML does not parse: %v\n%s", err, doc)
	}
	back.normalize()
	if err := back.Validate(); err != nil {
		t.Fatalf("our own XML does not validate: %v\n%s", err, doc)
	}
}

// invalidError fails unless err is a client error (400), as a decoder's
// errors must be.
func invalidError(t *testing.T, err error) {
	var e *aigrid.Error
	if !errors.As(err, &e) || e.Code != aigrid.EInvalid || e.Message == "" {
		t.Fatalf("decoder error %#v is not an invalid-request error", err)
	}
}

func FuzzAlertJSON(f *testing.F) {
	f.Add([]byte(choleraJSON))
	f.Add([]byte(`{"identifier":"x","sender":"s","sent":"2026-11-24T10:00:00Z","status":"Actual","msgType":"Update","references":"s,y,2026-11-24T09:00:00-00:00","scope":"Public"}`))
	f.Add([]byte(`{"info":[{"area":[{"areaDesc":"a","polygon":["1,1 1,2 2,2 1,1"],"altitude":"1e400"}]}]}`))
	f.Add([]byte(`{"languages":["fr"],"info":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req alertRequest
		if err := decodeJSON(b, &req, true); err != nil {
			invalidError(t, err)
			return
		}
		checkRoundTrip(t, req.Alert)
	})
}

func FuzzAlertXML(f *testing.F) {
	if dir := shareddata.Dir("cap"); dir != "" {
		if b, err := os.ReadFile(filepath.Join(dir, "example-amber-alert.xml")); err == nil {
			f.Add(b)
		}
	}
	a := sample()
	doc, _ := a.XML()
	f.Add(doc)
	f.Add([]byte(`<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><info><area><ceiling>-1</ceiling></area></info></alert>`))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x "y">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&x;</alert>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseXML(b)
		if err != nil {
			return
		}
		checkRoundTrip(t, a)
	})
}

func FuzzDataValueSet(f *testing.F) {
	f.Add([]byte(weeks("Kisumu", "cholera", 1, `"10"`, `12`, `"1e2"`)))
	f.Add([]byte(`{"period":"2026W53","orgUnit":"o","dataValues":[{"dataElement":"d","value":"-0"},{"dataElement":"d","value":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		obs, err := decodeDataValueSet(b)
		if err != nil {
			invalidError(t, err)
			return
		}
		for _, o := range obs {
			w, err := parseWeek(o.Period)
			if err != nil || w.String() != o.Period || o.OrgUnit == "" || o.DataElement == "" || o.Value < 0 || math.IsInf(o.Value, 0) || math.IsNaN(o.Value) {
				t.Fatalf("decoded %+v from %s", o, b)
			}
		}
	})
}

func FuzzAnomalies(f *testing.F) {
	f.Add([]byte(`{"subject":"feeder 12 load","area":"Kisumu","category":"infra","points":[{"timestamp":"2026-11-24T10:00:00Z","value":430,"score":0.2},{"timestamp":"2026-11-24T10:05:00+03:00","value":812,"expected":430,"score":0.97,"flag":true}]}`))
	f.Add([]byte(`{"subject":"s","area":"a","points":[{"timestamp":"2026-11-24T10:00:00Z","value":1e308,"score":1}],"languages":["sw"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req anomalyRequest
		if err := decodeJSON(b, &req, true); err != nil {
			invalidError(t, err)
			return
		}
		times, err := req.validate()
		if err != nil {
			invalidError(t, err)
			return
		}
		var s streak
		fired, skipped := s.advance(req.Points, times, Settings{AnomalyScore: 0.5, AnomalyRun: 2})
		if len(fired) > len(req.Points)/2 || s.Run > len(req.Points) || skipped > len(req.Points) {
			t.Fatalf("%d fired, %d skipped, run %d, from %d points", len(fired), skipped, s.Run, len(req.Points))
		}
	})
}
