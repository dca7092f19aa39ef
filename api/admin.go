package api

import (
	"net/http"
	httppprof "net/http/pprof"
	"runtime"
	rtpprof "runtime/pprof"
	"sync"
	"time"

	"aigrid"
	"aigrid/internal/openaierr"
)

// served refuses, as the config file does, a service model (named in the
// request's param) that no offer serves.
func (s *Server) served(param, model string) error {
	if s.cfg.Explainer == nil {
		return nil
	}
	if _, err := s.cfg.Explainer.Explain(model, nil); aigrid.ErrorCode(err) == aigrid.ENotFound {
		return aigrid.ParamErrorf(param, "No offer serves the model %q: check its spelling, or add an offer that serves it first (aigrid provider add).", model)
	}
	return nil
}

// adminRoute is one endpoint of the admin API.
type adminRoute struct {
	pattern string
	h       http.HandlerFunc
}

func (s *Server) adminRoutes(mux *http.ServeMux) {
	routes := []adminRoute{
		{"POST /admin/v1/tenants", s.createTenant},
		{"GET /admin/v1/tenants", s.listTenants},
		{"GET /admin/v1/tenants/{name}", s.getTenant},
		{"PATCH /admin/v1/tenants/{name}", s.updateTenant},
		{"POST /admin/v1/tenants/{name}/keys", s.createKey},
		{"GET /admin/v1/tenants/{name}/keys", s.listKeys},
		{"POST /admin/v1/keys/{id}/revoke", s.revokeKey},
		{"GET /admin/v1/providers", s.listProviders},
		{"GET /admin/v1/providers/{name}", s.getProvider},
		{"PUT /admin/v1/providers/{name}", s.putProvider},
		{"DELETE /admin/v1/providers/{name}", s.deleteProvider},
		{"GET /admin/v1/service-models", s.listServiceModels},
		{"PUT /admin/v1/service-models/{name}", s.putServiceModel},
		{"DELETE /admin/v1/service-models/{name}", s.deleteServiceModel},
		{"GET /admin/v1/dispatch/{model}", s.explainDispatch},
		{"GET /admin/v1/tariffs", s.listTariffs},
		{"PUT /admin/v1/tariffs/{name}", s.putTariff},
		{"GET /admin/v1/tenants/{name}/account", s.getAccount},
		{"PUT /admin/v1/tenants/{name}/account", s.putAccount},
		{"POST /admin/v1/tenants/{name}/adjustments", s.adjust},
		{"POST /admin/v1/tenants/{name}/topups", s.topUp},
		{"GET /admin/v1/tenants/{name}/usage", s.tenantUsage},
		{"GET /admin/v1/tenants/{name}/statements/{month}", s.tenantStatement},
		{"POST /admin/v1/vouchers", s.mintVouchers},
		{"GET /admin/v1/vouchers", s.listVouchers},
		{"POST /admin/v1/vouchers/void", s.voidVouchers},
		{"GET /admin/v1/revenue", s.revenue},
		{"GET /admin/v1/accounts/unpaid", s.unpaid},
		{"GET /admin/v1/ledger/check", s.checkLedger},
		// Go's profiles of the running server, for go tool pprof.
		{"GET /admin/debug/pprof/{profile}", profile},
	}
	if s.cfg.Backup != nil {
		routes = append(routes, adminRoute{"GET /admin/v1/backup", s.backup})
	}
	byPath := map[string][]string{}
	for _, rt := range routes {
		method, path, _ := cut(rt.pattern)
		mux.Handle(rt.pattern, s.metrics.instrument(rt.pattern, s.adminAuth(rt.h)))
		byPath[path] = append(byPath[path], method)
	}
	for path, methods := range byPath {
		allow := ""
		for i, m := range methods {
			if i > 0 {
				allow += ", "
			}
			allow += m
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeErrorStatus(w, http.StatusMethodNotAllowed, "invalid_request_error", aigrid.Errorf(openaierr.MethodNotAllowed,
				"%s %s is not supported; use %s.", r.Method, r.URL.Path, allow))
		})
	}
}

// profile serves one of Go's profiles of the running server: profile (CPU,
// ?seconds=N), trace, or heap, allocs, goroutine, block, mutex.
func profile(w http.ResponseWriter, r *http.Request) {
	switch name := r.PathValue("profile"); {
	case name == "profile":
		httppprof.Profile(w, r)
	case name == "trace":
		httppprof.Trace(w, r)
	case name == "block" || name == "mutex":
		contention(w, r, name)
	case rtpprof.Lookup(name) != nil:
		httppprof.Handler(name).ServeHTTP(w, r)
	default:
		writeError(w, r, aigrid.Errorf(aigrid.ENotFound, "No profile is named %q: try profile, trace, heap, allocs, goroutine, block or mutex.", name))
	}
}

// contentionMu lets one block or mutex profile run at a time, so that the
// rates one sets are not turned off under another.
var contentionMu sync.Mutex

