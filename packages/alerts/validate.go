package alerts

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"aigrid"
)

// CAP 1.2's enumerations, in the schema's order (error messages list them).
var (
	statuses     = []string{"Actual", "Exercise", "System", "Test", "Draft"}
	msgTypes     = []string{"Alert", "Update", "Cancel", "Ack", "Error"}
	scopes       = []string{"Public", "Restricted", "Private"}
	categories   = []string{"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"}
	responseType = []string{"Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"}
	urgencies    = []string{"Immediate", "Expected", "Future", "Past", "Unknown"}
	severities   = []string{"Extreme", "Severe", "Moderate", "Minor", "Unknown"}
	certainties  = []string{"Observed", "Likely", "Possible", "Unlikely", "Unknown"}
)

// Status and message type values this package sets itself.
const (
	StatusActual = "Actual"
	StatusDraft  = "Draft"
	MsgAlert     = "Alert"
	MsgUpdate    = "Update"
	MsgCancel    = "Cancel"
)

// canonical returns the member of set equal to s ignoring case and
// surrounding space, or s unchanged: CAP's values are case-sensitive, but
// "health" can only mean "Health".
func canonical(s string, set []string) string {
	t := strings.TrimSpace(s)
	for _, v := range set {
		if strings.EqualFold(t, v) {
			return v
		}
	}
	return s
}

func canonicalAll(list []string, set []string) {
	for i, s := range list {
		list[i] = canonical(s, set)
	}
}

// normalize fixes what can only have one meaning: the case of enumerated
// values, space around tokens, and the default language.
func (a *Alert) normalize() {
	a.Identifier = strings.TrimSpace(a.Identifier)
	a.Sender = strings.TrimSpace(a.Sender)
	a.Status = canonical(a.Status, statuses)
	a.MsgType = canonical(a.MsgType, msgTypes)
	a.Scope = canonical(a.Scope, scopes)
	for i := range a.Info {
		in := &a.Info[i]
		in.Language = strings.TrimSpace(in.Language)
		if in.Language == "" {
			in.Language = "en-US" // the schema's default
		}
		canonicalAll(in.Category, categories)
		canonicalAll(in.ResponseType, responseType)
		in.Urgency = canonical(in.Urgency, urgencies)
		in.Severity = canonical(in.Severity, severities)
		in.Certainty = canonical(in.Certainty, certainties)
		for j := range in.Area {
			for k, p := range in.Area[j].Polygon {
				in.Area[j].Polygon[k] = strings.Join(strings.Fields(p), " ")
			}
			for k, c := range in.Area[j].Circle {
				in.Area[j].Circle[k] = strings.Join(strings.Fields(c), " ")
			}
		}
	}
}

