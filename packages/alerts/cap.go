// Package alerts is aigrid's early-warning package: it drafts, approves and
// publishes alerts in the Common Alerting Protocol (CAP 1.2, OASIS), serves
// them as CAP XML and as an Atom feed for alert aggregators, and watches
// weekly case counts (DHIS2 dataValueSets) with the CDC's EARS C1, C2 and C3
// algorithms, drafting an alert when a count is unusually high.
//
// One Alert type carries a CAP message both ways: encoding/xml reads and
// writes it in the CAP namespace, in the element order the schema requires,
// and encoding/json uses CAP's element names as keys.
package alerts

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Namespace is the XML namespace of CAP 1.2.
const Namespace = "urn:oasis:names:tc:emergency:cap:1.2"

// ContentType is the media type of a CAP message.
const ContentType = "application/cap+xml"

// Alert is one CAP 1.2 message. The struct's field order is the schema's
// element order, which encoding/xml follows when it writes.
type Alert struct {
	XMLName     xml.Name `xml:"urn:oasis:names:tc:emergency:cap:1.2 alert" json:"-"`
	Identifier  string   `xml:"identifier" json:"identifier"`
	Sender      string   `xml:"sender" json:"sender"`
	Sent        Time     `xml:"sent" json:"sent"`
	Status      string   `xml:"status" json:"status"`
	MsgType     string   `xml:"msgType" json:"msgType"`
	Source      string   `xml:"source,omitempty" json:"source,omitempty"`
	Scope       string   `xml:"scope" json:"scope"`
	Restriction string   `xml:"restriction,omitempty" json:"restriction,omitempty"`
	Addresses   string   `xml:"addresses,omitempty" json:"addresses,omitempty"`
	Code        []string `xml:"code" json:"code,omitempty"`
	Note        string   `xml:"note,omitempty" json:"note,omitempty"`
	References  string   `xml:"references,omitempty" json:"references,omitempty"`
	Incidents   string   `xml:"incidents,omitempty" json:"incidents,omitempty"`
	Info        []Info   `xml:"info" json:"info,omitempty"`
}

// Info is one info block: the alert's content in one language. Several
// languages are several info blocks.
type Info struct {
	Language     string       `xml:"language,omitempty" json:"language,omitempty"`
	Category     []string     `xml:"category" json:"category"`
	Event        string       `xml:"event" json:"event"`
	ResponseType []string     `xml:"responseType" json:"responseType,omitempty"`
	Urgency      string       `xml:"urgency" json:"urgency"`
	Severity     string       `xml:"severity" json:"severity"`
	Certainty    string       `xml:"certainty" json:"certainty"`
	Audience     string       `xml:"audience,omitempty" json:"audience,omitempty"`
	EventCode    []NamedValue `xml:"eventCode" json:"eventCode,omitempty"`
	Effective    *Time        `xml:"effective" json:"effective,omitempty"`
	Onset        *Time        `xml:"onset" json:"onset,omitempty"`
	Expires      *Time        `xml:"expires" json:"expires,omitempty"`
	SenderName   string       `xml:"senderName,omitempty" json:"senderName,omitempty"`
	Headline     string       `xml:"headline,omitempty" json:"headline,omitempty"`
	Description  string       `xml:"description,omitempty" json:"description,omitempty"`
	Instruction  string       `xml:"instruction,omitempty" json:"instruction,omitempty"`
	Web          string       `xml:"web,omitempty" json:"web,omitempty"`
	Contact      string       `xml:"contact,omitempty" json:"contact,omitempty"`
	Parameter    []NamedValue `xml:"parameter" json:"parameter,omitempty"`
	Resource     []Resource   `xml:"resource" json:"resource,omitempty"`
	Area         []Area       `xml:"area" json:"area,omitempty"`
}

// NamedValue is CAP's valueName/value pair (eventCode, parameter, geocode).
type NamedValue struct {
	ValueName string `xml:"valueName" json:"valueName"`
	Value     string `xml:"value" json:"value"`
}

// Resource is a file that goes with an info block.
type Resource struct {
	ResourceDesc string `xml:"resourceDesc" json:"resourceDesc"`
	MimeType     string `xml:"mimeType" json:"mimeType"`
	Size         int64  `xml:"size,omitempty" json:"size,omitempty"`
	URI          string `xml:"uri,omitempty" json:"uri,omitempty"`
	DerefURI     string `xml:"derefUri,omitempty" json:"derefUri,omitempty"`
	Digest       string `xml:"digest,omitempty" json:"digest,omitempty"`
}

// Area is where an info block applies. Polygon is "lat,lon lat,lon ..." with
// the first pair repeated last; Circle is "lat,lon radius" (radius in km).
type Area struct {
	AreaDesc string       `xml:"areaDesc" json:"areaDesc"`
	Polygon  []string     `xml:"polygon" json:"polygon,omitempty"`
	Circle   []string     `xml:"circle" json:"circle,omitempty"`
	Geocode  []NamedValue `xml:"geocode" json:"geocode,omitempty"`
	Altitude *Decimal     `xml:"altitude" json:"altitude,omitempty"`
	Ceiling  *Decimal     `xml:"ceiling" json:"ceiling,omitempty"`
}

