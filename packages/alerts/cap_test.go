package alerts

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"aigrid"
	"aigrid/internal/shareddata"
)

// xmllint validates doc against the OASIS CAP 1.2 schema.
func xmllint(t *testing.T, doc []byte) {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint is not on PATH, so CAP XML cannot be checked against the schema: install Debian's libxml2-utils (apt-get install -y libxml2-utils)")
	}
	xsd := filepath.Join(shareddata.Require(t, "cap"), "CAP-v1.2.xsd")
	f := filepath.Join(t.TempDir(), "alert.xml")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--noout", "--schema", xsd, f).CombinedOutput(); err != nil {
		t.Fatalf("xmllint rejects the alert: %v\n%s\n%s", err, out, doc)
	}
}

func exampleAlert(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(shareddata.Require(t, "cap"), "example-amber-alert.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sample is a complete alert in two languages with every kind of area.
func sample() Alert {
	sent := NewTime(time.Date(2026, 11, 24, 10, 0, 0, 0, time.FixedZone("EAT", 3*3600)))
	exp := NewTime(sent.Add(48 * time.Hour))
	alt, ceil := Decimal(0), Decimal(1500.5)
	area := []Area{{
		AreaDesc: "Kisumu County",
		Polygon:  []string{"-0.1,34.7 -0.1,34.9 -0.2,34.9 -0.2,34.7 -0.1,34.7"},
		Circle:   []string{"-0.0917,34.768 10"},
		Geocode:  []NamedValue{{"ISO3166-2", "KE-17"}},
		Altitude: &alt,
		Ceiling:  &ceil,
	}}
	return Alert{
		Identifier: "aigrid-test-1",
		Sender:     "moh@health.go.ke",
		Sent:       sent,
		Status:     "Actual",
		MsgType:    "Alert",
		Scope:      "Public",
		Info: []Info{{
			Language: "en-KE", Category: []string{"Health"}, Event: "Cholera outbreak",
			ResponseType: []string{"Prepare"},
			Urgency:      "Expected", Severity: "Severe", Certainty: "Likely",
			Expires:  &exp,
			Headline: "Cholera outbreak in Kisumu", Description: "Cases rose sharply.",
			Instruction: "Boil drinking water.", Web: "https://health.go.ke/cholera",
			Area: area,
		}, {
			Language: "sw", Category: []string{"Health"}, Event: "Mlipuko wa kipindupindu",
			Urgency: "Expected", Severity: "Severe", Certainty: "Likely",
			Expires:  &exp,
			Headline: "Mlipuko wa kipindupindu Kisumu", Instruction: "Chemsha maji ya kunywa.",
			Area: area,
		}},
	}
}

func TestSampleValidatesAgainstSchema(t *testing.T) {
	a := sample()
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	doc, err := a.XML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">`,
		"<sent>2026-11-24T10:00:00+03:00</sent>",
		"<language>sw</language>",
		"<ceiling>1500.5</ceiling>",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("XML lacks %s:\n%s", want, doc)
		}
	}
	xmllint(t, doc)
}

func TestExampleRoundTrip(t *testing.T) {
	a, err := ParseXML(exampleAlert(t))
	if err != nil {
		t.Fatal(err)
	}
	a.normalize()
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if a.Identifier != "KAR0-0306112239-SW" || len(a.Info) != 2 || a.Info[1].Language != "es-US" ||
		a.Info[0].EventCode[0] != (NamedValue{"SAME", "CAE"}) || a.Info[1].Area[0].Geocode[0].Value != "006037" {
		t.Fatalf("parsed %+v", a)
	}
	if got := a.Sent.String(); got != "2003-06-11T22:39:00-07:00" {
		t.Errorf("sent = %s", got)
	}
	doc, err := a.XML()
	if err != nil {
		t.Fatal(err)
	}
	xmllint(t, doc)
	again, err := ParseXML(doc)
	if err != nil {
		t.Fatal(err)
	}
	again.normalize()
	if !reflect.DeepEqual(stripName(a), stripName(again)) {
		t.Errorf("round trip changed the alert:\n%+v\n%+v", a, again)
	}
}

func stripName(a Alert) Alert {
	a.XMLName.Space, a.XMLName.Local = "", ""
	return a
}

