package alerts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"aigrid"
)

// Translator translates text into a language given as an RFC 3066 tag
// ("fr", "sw-KE"); in aigrid, a chat model. During a request, ctx carries
// the caller's aigrid.Call, whose tenant the translation serves (and may be
// charged to); DraftFromAnomaly passes on whatever context it is given.
type Translator interface {
	Translate(ctx context.Context, text, lang string) (string, error)
}

// TranslatorFunc lets a function serve as a Translator.
type TranslatorFunc func(ctx context.Context, text, lang string) (string, error)

// Translate calls f.
func (f TranslatorFunc) Translate(ctx context.Context, text, lang string) (string, error) {
	return f(ctx, text, lang)
}

// machineTranslated is the info parameter that marks a block written by a
// translator rather than by the alert's author.
var machineTranslated = NamedValue{ValueName: "machineTranslated", Value: "true"}

func isMachineTranslated(in Info) bool {
	return slices.Contains(in.Parameter, machineTranslated)
}

// translate adds to a one info block per language in langs that a does not
// have yet: a copy of its first human-written block with the headline and
// instruction machine-translated and the description left out (it stays
// in its own language only), marked with the parameter machineTranslated=true.
// A language whose translation fails is logged and left out: an early
// warning must not wait on a chat model.
func translate(ctx context.Context, tr Translator, a *Alert, langs []string) {
	if tr == nil || len(langs) == 0 {
		return
	}
	i := slices.IndexFunc(a.Info, func(in Info) bool { return !isMachineTranslated(in) })
	if i < 0 {
		return
	}
	src := a.Info[i]
	if src.Headline == "" && src.Instruction == "" {
		return
	}
	for _, lang := range langs {
		if hasLanguage(*a, lang) {
			continue
		}
		blk := src
		blk.Language = lang
		blk.Description = ""
		blk.Parameter = append(slices.Clone(src.Parameter), machineTranslated)
		var err error
		if blk.Headline, err = translateText(ctx, tr, src.Headline, lang); err == nil {
			blk.Instruction, err = translateText(ctx, tr, src.Instruction, lang)
		}
		if err != nil {
			slog.WarnContext(ctx, "alerts: translation failed; the alert goes out without this language",
				"alert", a.Identifier, "language", lang, "error", err.Error())
			continue
		}
		a.Info = append(a.Info, blk)
	}
}

func translateText(ctx context.Context, tr Translator, text, lang string) (string, error) {
	if text == "" {
		return "", nil
	}
	out, err := tr.Translate(ctx, text, lang)
	out = strings.TrimSpace(out)
	if err == nil && out == "" {
		err = fmt.Errorf("empty translation")
	}
	return out, err
}

// hasLanguage reports whether a has an info block in lang's primary
// language: "fr" is covered by an "fr-FR" block and the other way round.
func hasLanguage(a Alert, lang string) bool {
	primary := func(s string) string { p, _, _ := strings.Cut(s, "-"); return strings.ToLower(p) }
	for _, in := range a.Info {
		if primary(in.Language) == primary(lang) {
			return true
		}
	}
	return false
}

// checkLanguages validates a request's list of languages to translate into.
func checkLanguages(param string, langs []string) error {
	for i, l := range langs {
		if !validLanguage(l) {
			return aigrid.ParamErrorf(fmt.Sprintf("%s[%d]", param, i), "language %q is not a language tag such as fr or sw-KE.", l)
		}
	}
	return nil
}

