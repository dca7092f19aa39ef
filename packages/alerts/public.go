package alerts

import (
	"context"
	"net/http"
	"net/url"

	"aigrid"
)

// Public serves every tenant's published alerts without a key, for the
// alert aggregators and the public, which read feeds anonymously:
//
//	GET /{tenant}/feed.atom                the tenant's Atom feed
//	GET /{tenant}/alerts/{identifier}      one alert's CAP XML
//
// Only Actual alerts of scope Public are served; drafts, tests and
// restricted alerts are not found. tenant finds a tenant by name; it
// returns an ENotFound error (or a nil tenant) for an unknown one. The
// grid mounts the handler wherever it likes (say /public/alerts/) with the
// prefix stripped; it needs no key and meters nothing.
func (p *Package) Public(tenant func(ctx context.Context, name string) (*aigrid.Tenant, error)) http.Handler {
	mux := http.NewServeMux()
	find := func(r *http.Request) (*aigrid.Tenant, error) {
		t, err := tenant(r.Context(), r.PathValue("tenant"))
		if aigrid.ErrorCode(err) == aigrid.ENotFound || err == nil && (t == nil || t.Disabled) {
			return nil, aigrid.Errorf(aigrid.ENotFound, "There is no tenant %q publishing alerts here.", r.PathValue("tenant"))
		}
		return t, err
	}
	link := func(r *http.Request, t *aigrid.Tenant, id string) string {
		return baseURL(r) + "/" + url.PathEscape(t.Name) + "/alerts/" + url.PathEscape(id)
	}
	mux.HandleFunc("GET /{tenant}/feed.atom", func(w http.ResponseWriter, r *http.Request) {
		t, err := find(r)
		var all []Alert
		if err == nil {
			all, err = p.store.alerts(r.Context(), t.ID)
		}
		if err == nil {
			err = writeFeed(w, t, currentAlerts(all, p.now()), p.now(), baseURL(r)+"/"+url.PathEscape(t.Name)+"/feed.atom",
				func(id string) string { return link(r, t, id) })
		}
		if err != nil {
			writeError(w, r, err)
		}
	})
	mux.HandleFunc("GET /{tenant}/alerts/{identifier}", func(w http.ResponseWriter, r *http.Request) {
		t, err := find(r)
		var a Alert
		ok := false
		if err == nil {
			a, ok, err = p.store.alert(r.Context(), t.ID, r.PathValue("identifier"))
		}
		if err == nil && (!ok || a.Status != StatusActual || a.Scope != "Public") {
			err = aigrid.Errorf(aigrid.ENotFound, "There is no published alert %q.", r.PathValue("identifier"))
		}
		var doc []byte
		if err == nil {
			doc, err = a.XML()
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		write(w, http.StatusOK, ContentType, doc)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, aigrid.Errorf(aigrid.ENotFound, "There is no public alerts endpoint %s %s: try GET /{tenant}/feed.atom.", r.Method, r.URL.Path))
	})
	return mux
}
