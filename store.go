package aigrid

// Store is everything the grid keeps: tenants, keys, providers, service models and the ledger. The sqlite
// package implements it for one node, the postgres package for a cluster.
type Store interface {
	TenantService
	KeyService
	ProviderService
	ServiceModelService
	LedgerService
	Close() error
}
