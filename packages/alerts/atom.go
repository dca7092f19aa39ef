package alerts

import (
	"bytes"
	"crypto/sha1"
	"encoding/xml"
	"fmt"
	"net/http"
	"time"
)

// The Atom feed (RFC 4287) that alert aggregators poll: one entry per
// current alert, linking to its CAP XML.
type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
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
}

type atomPerson struct {
	Name string `xml:"name"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr"`
	Type string `xml:"type,attr"`
	Href string `xml:"href,attr"`
}

// current reports whether a belongs in the feed: published, public, not
// expired, and not superseded by a published Update or Cancel. A Cancel
// stays in the feed until the alert it cancels would have expired, so that
// aggregators learn of it.
func current(a Alert, superseded map[string]Alert, now time.Time) bool {
	if a.Status == StatusDraft || a.Scope != "Public" {
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

func (h *handler) feed(w http.ResponseWriter, r *http.Request, c caller) error {
	all, err := h.store.Alerts(r.Context(), c.tenant)
	if err != nil {
		return err
	}
	now := h.now()
	superseded := supersession(all)
	var entries []Alert
	for _, a := range all {
		if current(a, superseded, now) {
			entries = append(entries, a)
		}
	}
	sortNewestFirst(entries)
	base := baseURL(r)
	f := atomFeed{
		ID:      nameUUID("feed", c.tenant),
		Title:   "Alerts from " + c.tenant,
		Updated: now.UTC().Format(time.RFC3339),
		Author:  atomPerson{Name: c.tenant},
		Link:    []atomLink{{Rel: "self", Type: "application/atom+xml", Href: base + "/feed.atom"}},
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
		f.Entry = append(f.Entry, atomEntry{
			ID:        nameUUID("alert", c.tenant, a.Sender, a.Identifier),
			Title:     title,
			Updated:   sent,
			Published: sent,
			Author:    atomPerson{Name: firstOf(in.SenderName, a.Sender)},
			Link:      []atomLink{{Rel: "alternate", Type: ContentType, Href: alertURL(r, a.Identifier)}},
			Summary:   firstOf(in.Description, in.Headline),
		})
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