// newIdentifier returns a fresh alert identifier: the time, for people
// reading lists, and 32 random bits, for uniqueness.
func newIdentifier(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return "aigrid-" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// Anomaly is an unusual value flagged by a detector, from which
// DraftFromAnomaly drafts an alert. Subject, Area and Period are required;
// the CAP fields have defaults suited to a signal that a person has yet to
// verify.
type Anomaly struct {
	Subject  string   // what was counted or measured: "cholera cases", a DHIS2 data element
	Area     string   // where: an org unit or a place name; the alert's areaDesc
	Period   string   // when: the observation's period or time, such as "2026W47"
	Observed float64  // the value seen
	Expected *float64 // the value expected, such as a baseline mean; nil if unknown
	Detector string   // what flagged it, such as "EARS C1, C2"
	Detail   string   // optional: more for the description, such as the statistics

	Event       string    // CAP event; default "Unusual <Subject>"
	Category    string    // CAP category; default Health
	Urgency     string    // default Expected
	Severity    string    // default Moderate
	Certainty   string    // default Possible
	Instruction string    // optional: what people should do
	Sender      string    // CAP sender; default the tenant's settings', else its name
	Expires     time.Time // default 7 days after drafting
	Languages   []string  // also machine-translate into these (needs a Translator); default the tenant's settings
}

// DraftFromAnomaly drafts a CAP alert (status Draft, msgType Alert) about an
// anomaly and saves it among tenant t's alerts, where an admin can approve
// it (POST /alerts/{identifier}/approve). The headline and description name
// the subject, area, period, observed and expected values. The sender and
// languages left out of an come from the tenant's settings; with a
// translator, the headline and instruction are also machine-translated into
// those languages. The identifier is derived from the tenant, subject, area
// and period, so a detector that flags the same anomaly again gets the
// first draft back rather than a second alert.
func (p *Package) DraftFromAnomaly(ctx context.Context, t *aigrid.Tenant, an Anomaly) (Alert, error) {
	st, err := p.store.settings(ctx, t.ID)
	if err != nil {
		return Alert{}, err
	}
	a, _, err := p.draft(ctx, t, st, an)
	return a, err
}

// draft is DraftFromAnomaly with the tenant's settings at hand; created is
// false when the anomaly had been drafted before.
func (p *Package) draft(ctx context.Context, t *aigrid.Tenant, st Settings, an Anomaly) (a Alert, created bool, err error) {
	switch {
	case strings.TrimSpace(an.Subject) == "":
		return Alert{}, false, aigrid.ParamErrorf("subject", "An anomaly needs a subject: what was measured.")
	case strings.TrimSpace(an.Area) == "":
		return Alert{}, false, aigrid.ParamErrorf("area", "An anomaly needs an area: where it was measured.")
	case strings.TrimSpace(an.Period) == "":
		return Alert{}, false, aigrid.ParamErrorf("period", "An anomaly needs a period: when it was measured.")
	}
	if err := checkLanguages("languages", an.Languages); err != nil {
		return Alert{}, false, err
	}
	sum := sha256.Sum256([]byte(strconv.FormatInt(t.ID, 10) + "\x00" + an.Subject + "\x00" + an.Area + "\x00" + an.Period))
	id := "aigrid-anomaly-" + hex.EncodeToString(sum[:10])
	if old, ok, err := p.store.alert(ctx, t.ID, id); err != nil || ok {
		return old, false, err
	}
	now := p.now()
	expires := an.Expires
	if expires.IsZero() {
		expires = now.Add(7 * 24 * time.Hour)
	}
	headline := fmt.Sprintf("Unusual %s in %s, %s", an.Subject, an.Area, an.Period)
	desc := fmt.Sprintf("%s in %s for %s: %s.", an.Subject, an.Area, an.Period, number(an.Observed))
	if an.Expected != nil {
		direction := "high"
		if an.Observed < *an.Expected {
			direction = "low"
		}
		headline = fmt.Sprintf("Unusually %s %s in %s, %s", direction, an.Subject, an.Area, an.Period)
		desc = fmt.Sprintf("%s in %s for %s: %s, where about %s was expected.",
			an.Subject, an.Area, an.Period, number(an.Observed), number(math.Round(*an.Expected*10)/10))
	}
	if an.Detector != "" {
		desc += " Flagged by " + an.Detector + "."
	}
	if an.Detail != "" {
		desc += " " + an.Detail
	}
	desc += " This is a statistical signal: verify it before acting."
	if r, size := utf8.DecodeRuneInString(desc); r != utf8.RuneError {
		desc = string(unicode.ToUpper(r)) + desc[size:] // the subject starts the sentence
	}
	exp := NewTime(expires)
	a = Alert{
		Identifier: id,
		Sender:     firstOf(an.Sender, senderOf(t, st)),
		Sent:       NewTime(now),
		Status:     StatusDraft,
		MsgType:    MsgAlert,
		Scope:      "Public",
		Info: []Info{{
			Language:    "en",
			Category:    []string{firstOf(an.Category, "Health")},
			Event:       firstOf(an.Event, "Unusual "+an.Subject),
			Urgency:     firstOf(an.Urgency, "Expected"),
			Severity:    firstOf(an.Severity, "Moderate"),
			Certainty:   firstOf(an.Certainty, "Possible"),
			Expires:     &exp,
			Headline:    headline,
			Description: desc,
			Instruction: an.Instruction,
			Area:        []Area{{AreaDesc: an.Area}},
		}},
	}
	a.normalize()
	if err := a.Validate(); err != nil {
		return Alert{}, false, err
	}
	langs := an.Languages
	if len(langs) == 0 {
		langs = st.Languages
	}
	translate(ctx, p.tr, &a, langs)
	if err := p.store.saveAlert(ctx, t.ID, a); err != nil {
		return Alert{}, false, err
	}
	return a, true, nil
}

// number writes v as people write counts: no exponent, no trailing zeros.
func number(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
