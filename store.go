package aigrid

// Store is everything the grid keeps: tenants, keys and providers. The sqlite
// package implements it for one node, the postgres package for a cluster.
type Store interface {
	TenantService
	KeyService
	ProviderService
	Close() error
}
