package aigrid

import (
	"context"
	"net/http"
)

// Package is a turnkey service (forecasting, anomaly detection, early
// warning...) that the api serves under /v1/packages/NAME/ for tenant keys and
// under /admin/v1/tenants/{tenant}/packages/NAME/ for the operator. The
// handler sees paths with that prefix stripped and finds the caller with
// CallFrom; it meters its work by adding to Call.Units.
type Package interface {
	http.Handler
	Info() PackageInfo
}

// PackageInfo describes a package in GET /v1/packages.
type PackageInfo struct {
	Name        string `json:"id"`
	Description string `json:"description"`
	// Unit names what Call.Units counts (for example "point" or "alert").
	Unit string `json:"unit"`
	// Endpoints lists the package's routes, as "METHOD /path" below its prefix.
	Endpoints []string `json:"endpoints"`
}

type callKey struct{}

// WithCall returns a context that carries the call.
func WithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// CallFrom returns the call that the context carries, or nil.
func CallFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// CanManage reports whether the call's key may act for its tenant beyond
// using the service: approve an alert, change settings. The operator's admin
// key and a tenant's admin key may.
func (c *Call) CanManage() bool {
	return c.Key != nil && (c.Key.Admin || c.Key.TenantAdmin)
}

// A package call is metered as a call of the service model "package:NAME":
// it reserves one unit before the work (enough to refuse a tenant with
// nothing left, and to apply the request-rate limits), and settles its units
// as input tokens at the tenant's tariff, served by the provider "package".
// The API's package routes and the MQTT listeners meter alike through these.

// PackageService is the service model a package's calls are metered under.
func PackageService(name string) string { return "package:" + name }

// PackageEstimate is what a package call reserves before its work.
var PackageEstimate = Estimate{PromptTokens: 1, NoOutput: true}

// PackageProvider is the provider a package call is recorded as served by.
const PackageProvider = "package"

// PackageUsage is the usage a package call of units settles.
func PackageUsage(units int) Usage { return Usage{PromptTokens: units, TotalTokens: units} }
