package aigrid

// Store is everything the grid keeps: tenants, keys, providers, service models, the ledger and
// the packages' documents. The sqlite
// package implements it for one node, the postgres package for a cluster.
type Store interface {
	TenantService
	KeyService
	ProviderService
	ServiceModelService
	LedgerService
	DocService
	Close() error
}
