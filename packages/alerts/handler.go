package alerts

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"aigrid"
)

// alertRequest is the JSON body of POST /alerts: a CAP alert in JSON, and
// the languages to machine-translate it into.
type alertRequest struct {
	Alert
	Languages []string `json:"languages"`
}

// changeRequest is the JSON body of POST /alerts/{identifier}/update and
// /cancel. Fields left out are copied from the earlier alert; identifier,
// sender, sent, msgType and references are the server's to set.
type changeRequest struct {
	Status      string   `json:"status"`
	Scope       string   `json:"scope"`
	Restriction string   `json:"restriction"`
	Addresses   string   `json:"addresses"`
	Note        string   `json:"note"`
	Incidents   string   `json:"incidents"`
	Info        []Info   `json:"info"`
	Languages   []string `json:"languages"`
}

func (p *Package) create(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req alertRequest
	switch mediaType(r) {
	case "json":
		if err := decodeJSON(body, &req, true); err != nil {
			return err
		}
	case "xml":
		if req.Alert, err = ParseXML(body); err != nil {
			return aigrid.Errorf(aigrid.EInvalid, "The CAP XML could not be read: %v.", err)
		}
	default:
		return aigrid.Errorf(aigrid.EUnsupportedType, "Content-Type %q is not supported: send JSON (application/json) or CAP XML (application/cap+xml).", r.Header.Get("Content-Type"))
	}
	st, err := p.settingsOf(r.Context(), c)
	if err != nil {
		return err
	}
	a := req.Alert
	now := p.now()
	if a.Identifier == "" {
		a.Identifier = newIdentifier(now)
	}
	if a.Sender == "" {
		a.Sender = senderOf(c.tenant, st)
	}
	if a.Sent.IsZero() {
		a.Sent = NewTime(now)
	}
	a.Status = cmp.Or(a.Status, StatusDraft)
	a.MsgType = cmp.Or(a.MsgType, MsgAlert)
	a.Scope = cmp.Or(a.Scope, "Public")
	a.normalize()
	if err := a.Validate(); err != nil {
		return err
	}
	switch {
	case a.MsgType != MsgAlert && a.MsgType != MsgUpdate && a.MsgType != MsgCancel:
		return aigrid.ParamErrorf("msgType", "msgType %s is not accepted here: send an Alert, or use /alerts/{identifier}/update and /cancel.", a.MsgType)
	case a.MsgType == MsgAlert && len(a.Info) == 0:
		return aigrid.ParamErrorf("info", "An alert needs at least one info block (category, event, urgency, severity, certainty, headline, ...).")
	}
	if err := checkPublish(c, a.Status); err != nil {
		return err
	}
	if err := checkNotExpired(a, now); err != nil {
		return err
	}
	langs, err := languagesFor(r, st, req.Languages)
	if err != nil {
		return err
	}
	if _, exists, err := p.store.alert(r.Context(), c.tenant.ID, a.Identifier); err != nil {
		return err
	} else if exists {
		return aigrid.Errorf(aigrid.EConflict, "An alert with identifier %q exists already; CAP identifiers are unique. Leave identifier out to get a new one.", a.Identifier)
	}
	translate(r.Context(), p.tr, &a, langs)
	if err := p.store.saveAlert(r.Context(), c.tenant.ID, a); err != nil {
		return err
	}
	c.count(1)
	return p.created(w, r, a)
}

// checkPublish lets only admins publish: everyone else creates drafts, which
// an admin approves.
func checkPublish(c caller, status string) error {
	if status != StatusDraft && !c.call.CanManage() {
		return aigrid.Errorf(aigrid.EForbidden, "Only an admin key may issue an alert with status %s. Leave status out to create a Draft, and have an admin approve it with POST /alerts/{identifier}/approve.", status)
	}
	return nil
}

// checkNotExpired refuses an Alert or Update all of whose info blocks have
// expired by now: published, it would never be current, so it would never
// reach the feed, and nothing would say why. (A Cancel may outlive them.)
func checkNotExpired(a Alert, now time.Time) error {
	if a.MsgType == MsgCancel || len(a.Info) == 0 {
		return nil
	}
	last := -1
	for i, in := range a.Info {
		if in.Expires == nil || in.Expires.After(now) {
			return nil
		}
		if last < 0 || in.Expires.After(a.Info[last].Expires.Time) {
			last = i
		}
	}
	return aigrid.ParamErrorf(fmt.Sprintf("info[%d].expires", last), "info[%d].expires %s has passed already (it is %s): the alert would never be current. Give a later expires, or leave it out.",
		last, a.Info[last].Expires, NewTime(now.UTC()))
}

