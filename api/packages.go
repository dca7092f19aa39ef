package api

import (
	"net/http"
	"sort"
	"strings"

	"aigrid"
)

// packageRoutes mounts each package under /v1/packages/NAME/ for tenant
// keys and /admin/v1/tenants/{name}/packages/NAME/ for the operator acting
// for a tenant, and its public face, if any, under /public/NAME/.
func (s *Server) packageRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /v1/packages", s.tenantAuth(s.listPackages))
	for _, p := range s.cfg.Packages {
		name := p.Info().Name
		prefix := "/v1/packages/" + name
		tenantHandler := s.tenantAuth(func(w http.ResponseWriter, r *http.Request, call *aigrid.Call) {
			s.servePackage(w, r, call, p, prefix)
		})
		mux.Handle(prefix, s.metrics.instrument(prefix+"/", tenantHandler))
		mux.Handle(prefix+"/", s.metrics.instrument(prefix+"/", tenantHandler))
		admin := "/admin/v1/tenants/{name}/packages/" + name + "/"
		mux.Handle(admin, s.metrics.instrument(admin, s.adminAuth(func(w http.ResponseWriter, r *http.Request) {
			t := s.tenantFor(w, r)
			if t == nil {
				return
			}
			key, err := s.cfg.Store.FindKeyByID(r.Context(), adminKeyID(r))
			if err != nil {
				writeError(w, r, err)
				return
			}
			call := &aigrid.Call{ID: callID(w, r), Tenant: t, Key: key}
			s.servePackage(w, r, call, p, "/admin/v1/tenants/"+t.Name+"/packages/"+name)
		})))
	}
	for name, h := range s.cfg.Public {
		prefix := "/public/" + name
		mux.Handle("GET "+prefix+"/", s.metrics.instrument(prefix+"/", http.StripPrefix(prefix, h)))
	}
}

// servePackage runs a package's handler for a caller and meters the units it
// counted, as input tokens of the service "package:NAME" at the tenant's tariff.
func (s *Server) servePackage(w http.ResponseWriter, r *http.Request, call *aigrid.Call, p aigrid.Package, prefix string) {
	name := p.Info().Name
	call.Service = aigrid.PackageService(name)
	hold, err := s.reserve(r.Context(), w, call, aigrid.PackageEstimate)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The package sees its own paths: /v1/packages/forecast is its "/".
	r2 := r.Clone(aigrid.WithCall(r.Context(), call))
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
	r2.URL.RawPath = ""
	if r2.URL.Path == "" {
		r2.URL.Path = "/"
	}
	p.ServeHTTP(w, r2)
	if call.Units == 0 {
		s.release(hold)
		return
	}
	call.Provider = aigrid.PackageProvider
	// The answer is written: a settlement that fails is logged, and the
	// hold goes back.
	if err := s.settle(w, r, call, hold, aigrid.PackageUsage(int(call.Units)), false); err != nil {
		logger(w).Error("package usage not recorded", "package", name, "units", call.Units)
	}
}

func (s *Server) listPackages(w http.ResponseWriter, r *http.Request, _ *aigrid.Call) {
	infos := make([]aigrid.PackageInfo, 0, len(s.cfg.Packages))
	for _, p := range s.cfg.Packages {
		infos = append(infos, p.Info())
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	writeJSON(w, http.StatusOK, list[aigrid.PackageInfo]{Object: "list", Data: infos})
}