// Validate checks the alert against CAP 1.2: required elements, enumerations,
// the form of identifiers, languages, polygons and circles. The error is an
// *aigrid.Error whose Param names the field at fault, as in
// "info[0].area[1].polygon[0]".
func (a Alert) Validate() error {
	if err := checkToken("identifier", a.Identifier); err != nil {
		return err
	}
	if strings.ContainsAny(a.Identifier, "/?#%\\") {
		return aigrid.ParamErrorf("identifier", "identifier %q may not contain '/', '?', '#', '%%' or '\\': it is part of the alert's URL.", a.Identifier)
	}
	if err := checkToken("sender", a.Sender); err != nil {
		return err
	}
	if a.Sent.IsZero() {
		return aigrid.ParamErrorf("sent", "sent is required.")
	}
	if err := oneOf("status", a.Status, statuses); err != nil {
		return err
	}
	if err := oneOf("msgType", a.MsgType, msgTypes); err != nil {
		return err
	}
	if err := oneOf("scope", a.Scope, scopes); err != nil {
		return err
	}
	if a.Scope == "Restricted" && strings.TrimSpace(a.Restriction) == "" {
		return aigrid.ParamErrorf("restriction", "A Restricted alert needs a restriction saying who may see it.")
	}
	if a.Scope == "Private" && strings.TrimSpace(a.Addresses) == "" {
		return aigrid.ParamErrorf("addresses", "A Private alert needs addresses.")
	}
	if a.MsgType != MsgAlert && strings.TrimSpace(a.References) == "" {
		return aigrid.ParamErrorf("references", "A message of type %s must reference the earlier message(s) as \"sender,identifier,sent\".", a.MsgType)
	}
	if a.References != "" {
		if _, err := parseReferences(a.References); err != nil {
			return err
		}
	}
	for i, in := range a.Info {
		if err := in.validate(fmt.Sprintf("info[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (in Info) validate(p string) error {
	if !validLanguage(in.Language) {
		return aigrid.ParamErrorf(p+".language", "language %q is not an RFC 3066 language tag such as en-US or sw.", in.Language)
	}
	if len(in.Category) == 0 {
		return aigrid.ParamErrorf(p+".category", "At least one category is required: one of %s.", strings.Join(categories, ", "))
	}
	for i, c := range in.Category {
		if err := oneOf(fmt.Sprintf("%s.category[%d]", p, i), c, categories); err != nil {
			return err
		}
	}
	if strings.TrimSpace(in.Event) == "" {
		return aigrid.ParamErrorf(p+".event", "event is required: the kind of event, such as \"Cholera outbreak\".")
	}
	for i, c := range in.ResponseType {
		if err := oneOf(fmt.Sprintf("%s.responseType[%d]", p, i), c, responseType); err != nil {
			return err
		}
	}
	if err := oneOf(p+".urgency", in.Urgency, urgencies); err != nil {
		return err
	}
	if err := oneOf(p+".severity", in.Severity, severities); err != nil {
		return err
	}
	if err := oneOf(p+".certainty", in.Certainty, certainties); err != nil {
		return err
	}
	for _, nv := range []struct {
		name string
		list []NamedValue
	}{{"eventCode", in.EventCode}, {"parameter", in.Parameter}} {
		for i, v := range nv.list {
			if strings.TrimSpace(v.ValueName) == "" {
				return aigrid.ParamErrorf(fmt.Sprintf("%s.%s[%d].valueName", p, nv.name, i), "valueName is required.")
			}
		}
	}
	if in.Web != "" && !validURI(in.Web) {
		return aigrid.ParamErrorf(p+".web", "web %q is not a URL.", in.Web)
	}
	for i, r := range in.Resource {
		rp := fmt.Sprintf("%s.resource[%d]", p, i)
		switch {
		case strings.TrimSpace(r.ResourceDesc) == "":
			return aigrid.ParamErrorf(rp+".resourceDesc", "resourceDesc is required.")
		case strings.TrimSpace(r.MimeType) == "":
			return aigrid.ParamErrorf(rp+".mimeType", "mimeType is required.")
		case r.Size < 0:
			return aigrid.ParamErrorf(rp+".size", "size may not be negative.")
		case r.URI != "" && !validURI(r.URI):
			return aigrid.ParamErrorf(rp+".uri", "uri %q is not a URI.", r.URI)
		}
	}
	for i, ar := range in.Area {
		if err := ar.validate(fmt.Sprintf("%s.area[%d]", p, i)); err != nil {
			return err
		}
	}
	return nil
}

func (ar Area) validate(p string) error {
	if strings.TrimSpace(ar.AreaDesc) == "" {
		return aigrid.ParamErrorf(p+".areaDesc", "areaDesc is required: name the area in words.")
	}
	for i, poly := range ar.Polygon {
		if err := checkPolygon(poly); err != nil {
			return aigrid.ParamErrorf(fmt.Sprintf("%s.polygon[%d]", p, i), "polygon %q: %v.", poly, err)
		}
	}
	for i, c := range ar.Circle {
		if err := checkCircle(c); err != nil {
			return aigrid.ParamErrorf(fmt.Sprintf("%s.circle[%d]", p, i), "circle %q: %v.", c, err)
		}
	}
	for i, g := range ar.Geocode {
		if strings.TrimSpace(g.ValueName) == "" || strings.TrimSpace(g.Value) == "" {
			return aigrid.ParamErrorf(fmt.Sprintf("%s.geocode[%d]", p, i), "A geocode needs both valueName (such as SAME or ISO3166-2) and value.")
		}
	}
	if ar.Ceiling != nil && ar.Altitude == nil {
		return aigrid.ParamErrorf(p+".ceiling", "ceiling may be given only with altitude.")
	}
	if ar.Ceiling != nil && *ar.Ceiling < *ar.Altitude {
		return aigrid.ParamErrorf(p+".ceiling", "ceiling is below altitude.")
	}
	return nil
}

// checkPolygon checks CAP's polygon: at least four WGS 84 "lat,lon" pairs
// separated by spaces, the first and last equal so that the ring is closed.
func checkPolygon(s string) error {
	pairs := strings.Fields(s)
	if len(pairs) < 4 {
		return fmt.Errorf("a polygon needs at least 4 \"lat,lon\" points (the first repeated last), got %d", len(pairs))
	}
	for _, pt := range pairs {
		if _, _, err := parsePoint(pt); err != nil {
			return err
		}
	}
	if pairs[0] != pairs[len(pairs)-1] {
		lat0, lon0, _ := parsePoint(pairs[0])
		lat1, lon1, _ := parsePoint(pairs[len(pairs)-1])
		if lat0 != lat1 || lon0 != lon1 {
			return fmt.Errorf("the polygon is not closed: its last point must repeat its first, %s", pairs[0])
		}
	}
	return nil
}

// checkCircle checks CAP's circle: "lat,lon radius", radius in kilometres.
func checkCircle(s string) error {
	f := strings.Fields(s)
	if len(f) != 2 {
		return fmt.Errorf("a circle is \"lat,lon radius\" with the radius in kilometres")
	}
	if _, _, err := parsePoint(f[0]); err != nil {
		return err
	}
	r, err := strconv.ParseFloat(f[1], 64)
	if err != nil || !isDecimal(f[1]) || r < 0 {
		return fmt.Errorf("radius %q is not a non-negative number of kilometres", f[1])
	}
	return nil
}

func parsePoint(s string) (lat, lon float64, err error) {
	a, b, ok := strings.Cut(s, ",")
	if ok {
		lat, err = strconv.ParseFloat(a, 64)
	}
	if ok && err == nil {
		lon, err = strconv.ParseFloat(b, 64)
	}
	if !ok || err != nil || !isDecimal(a) || !isDecimal(b) {
		return 0, 0, fmt.Errorf("point %q is not \"lat,lon\" in decimal degrees", s)
	}
	if lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return 0, 0, fmt.Errorf("point %q is outside -90..90 latitude, -180..180 longitude", s)
	}
	return lat, lon, nil
}

// checkToken checks identifier and sender: required, and free of the
// characters CAP forbids in them (space, comma, '<', '&').
func checkToken(param, s string) error {
	if s == "" {
		return aigrid.ParamErrorf(param, "%s is required.", param)
	}
	if len(s) > 256 {
		return aigrid.ParamErrorf(param, "%s is longer than 256 characters.", param)
	}
	for _, r := range s {
		if r <= ' ' || r == ',' || r == '<' || r == '&' || r == 0x7f {
			return aigrid.ParamErrorf(param, "%s %q may not contain spaces, commas, '<', '&' or control characters.", param, s)
		}
	}
	return nil
}

func oneOf(param, v string, set []string) error {
	for _, s := range set {
		if v == s {
			return nil
		}
	}
	if v == "" {
		return aigrid.ParamErrorf(param, "%s is required: one of %s.", param, strings.Join(set, ", "))
	}
	return aigrid.ParamErrorf(param, "%s %q is not one of %s.", param, v, strings.Join(set, ", "))
}

// validLanguage checks the xs:language pattern, [a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*,
// and that the first part is an ISO 639 code of 2 or 3 letters, or the "x"
// (private use) or "i" (grandfathered) of RFC 5646: the schema takes
// "english", which names no language and matches none a tenant translates to.
func validLanguage(s string) bool {
	parts := strings.Split(s, "-")
	if n := len(parts[0]); n != 2 && n != 3 && (n != 1 || len(parts) < 2 || !strings.ContainsAny(parts[0], "xXiI")) {
		return false
	}
	for i, part := range parts {
		if len(part) < 1 || len(part) > 8 {
			return false
		}
		for _, c := range part {
			letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !letter && (i == 0 || c < '0' || c > '9') {
				return false
			}
		}
	}
	return true
}

func validURI(s string) bool {
	if strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	_, err := url.Parse(s)
	return err == nil
}

// reference is one "sender,identifier,sent" entry of CAP's references.
type reference struct{ sender, identifier, sent string }

func parseReferences(s string) ([]reference, error) {
	var refs []reference
	for _, f := range strings.Fields(s) {
		parts := strings.Split(f, ",")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
			return nil, aigrid.ParamErrorf("references", "references %q: each entry is \"sender,identifier,sent\", entries separated by spaces.", f)
		}
		refs = append(refs, reference{parts[0], parts[1], parts[2]})
	}
	return refs, nil
}

// referenceTo returns a's entry for the references of a later message.
func referenceTo(a Alert) string {
	return a.Sender + "," + a.Identifier + "," + a.Sent.String()
}