// contention records the block or mutex profile for ?seconds=N (default 10)
// and serves what was recorded then. Go records neither unless its rate is
// set, and recording costs every lock and channel operation, so the grid
// turns it on for the profile's seconds only: always off, the profiles would
// be empty.
func contention(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	if q.Get("debug") != "" {
		writeError(w, r, aigrid.ParamErrorf("debug", "The %s profile is recorded over ?seconds=N and served for go tool pprof; it has no debug form.", name))
		return
	}
	if q.Get("seconds") == "" {
		q.Set("seconds", "10")
		r.URL.RawQuery = q.Encode()
	}
	contentionMu.Lock()
	defer contentionMu.Unlock()
	if name == "block" {
		// One sample for each microsecond spent blocked.
		runtime.SetBlockProfileRate(int(time.Microsecond))
		defer runtime.SetBlockProfileRate(0)
	} else {
		runtime.SetMutexProfileFraction(10)
		defer runtime.SetMutexProfileFraction(0)
	}
	// With seconds, net/http/pprof serves the difference between the profile
	// at the end and at the start: what happened while the rate was set.
	httppprof.Handler(name).ServeHTTP(w, r)
}

// decodeAdmin reads a JSON admin request body into v, refusing a field v
// does not have (see decodeStrictJSON).
func (s *Server) decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err == nil {
		err = decodeStrictJSON(body, v)
	}
	if err != nil {
		writeError(w, r, err)
		return false
	}
	return true
}

func (s *Server) createTenant(w http.ResponseWriter, r *http.Request) {
	var t aigrid.Tenant
	if !s.decodeAdmin(w, r, &t) {
		return
	}
	// The store numbers tenants. A tenant may be made disabled, to be
	// enabled when its account is ready, as the config file may.
	t.ID = 0
	if err := s.cfg.Store.CreateTenant(r.Context(), &t); err != nil {
		writeError(w, r, err)
		return
	}
	logger(w).Info("tenant created", "tenant", t.Name, "class", t.Class)
	writeJSON(w, http.StatusCreated, &t)
}

func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.cfg.Store.ListTenants(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if ts == nil {
		ts = []*aigrid.Tenant{}
	}
	writeJSON(w, http.StatusOK, list[*aigrid.Tenant]{Object: "list", Data: ts})
}

