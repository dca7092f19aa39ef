package aigrid

import "context"

// Call is one client request on its way through the grid. The api fills in who
// asks; the dispatcher records which offer serves it, before the first chunk
// reaches the client, so that the response can name it.
type Call struct {
	ID     string
	Tenant *Tenant
	Key    *Key
	// Service is the service model the client asked for.
	Service string
	// Provider and Offer are set by the dispatcher when an offer takes the call.
	Provider string
	Offer    *Offer
	// Attempts counts the offers tried, failovers included.
	Attempts int
	// BrownoutFrom is the service model the client asked for when the call was
	// browned out to that model's fallback, which Service then names.
	BrownoutFrom string
	// Units counts the work a package call did, in the package's unit, for the meter.
	Units int64
}

// Dispatcher serves calls from the offers of the grid.
type Dispatcher interface {
	// Chat serves a chat completion, as Provider.Chat does, from an offer that
	// serves call.Service and that the tenant's policy allows.
	Chat(ctx context.Context, call *Call, req *ChatRequest, emit func(*ChatChunk) error) (*ChatResponse, error)
	// Embed serves an embeddings request.
	Embed(ctx context.Context, call *Call, req *EmbeddingRequest) (*EmbeddingResponse, error)
	// Models lists the service models the tenant's policy lets it use.
	Models(t *Tenant) []string
}