func (p *Package) created(w http.ResponseWriter, r *http.Request, a Alert) error {
	w.Header().Set("Location", alertURL(r, a.Identifier))
	writeJSON(w, http.StatusCreated, a)
	return nil
}

func (p *Package) list(w http.ResponseWriter, r *http.Request, c caller) error {
	status := r.URL.Query().Get("status")
	if status != "" {
		status = canonical(status, statuses)
		if err := oneOf("status", status, statuses); err != nil {
			return err
		}
	}
	all, err := p.store.alerts(r.Context(), c.tenant.ID)
	if err != nil {
		return err
	}
	data := make([]Alert, 0, len(all))
	for _, a := range all {
		if status == "" || a.Status == status {
			data = append(data, a)
		}
	}
	sortNewestFirst(data)
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
	return nil
}

func sortNewestFirst(list []Alert) {
	slices.SortFunc(list, func(a, b Alert) int {
		return cmp.Or(b.Sent.Compare(a.Sent.Time), strings.Compare(a.Identifier, b.Identifier))
	})
}

func (p *Package) get(w http.ResponseWriter, r *http.Request, c caller) error {
	a, err := p.load(r.Context(), c, r.PathValue("identifier"))
	if err != nil {
		return err
	}
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, a)
		return nil
	}
	b, err := a.XML()
	if err != nil {
		return err
	}
	write(w, http.StatusOK, ContentType, b)
	return nil
}

// wantsJSON reports whether the Accept header asks for JSON and not XML;
// CAP XML is the default.
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "json") && !strings.Contains(accept, "xml")
}

func (p *Package) load(ctx context.Context, c caller, id string) (Alert, error) {
	a, ok, err := p.store.alert(ctx, c.tenant.ID, id)
	if err == nil && !ok {
		err = &aigrid.Error{Code: aigrid.ENotFound, Param: "identifier", Message: fmt.Sprintf("There is no alert %q. List alerts with GET /alerts.", id)}
	}
	return a, err
}

func (p *Package) approve(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.call.CanManage() {
		return aigrid.Errorf(aigrid.EForbidden, "Only an admin key (the operator's or the tenant's) may approve an alert.")
	}
	a, err := p.load(r.Context(), c, r.PathValue("identifier"))
	if err != nil {
		return err
	}
	if a.Status != StatusDraft {
		return aigrid.Errorf(aigrid.EConflict, "Alert %q is not a draft: it was issued with status %s.", a.Identifier, a.Status)
	}
	if a.MsgType != MsgAlert {
		all, err := p.store.alerts(r.Context(), c.tenant.ID)
		if err != nil {
			return err
		}
		refs, _ := parseReferences(a.References)
		if len(refs) > 0 {
			last := refs[len(refs)-1]
			if later, ok := supersession(all)[last.sender+","+last.identifier]; ok {
				if later.MsgType == MsgCancel {
					return aigrid.Errorf(aigrid.EConflict, "Alert %q was meanwhile cancelled by %q: this draft can no longer be published; create a new alert instead.", last.identifier, later.Identifier)
				}
				return aigrid.Errorf(aigrid.EConflict, "Alert %q was meanwhile superseded by %s %q; draft the change against that one.", last.identifier, later.MsgType, later.Identifier)
			}
		}
	}
	if err := checkNotExpired(a, p.now()); err != nil {
		return aigrid.Errorf(aigrid.EConflict, "Draft %q expired while it waited for approval: published, it would never be current. Draft it again with a later expires.", a.Identifier)
	}
	a.Status = StatusActual
	a.Sent = NewTime(p.now()) // a draft is sent when it is published
	if err := p.store.saveAlert(r.Context(), c.tenant.ID, a); err != nil {
		return err
	}
	c.count(1)
	writeJSON(w, http.StatusOK, a)
	return nil
}