func (s *Server) getTenant(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Store.FindTenantByName(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) updateTenant(w http.ResponseWriter, r *http.Request) {
	var upd aigrid.TenantUpdate
	if !s.decodeAdmin(w, r, &upd) {
		return
	}
	t, err := s.cfg.Store.UpdateTenant(r.Context(), r.PathValue("name"), upd)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.keys.flush()
	logger(w).Info("tenant updated", "tenant", t.Name, "disabled", t.Disabled)
	writeJSON(w, http.StatusOK, t)
}

type createKeyRequest struct {
	Name      string     `json:"name"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	// TenantAdmin lets the key manage its tenant's packages (approve alerts).
	TenantAdmin bool          `json:"tenant_admin"`
	Limits      aigrid.Limits `json:"limits"`
}

type createdKey struct {
	Key    *aigrid.Key `json:"key"`
	Secret string      `json:"secret"`
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req createKeyRequest
	if !s.decodeAdmin(w, r, &req) {
		return
	}
	t, err := s.cfg.Store.FindTenantByName(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	for _, m := range req.Models {
		if err := aigrid.ValidateName("service model", m); err != nil {
			writeError(w, r, err)
			return
		}
		// A key limited to a model no offer serves could use nothing, and
		// a typo would only show at its first call.
		if err := s.served("models", m); err != nil {
			writeError(w, r, err)
			return
		}
	}
	if req.ExpiresAt != nil && !req.ExpiresAt.After(time.Now()) {
		writeError(w, r, aigrid.ParamErrorf("expires_at", "expires_at %s is in the past.", req.ExpiresAt.Format(time.RFC3339)))
		return
	}
	// The meter holds a key to per-minute limits only: a daily or monthly
	// quota on a key would be stored and never enforced.
	switch l := req.Limits; {
	case l.TokensPerDay != 0 || l.TokensPerMonth != 0:
		writeError(w, r, aigrid.ParamErrorf("limits", "A key's limits are rpm and tpm; tokens_per_day and tokens_per_month are the tenant's (aigrid account set). To give someone a quota of their own, make them a tenant."))
		return
	case l.RPM < 0 || l.TPM < 0:
		writeError(w, r, aigrid.ParamErrorf("limits", "rpm and tpm are whole numbers of 0 (no limit) or more."))
		return
	}
	secret := aigrid.NewSecret("sk-")
	k := &aigrid.Key{TenantID: t.ID, Name: req.Name, Hint: aigrid.KeyHint(secret), Hash: aigrid.HashKey(secret),
		Models: req.Models, ExpiresAt: req.ExpiresAt, TenantAdmin: req.TenantAdmin, Limits: req.Limits}
	if err := s.cfg.Store.CreateKey(r.Context(), k); err != nil {
		writeError(w, r, err)
		return
	}
	logger(w).Info("key created", "tenant", t.Name, "key_id", k.ID)
	writeJSON(w, http.StatusCreated, createdKey{Key: k, Secret: secret})
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	t, err := s.cfg.Store.FindTenantByName(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	keys, err := s.cfg.Store.ListKeys(r.Context(), t.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if keys == nil {
		keys = []*aigrid.Key{}
	}
	writeJSON(w, http.StatusOK, list[*aigrid.Key]{Object: "list", Data: keys})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	k, err := s.cfg.Store.RevokeKey(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.keys.flush()
	logger(w).Info("key revoked", "key_id", k.ID)
	writeJSON(w, http.StatusOK, k)
}

// redact hides a provider's upstream key from admin responses.
func redact(p *aigrid.ProviderConfig) *aigrid.ProviderConfig {
	c := *p
	c.APIKey = ""
	return &c
}

func (s *Server) listProviders(w http.ResponseWriter, r *http.Request) {
	ps, err := s.cfg.Store.ListProviders(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]*aigrid.ProviderConfig, len(ps))
	for i, p := range ps {
		out[i] = redact(p)
	}
	writeJSON(w, http.StatusOK, list[*aigrid.ProviderConfig]{Object: "list", Data: out})
}

func (s *Server) getProvider(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Store.FindProvider(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, redact(p))
}

func (s *Server) putProvider(w http.ResponseWriter, r *http.Request) {
	var p aigrid.ProviderConfig
	if !s.decodeAdmin(w, r, &p) {
		return
	}
	p.Name = r.PathValue("name")
	if p.Kind == "" {
		p.Kind = aigrid.KindOpenAI
	}
	p.FillDefaults()
	if err := p.Validate(); err != nil {
		writeError(w, r, err)
		return
	}
	// Loaded first, stored only once it loads: a provider stored that
	// cannot load (a missing model file) would be refused here and still be
	// there at the next start.
	old, err := s.cfg.Store.FindProvider(r.Context(), p.Name)
	if err != nil && aigrid.ErrorCode(err) != aigrid.ENotFound {
		writeError(w, r, err)
		return
	}
	if err := s.cfg.Providers.Set(&p); err != nil {
		writeError(w, r, err)
		return
	}
	if err := s.cfg.Store.UpsertProvider(r.Context(), &p); err != nil {
		if old != nil {
			s.cfg.Providers.Set(old)
		} else {
			s.cfg.Providers.Remove(p.Name)
		}
		writeError(w, r, err)
		return
	}
	logger(w).Info("provider set", "provider", p.Name, "offers", len(p.Offers))
	writeJSON(w, http.StatusOK, redact(&p))
}

func (s *Server) deleteProvider(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.cfg.Store.DeleteProvider(r.Context(), name); err != nil {
		writeError(w, r, err)
		return
	}
	s.cfg.Providers.Remove(name)
	logger(w).Info("provider removed", "provider", name)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listServiceModels(w http.ResponseWriter, r *http.Request) {
	ms, err := s.cfg.Store.ListServiceModels(r.Context())
	if err != nil {
		writeError(w, r, err)
		return
	}
	if ms == nil {
		ms = []*aigrid.ServiceModel{}
	}
	writeJSON(w, http.StatusOK, list[*aigrid.ServiceModel]{Object: "list", Data: ms})
}

func (s *Server) putServiceModel(w http.ResponseWriter, r *http.Request) {
	var m aigrid.ServiceModel
	if !s.decodeAdmin(w, r, &m) {
		return
	}
	m.Name = r.PathValue("name")
	// A name or fallback no offer serves is most often a typo, and
	// brownout would then find nothing to fall back on.
	for _, c := range [][2]string{{"name", m.Name}, {"fallback", m.Fallback}} {
		if c[1] == "" {
			continue
		}
		if err := s.served(c[0], c[1]); err != nil {
			writeError(w, r, err)
			return
		}
	}
	if err := s.cfg.Store.UpsertServiceModel(r.Context(), &m); err != nil {
		writeError(w, r, err)
		return
	}
	s.cfg.Providers.SetServiceModel(&m)
	logger(w).Info("service model set", "service_model", m.Name, "fallback", m.Fallback)
	writeJSON(w, http.StatusOK, &m)
}

func (s *Server) deleteServiceModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.cfg.Store.DeleteServiceModel(r.Context(), name); err != nil {
		writeError(w, r, err)
		return
	}
	s.cfg.Providers.SetServiceModel(&aigrid.ServiceModel{Name: name})
	w.WriteHeader(http.StatusNoContent)
}

// explainDispatch shows a service model's merit order; ?tenant=NAME applies that tenant's data policy.
func (s *Server) explainDispatch(w http.ResponseWriter, r *http.Request) {
	var t *aigrid.Tenant
	if name := r.URL.Query().Get("tenant"); name != "" {
		var err error
		if t, err = s.cfg.Store.FindTenantByName(r.Context(), name); err != nil {
			writeError(w, r, err)
			return
		}
	}
	ex, err := s.cfg.Explainer.Explain(r.PathValue("model"), t)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ex)
}
