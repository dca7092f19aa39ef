package alerts

import (
	"bytes"
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"aigrid"
)

// The Atom feed (RFC 4287) that alert aggregators poll: one entry per
// current alert, linking to its CAP XML, with the alert's main CAP fields as
// cap: elements in the entry, as national weather services' feeds have them.
type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	CapNS   string      `xml:"xmlns:cap,attr"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Author  atomPerson  `xml:"author"`
	Link    []atomLink  `xml:"link"`
	Entry   []atomEntry `xml:"entry"`
}

type atomEntry struct {
	ID        string     `xml:"id"`
	Title     string     `xml:"title"`
	Updated   string     `xml:"updated"`
	Published string     `xml:"published"`
	Author    atomPerson `xml:"author"`
	Link      []atomLink `xml:"link"`
	Summary   string     `xml:"summary,omitempty"`

	Identifier string   `xml:"cap:identifier"`
	Sent       string   `xml:"cap:sent"`
	Status     string   `xml:"cap:status"`
	MsgType    string   `xml:"cap:msgType"`
	Event      string   `xml:"cap:event,omitempty"`
	Category   []string `xml:"cap:category"`
	Urgency    string   `xml:"cap:urgency,omitempty"`
	Severity   string   `xml:"cap:severity,omitempty"`
	Certainty  string   `xml:"cap:certainty,omitempty"`
	Expires    string   `xml:"cap:expires,omitempty"`
	AreaDesc   string   `xml:"cap:areaDesc,omitempty"`
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr"`
	Type string `xml:"type,attr"`
	Href string `xml:"href,attr"`
}

// current reports whether a belongs in the feed: published (Actual, so no
// drafts, tests or exercises), public, not expired, and not superseded by a
// published Update or Cancel. A Cancel stays in the feed until the alert it
// cancels would have expired, so that aggregators learn of it.
func current(a Alert, superseded map[string]Alert, now time.Time) bool {
	if a.Status != StatusActual || a.Scope != "Public" {
		return false
	}
	if _, ok := superseded[a.Sender+","+a.Identifier]; ok {
		return false
	}
	if len(a.Info) == 0 {
		return true
	}
	for _, in := range a.Info {
		if in.Expires == nil || in.Expires.After(now) {
			return true
		}
	}
	return false
}

// currentAlerts returns the alerts of all that belong in the feed, newest first.
func currentAlerts(all []Alert, now time.Time) []Alert {
	superseded := supersession(all)
	var out []Alert
	for _, a := range all {
		if current(a, superseded, now) {
			out = append(out, a)
		}
	}
	sortNewestFirst(out)
	return out
}

func (p *Package) feed(w http.ResponseWriter, r *http.Request, c caller) error {
	all, err := p.store.alerts(r.Context(), c.tenant.ID)
	if err != nil {
		return err
	}
	base := baseURL(r)
	return writeFeed(w, c.tenant, currentAlerts(all, p.now()), p.now(), base+"/feed.atom",
		func(id string) string { return alertURL(r, id) })
}

// writeFeed writes the Atom feed of a tenant's current alerts; link gives
// the URL of an alert's CAP XML.
func writeFeed(w http.ResponseWriter, t *aigrid.Tenant, entries []Alert, now time.Time, self string, link func(identifier string) string) error {
	tenantID := strconv.FormatInt(t.ID, 10)
	f := atomFeed{
		CapNS:   Namespace,
		ID:      nameUUID("feed", tenantID),
		Title:   "Alerts from " + t.Name,
		Updated: now.UTC().Format(time.RFC3339),
		Author:  atomPerson{Name: t.Name},
		Link:    []atomLink{{Rel: "self", Type: "application/atom+xml", Href: self}},
	}
	if len(entries) > 0 {
		f.Updated = entries[0].Sent.UTC().Format(time.RFC3339)
	}
	for _, a := range entries {
		var in Info
		if len(a.Info) > 0 {
			in = a.Info[0]
		}
		title := firstOf(in.Headline, firstOf(in.Event, a.Identifier))
		if a.MsgType == MsgCancel {
			title = "Cancelled: " + title
		}
		sent := a.Sent.UTC().Format(time.RFC3339)
		e := atomEntry{
			ID:         nameUUID("alert", tenantID, a.Sender, a.Identifier),
			Title:      title,
			Updated:    sent,
			Published:  sent,
			Author:     atomPerson{Name: firstOf(in.SenderName, a.Sender)},
			Link:       []atomLink{{Rel: "alternate", Type: ContentType, Href: link(a.Identifier)}},
			Summary:    firstOf(in.Description, in.Headline),
			Identifier: a.Identifier,
			Sent:       a.Sent.String(),
			Status:     a.Status,
			MsgType:    a.MsgType,
			Event:      in.Event,
			Category:   in.Category,
			Urgency:    in.Urgency,
			Severity:   in.Severity,
			Certainty:  in.Certainty,
		}
		if in.Expires != nil {
			e.Expires = in.Expires.String()
		}
		var areas []string
		for _, ar := range in.Area {
			areas = append(areas, ar.AreaDesc)
		}
		e.AreaDesc = strings.Join(areas, "; ")
		f.Entry = append(f.Entry, e)
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(f); err != nil {
		return err
	}
	buf.WriteByte('\n')
	write(w, http.StatusOK, "application/atom+xml; charset=utf-8", buf.Bytes())
	return nil
}

// nameUUID is a name-based (version 5 style) UUID URN: an Atom id that stays
// the same when the server's address changes and differs between tenants.
func nameUUID(parts ...string) string {
	h := sha1.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
