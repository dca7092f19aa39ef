package alerts

import (
	"context"
	"net/http"
	"strings"
	"time"

	"aigrid"
)

// Package is the alerts package as the grid serves it: an aigrid.Package.
type Package struct {
	store     *store
	tr        Translator
	now       func() time.Time
	mux       *http.ServeMux
	allowed   map[string]string // path: the methods it serves, for 405's Allow
	endpoints []string
}

var _ aigrid.Package = (*Package)(nil)

// New returns the alerts package, keeping its state in docs under the
// package name "alerts" and the caller's tenant. tr may be nil: alerts then
// stay in the language they are written in.
func New(docs aigrid.DocService, tr Translator) *Package {
	p := &Package{store: &store{docs: docs}, tr: tr, now: time.Now, mux: http.NewServeMux(), allowed: map[string]string{}}
	p.route("GET /alerts", p.list)
	p.route("POST /alerts", p.create)
	p.route("GET /alerts/{identifier}", p.get)
	p.route("POST /alerts/{identifier}/approve", p.approve)
	p.route("POST /alerts/{identifier}/update", p.change(MsgUpdate))
	p.route("POST /alerts/{identifier}/cancel", p.change(MsgCancel))
	p.route("GET /feed.atom", p.feed)
	p.route("POST /cases", p.cases)
	p.route("POST /anomalies", p.anomalies)
	p.route("GET /settings", p.getSettings)
	p.route("PUT /settings", p.putSettings)
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, aigrid.Errorf(aigrid.ENotFound, "There is no endpoint %s %s in the alerts package.", r.Method, r.URL.Path))
	})
	return p
}

// ServeHTTP serves a request whose path has lost the package's prefix.
func (p *Package) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// Info describes the package for GET /v1/packages.
func (p *Package) Info() aigrid.PackageInfo {
	return aigrid.PackageInfo{
		Name: Name,
		Description: "Early warning in the Common Alerting Protocol (CAP 1.2): create, approve, update and cancel alerts, " +
			"an Atom feed for alert aggregators, and EARS C1/C2/C3 outbreak detection on weekly DHIS2 case counts that drafts alerts.",
		Unit:      "record: one per CAP message written (created, drafted by a detection, approved, updated, cancelled), one per week of a case series stored, and one per anomaly point taken",
		Endpoints: p.endpoints,
	}
}

// caller is who makes a request: the grid's call and its tenant.
type caller struct {
	call   *aigrid.Call
	tenant *aigrid.Tenant
}

// count adds n units of work to the call, for the meter.
func (c caller) count(n int) { c.call.Units += int64(n) }

// route registers an endpoint for calls that carry a tenant, and answers
// other methods on its path with an OpenAI-shaped 405.
func (p *Package) route(pattern string, f func(http.ResponseWriter, *http.Request, caller) error) {
	p.endpoints = append(p.endpoints, pattern)
	p.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		call := aigrid.CallFrom(r.Context())
		switch {
		case call == nil || call.Key == nil:
			writeError(w, r, aigrid.Errorf(aigrid.EUnauthenticated, "This endpoint needs an API key: send Authorization: Bearer KEY."))
			return
		case call.Tenant == nil:
			writeError(w, r, aigrid.Errorf(aigrid.EInvalid, "Alerts belong to a tenant: the operator reaches them under /admin/v1/tenants/{tenant}/packages/alerts/."))
			return
		}
		if err := f(w, r, caller{call, call.Tenant}); err != nil {
			writeError(w, r, err)
		}
	})
	method, path, _ := strings.Cut(pattern, " ")
	if prev, ok := p.allowed[path]; ok {
		p.allowed[path] = prev + ", " + method
		return
	}
	p.allowed[path] = method
	p.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", p.allowed[path])
		writeError(w, r, aigrid.Errorf(codeMethodNotAllowed, "%s %s is not supported; use %s.", r.Method, r.URL.Path, p.allowed[path]))
	})
}

// Settings are a tenant's choices for its alerts.
type Settings struct {
	// Sender is the CAP sender of the tenant's alerts when a request names
	// none, such as "moh@health.go.ke"; the default is the tenant's name.
	Sender string `json:"sender,omitempty"`
	// Languages are RFC 3066 tags that every alert the tenant creates or
	// drafts is machine-translated into, when the grid has a translator.
	Languages []string `json:"languages,omitempty"`
	// AnomalyScore is the least score of the anomaly package at which POST
	// /anomalies drafts an alert; 0 means only points the anomaly package
	// flagged draft.
	AnomalyScore float64 `json:"anomalyScore,omitempty"`
	// AnomalyRun is how many consecutive points must reach the score before
	// an alert is drafted; 0 means 1.
	AnomalyRun int `json:"anomalyRun,omitempty"`
}

func (st Settings) validate() error {
	if st.Sender != "" {
		if err := checkToken("sender", st.Sender); err != nil {
			return err
		}
	}
	if st.AnomalyScore < 0 || st.AnomalyScore > 1 {
		return aigrid.ParamErrorf("anomalyScore", "anomalyScore %g is outside 0 to 1.", st.AnomalyScore)
	}
	if st.AnomalyRun < 0 || st.AnomalyRun > maxRun {
		return aigrid.ParamErrorf("anomalyRun", "anomalyRun %d is outside 0 to %d.", st.AnomalyRun, maxRun)
	}
	return checkLanguages("languages", st.Languages)
}

func (p *Package) getSettings(w http.ResponseWriter, r *http.Request, c caller) error {
	st, err := p.store.settings(r.Context(), c.tenant.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (p *Package) putSettings(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.call.CanManage() {
		return aigrid.Errorf(aigrid.EForbidden, "Only an admin key (the operator's or the tenant's) may change the alerts settings.")
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var st Settings
	if err := decodeJSON(body, &st, true); err != nil {
		return err
	}
	st.Sender = strings.TrimSpace(st.Sender)
	if err := st.validate(); err != nil {
		return err
	}
	if err := p.store.saveSettings(r.Context(), c.tenant.ID, st); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// languagesFor returns the languages to translate a new alert into: those
// of the request body or of the ?languages= query (comma-separated), else
// the tenant's.
func languagesFor(r *http.Request, st Settings, fromBody []string) ([]string, error) {
	langs := fromBody
	if q := r.URL.Query().Get("languages"); q != "" && len(langs) == 0 {
		langs = strings.Split(q, ",")
		for i := range langs {
			langs[i] = strings.TrimSpace(langs[i])
		}
	}
	if err := checkLanguages("languages", langs); err != nil {
		return nil, err
	}
	if len(langs) == 0 {
		langs = st.Languages
	}
	return langs, nil
}

// senderOf is the CAP sender of the tenant's alerts when a request names none.
func senderOf(t *aigrid.Tenant, st Settings) string {
	return firstOf(st.Sender, t.Name)
}

// settingsOf returns the caller's tenant's settings.
func (p *Package) settingsOf(ctx context.Context, c caller) (Settings, error) {
	return p.store.settings(ctx, c.tenant.ID)
}
