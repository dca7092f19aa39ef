package aigrid

// Store is everything the grid keeps: tenants, keys, providers and service models. The sqlite
// package implements it for one node, the postgres package for a cluster.
type Store interface {
	TenantService
	KeyService
	ProviderService
	ServiceModelService
	Close() error
}