// change issues an Update or a Cancel of an earlier, published alert: a new
// alert whose references list the earlier one and those it referenced.
func (p *Package) change(msgType string) func(http.ResponseWriter, *http.Request, caller) error {
	return func(w http.ResponseWriter, r *http.Request, c caller) error {
		body, err := readBody(w, r)
		if err != nil {
			return err
		}
		if mediaType(r) != "json" {
			return aigrid.Errorf(aigrid.EUnsupportedType, "Send the %s as JSON with Content-Type: application/json.", strings.ToLower(msgType))
		}
		var req changeRequest
		if len(strings.TrimSpace(string(body))) > 0 {
			if err := serverSetFields(body, msgType); err != nil {
				return err
			}
			if err := decodeJSON(body, &req, true); err != nil {
				return err
			}
		}
		earlier, err := p.load(r.Context(), c, r.PathValue("identifier"))
		if err != nil {
			return err
		}
		if err := p.checkChangeable(r.Context(), c, earlier); err != nil {
			return err
		}
		a := earlier
		a.Identifier = newIdentifier(p.now())
		a.Sent = NewTime(p.now())
		a.MsgType = msgType
		a.Status = cmp.Or(req.Status, StatusDraft)
		a.References = strings.TrimSpace(earlier.References + " " + referenceTo(earlier))
		a.Note = req.Note
		a.Scope = cmp.Or(req.Scope, a.Scope)
		a.Restriction = cmp.Or(req.Restriction, a.Restriction)
		a.Addresses = cmp.Or(req.Addresses, a.Addresses)
		a.Incidents = cmp.Or(req.Incidents, a.Incidents)
		a.Info = slices.Clone(earlier.Info)
		if req.Info != nil {
			a.Info = req.Info
		}
		a.normalize()
		if err := a.Validate(); err != nil {
			return err
		}
		if err := checkPublish(c, a.Status); err != nil {
			return err
		}
		if err := checkNotExpired(a, p.now()); err != nil {
			return err
		}
		st, err := p.settingsOf(r.Context(), c)
		if err != nil {
			return err
		}
		langs, err := languagesFor(r, st, req.Languages)
		if err != nil {
			return err
		}
		translate(r.Context(), p.tr, &a, langs)
		if err := p.store.saveAlert(r.Context(), c.tenant.ID, a); err != nil {
			return err
		}
		c.count(1)
		return p.created(w, r, a)
	}
}

// serverSetFields refuses, with a reason, the fields of an Update or Cancel
// that the server sets (a plain unknown-field error would suggest a typo).
func serverSetFields(body []byte, msgType string) error {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil // decodeJSON explains what is wrong with the body
	}
	for _, f := range []string{"identifier", "sender", "sent", "msgType", "references"} {
		if _, ok := fields[f]; ok {
			return aigrid.ParamErrorf(f, "%s is set by the server: an %s is a new message with its own identifier, sender and sent time, whose references list the earlier messages. Leave %s out.", f, msgType, f)
		}
	}
	return nil
}

// checkChangeable keeps each chain of updates a line: only the latest
// published message of a chain may be updated or cancelled.
func (p *Package) checkChangeable(ctx context.Context, c caller, earlier Alert) error {
	switch {
	case earlier.Status == StatusDraft:
		return aigrid.Errorf(aigrid.EConflict, "Alert %q is a draft, which has not been sent: create a new draft instead of updating or cancelling it.", earlier.Identifier)
	case earlier.MsgType == MsgCancel:
		return aigrid.Errorf(aigrid.EConflict, "Alert %q is a cancellation; it cannot be updated or cancelled.", earlier.Identifier)
	}
	all, err := p.store.alerts(ctx, c.tenant.ID)
	if err != nil {
		return err
	}
	if later, ok := supersession(all)[earlier.Sender+","+earlier.Identifier]; ok {
		if later.MsgType == MsgCancel {
			return aigrid.Errorf(aigrid.EConflict, "Alert %q was cancelled by %q; a cancelled alert cannot be updated or cancelled again: create a new alert instead.", earlier.Identifier, later.Identifier)
		}
		return aigrid.Errorf(aigrid.EConflict, "Alert %q was superseded by %s %q; update or cancel that one.", earlier.Identifier, later.MsgType, later.Identifier)
	}
	return nil
}

// supersession maps "sender,identifier" of each alert that a published
// Update or Cancel references to the latest such message.
func supersession(all []Alert) map[string]Alert {
	out := map[string]Alert{}
	for _, a := range all {
		if a.Status == StatusDraft || a.MsgType == MsgAlert {
			continue
		}
		refs, _ := parseReferences(a.References)
		for _, ref := range refs {
			k := ref.sender + "," + ref.identifier
			if prev, ok := out[k]; !ok || a.Sent.After(prev.Sent.Time) {
				out[k] = a
			}
		}
	}
	return out
}

// mediaType classifies the request's Content-Type: "json" (also when
// absent), "xml", or "" for anything else.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
		return ""
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return "json"
	case mt == "application/xml" || mt == "text/xml" || mt == ContentType:
		return "xml"
	}
	return ""
}

// baseURL is the absolute URL where the handler is mounted. Behind
// http.StripPrefix, r.URL.Path has lost the mount point but r.RequestURI
// has not.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	prefix := ""
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		if p, ok := strings.CutSuffix(u.Path, r.URL.Path); ok {
			prefix = p
		}
	}
	return scheme + "://" + r.Host + prefix
}

func alertURL(r *http.Request, id string) string {
	return baseURL(r) + "/alerts/" + url.PathEscape(id)
}