// Time is a CAP date-time: whole seconds and a numeric offset, UTC written
// as -00:00 (CAP 1.2 §3.3.2 forbids "Z").
type Time struct{ time.Time }

const capLayout = "2006-01-02T15:04:05-07:00"

// NewTime returns t as a CAP time, dropping fractions of a second.
func NewTime(t time.Time) Time { return Time{t.Truncate(time.Second)} }

func (t Time) String() string {
	s := t.Format(capLayout)
	if _, off := t.Zone(); off == 0 {
		s = s[:len(s)-6] + "-00:00"
	}
	return s
}

// MarshalText writes the CAP form, for both XML and JSON.
func (t Time) MarshalText() ([]byte, error) {
	if y := t.Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("time %v is outside the years 0001 to 9999", t.Time)
	}
	return []byte(t.String()), nil
}

// UnmarshalText reads the CAP form, and also RFC 3339 ("Z", fractions of a
// second), which it converts to the CAP form.
func (t *Time) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	v, err := time.Parse(capLayout, s)
	if err != nil {
		v, err = time.Parse(time.RFC3339, s)
	}
	if err != nil || v.Year() < 1 {
		return fmt.Errorf("%q is not a CAP date-time such as 2026-11-24T10:00:00+03:00", s)
	}
	*t = NewTime(v)
	return nil
}

// MarshalJSON writes the CAP form; without it, the embedded time.Time's
// method would write RFC 3339 with "Z" and fractions of a second.
func (t Time) MarshalJSON() ([]byte, error) {
	b, err := t.MarshalText()
	if err != nil {
		return nil, err
	}
	return json.Marshal(string(b))
}

// UnmarshalJSON reads what UnmarshalText reads, from a JSON string; null
// leaves t unchanged.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a CAP date-time string such as \"2026-11-24T10:00:00+03:00\"", b)
	}
	return t.UnmarshalText([]byte(s))
}

// Decimal is an xs:decimal (altitude, ceiling): written without an exponent.
type Decimal float64

// MarshalText writes d without an exponent, as xs:decimal requires.
func (d Decimal) MarshalText() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(d), 'f', -1, 64), nil
}

// UnmarshalText reads a finite decimal number.
func (d *Decimal) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) || !isDecimal(s) {
		return fmt.Errorf("%q is not a decimal number", s)
	}
	*d = Decimal(v)
	return nil
}

// MarshalJSON writes d as a JSON number rather than the string that
// MarshalText alone would give.
func (d Decimal) MarshalJSON() ([]byte, error) { return d.MarshalText() }

// UnmarshalJSON reads a JSON number or a string holding one.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	if s, err := strconv.Unquote(string(b)); err == nil {
		b = []byte(s)
	}
	return d.UnmarshalText(b)
}

// isDecimal reports whether s is a plain decimal number: ParseFloat also
// takes exponents, hexadecimal, "Inf" and "NaN", which xs:decimal does not.
func isDecimal(s string) bool {
	digits := 0
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case (c == '-' || c == '+') && i == 0, c == '.':
		default:
			return false
		}
	}
	return digits > 0 && strings.Count(s, ".") <= 1
}

// XML returns the alert as a CAP 1.2 XML document.
func (a Alert) XML() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(a); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// ErrNotCAP reports an XML document whose root is not a CAP 1.2 alert.
var ErrNotCAP = errors.New("the document is not a CAP 1.2 alert: its root must be <alert xmlns=\"" + Namespace + "\">")

// ParseXML reads a CAP 1.2 XML document. It checks the XML and the root
// element only; Validate checks the values.
func ParseXML(b []byte) (Alert, error) {
	var a Alert
	dec := xml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&a); err != nil {
		var syn *xml.SyntaxError
		var unexpected xml.UnmarshalError
		switch {
		case errors.As(err, &syn):
			return Alert{}, fmt.Errorf("malformed XML at line %d: %s", syn.Line, syn.Msg)
		case errors.As(err, &unexpected) && strings.HasPrefix(string(unexpected), "expected element"):
			return Alert{}, ErrNotCAP
		}
		return Alert{}, err
	}
	// Decode stops after the root element: anything but comments, processing
	// instructions and white space after it makes the document malformed.
	for {
		tok, err := dec.Token()
		if err != nil {
			var syn *xml.SyntaxError
			if errors.As(err, &syn) {
				return Alert{}, fmt.Errorf("malformed XML at line %d: %s", syn.Line, syn.Msg)
			}
			break
		}
		switch tok := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) > 0 {
				return Alert{}, errors.New("malformed XML: text after the root element")
			}
		case xml.StartElement:
			return Alert{}, errors.New("malformed XML: a second root element")
		}
	}
	return a, nil
}