func TestJSONRoundTrip(t *testing.T) {
	a := sample()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"sent":"2026-11-24T10:00:00+03:00"`) || !strings.Contains(string(b), `"ceiling":1500.5`) {
		t.Errorf("JSON: %s", b)
	}
	var utc struct{ Sent Time }
	if err := json.Unmarshal([]byte(`{"Sent":"2026-11-24T07:00:00.5Z"}`), &utc); err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(utc); string(b) != `{"Sent":"2026-11-24T07:00:00-00:00"}` {
		t.Errorf("UTC in JSON: %s", b)
	}
	var back Alert
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Sent.Equal(a.Sent.Time) || !reflect.DeepEqual(back.Info[0].Area, a.Info[0].Area) || back.Info[1].Headline != a.Info[1].Headline {
		t.Errorf("round trip changed the alert:\n%+v\n%+v", a, back)
	}
}

func TestTime(t *testing.T) {
	cases := []struct{ in, want string }{
		{"2026-11-24T10:00:00+03:00", "2026-11-24T10:00:00+03:00"},
		{"2026-11-24T07:00:00Z", "2026-11-24T07:00:00-00:00"},
		{"2026-11-24T07:00:00.123456-05:00", "2026-11-24T07:00:00-05:00"},
		{"2026-11-24T07:00:00-00:00", "2026-11-24T07:00:00-00:00"},
	}
	for _, c := range cases {
		var tm Time
		if err := tm.UnmarshalText([]byte(c.in)); err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got := tm.String(); got != c.want {
			t.Errorf("%s: got %s, want %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{"", "2026-11-24", "24/11/2026 10:00", "2026-11-24T10:00:00", "0000-01-01T00:00:00+00:00"} {
		var tm Time
		if err := tm.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %v", bad, tm)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name, param string
		edit        func(*Alert)
	}{
		{"status", "status", func(a *Alert) { a.Status = "Published" }},
		{"msgType", "msgType", func(a *Alert) { a.MsgType = "Notice" }},
		{"update without references", "references", func(a *Alert) { a.MsgType = "Update" }},
		{"bad references", "references", func(a *Alert) { a.MsgType = "Update"; a.References = "only-an-id" }},
		{"identifier with space", "identifier", func(a *Alert) { a.Identifier = "a b" }},
		{"identifier with slash", "identifier", func(a *Alert) { a.Identifier = "a/b" }},
		{"sender with comma", "sender", func(a *Alert) { a.Sender = "a,b" }},
		{"restricted without restriction", "restriction", func(a *Alert) { a.Scope = "Restricted" }},
		{"urgency", "info[0].urgency", func(a *Alert) { a.Info[0].Urgency = "Soon" }},
		{"severity missing", "info[1].severity", func(a *Alert) { a.Info[1].Severity = "" }},
		{"category", "info[0].category[0]", func(a *Alert) { a.Info[0].Category = []string{"Disease"} }},
		{"no category", "info[0].category", func(a *Alert) { a.Info[0].Category = nil }},
		{"language", "info[0].language", func(a *Alert) { a.Info[0].Language = "english language" }},
		{"no event", "info[0].event", func(a *Alert) { a.Info[0].Event = " " }},
		{"open polygon", "info[0].area[0].polygon[0]", func(a *Alert) {
			a.Info[0].Area = []Area{{AreaDesc: "x", Polygon: []string{"1,1 1,2 2,2 2,1"}}}
		}},
		{"short polygon", "info[0].area[0].polygon[0]", func(a *Alert) {
			a.Info[0].Area = []Area{{AreaDesc: "x", Polygon: []string{"1,1 1,2 1,1"}}}
		}},
		{"latitude out of range", "info[0].area[0].polygon[0]", func(a *Alert) {
			a.Info[0].Area = []Area{{AreaDesc: "x", Polygon: []string{"91,1 1,2 2,2 91,1"}}}
		}},
		{"circle without radius", "info[0].area[0].circle[0]", func(a *Alert) {
			a.Info[0].Area = []Area{{AreaDesc: "x", Circle: []string{"1,1"}}}
		}},
		{"circle negative radius", "info[0].area[0].circle[0]", func(a *Alert) {
			a.Info[0].Area = []Area{{AreaDesc: "x", Circle: []string{"1,1 -3"}}}
		}},
		{"circle exponent", "info[0].area[0].circle[0]", func(a *Alert) {
			a.Info[0].Area = []Area{{AreaDesc: "x", Circle: []string{"1e1,1 3"}}}
		}},
		{"no areaDesc", "info[0].area[0].areaDesc", func(a *Alert) { a.Info[0].Area = []Area{{}} }},
		{"geocode without value", "info[0].area[0].geocode[0]", func(a *Alert) {
			a.Info[0].Area = []Area{{AreaDesc: "x", Geocode: []NamedValue{{ValueName: "SAME"}}}}
		}},
	}
	for _, c := range cases {
		a := sample()
		c.edit(&a)
		err := a.Validate()
		var e *aigrid.Error
		if !errors.As(err, &e) || e.Code != aigrid.EInvalid || e.Param != c.param {
			t.Errorf("%s: got %#v, want an invalid error on %s", c.name, err, c.param)
		}
	}
}

func TestNormalize(t *testing.T) {
	a := sample()
	a.Status, a.Info[0].Urgency, a.Info[0].Category[0] = " draft", "IMMEDIATE", "health"
	a.Info[1].Language = ""
	a.Info[0].Area[0].Polygon[0] = "  -0.1,34.7   -0.1,34.9 -0.2,34.9\n-0.2,34.7 -0.1,34.7 "
	a.normalize()
	if a.Status != "Draft" || a.Info[0].Urgency != "Immediate" || a.Info[0].Category[0] != "Health" || a.Info[1].Language != "en-US" {
		t.Errorf("normalize: %+v", a)
	}
	if err := a.Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseXMLRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"malformed":      `<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>x</alert>`,
		"empty":          ``,
		"other root":     `<feed xmlns="http://www.w3.org/2005/Atom"/>`,
		"CAP 1.1":        `<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1"><identifier>x</identifier></alert>`,
		"no namespace":   `<alert><identifier>x</identifier></alert>`,
		"trailing junk":  `<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"></alert>junk`,
		"two roots":      `<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"></alert><alert/>`,
		"bad sent":       `<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><sent>yesterday</sent></alert>`,
		"unknown entity": `<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note>&xxe;</note></alert>`,
	} {
		if a, err := ParseXML([]byte(doc)); err == nil {
			t.Errorf("%s: parsed as %+v", name, a)
		}
	}
}

func TestValidLanguage(t *testing.T) {
	for tag, want := range map[string]bool{
		"en": true, "sw-KE": true, "fil": true, "zh-Hant-TW": true, "es-419": true, "x-klingon": true, "i-navajo": true,
		"english": false, "e": false, "x": false, "q-abc": false, "en_US": false, "": false, "en-": false, "12": false, "sw-toolongsubtag": false,
	} {
		if got := validLanguage(tag); got != want {
			t.Errorf("validLanguage(%q) = %v, want %v", tag, got, want)
		}
	}
}
