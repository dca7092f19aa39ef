// Package aigrid holds the domain of the AI utility grid: tenants and their keys,
// providers and their offers, the canonical chat and embedding requests every
// protocol is converted to at the edge, and the small interfaces that the
// subpackages (api, sqlite, provider/..., dispatch, meter) implement or use.
//
// The root package imports none of its subpackages.
package aigrid
